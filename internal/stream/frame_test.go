package stream

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// encode returns the frame the SDK's encoder makes of msg.
func encode(t testing.TB, msg eventstream.Message) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&b, msg); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func strHeaders(kv ...string) eventstream.Headers {
	var h eventstream.Headers
	for i := 0; i+1 < len(kv); i += 2 {
		h = append(h, eventstream.Header{Name: kv[i], Value: eventstream.StringValue(kv[i+1])})
	}
	return h
}

// sampleFrames covers every header type and the shapes Bedrock sends.
func sampleFrames(t testing.TB) [][]byte {
	every := strHeaders(":message-type", "event", ":event-type", "chunk")
	every = append(every,
		eventstream.Header{Name: "t", Value: eventstream.BoolValue(true)},
		eventstream.Header{Name: "f", Value: eventstream.BoolValue(false)},
		eventstream.Header{Name: "b", Value: eventstream.Int8Value(-3)},
		eventstream.Header{Name: "s", Value: eventstream.Int16Value(300)},
		eventstream.Header{Name: "i", Value: eventstream.Int32Value(1 << 20)},
		eventstream.Header{Name: "l", Value: eventstream.Int64Value(1 << 40)},
		eventstream.Header{Name: "by", Value: eventstream.BytesValue([]byte{0, 1, 2})},
		eventstream.Header{Name: "ts", Value: eventstream.TimestampValue(time.Unix(1700000000, 0))},
		eventstream.Header{Name: "u", Value: eventstream.UUIDValue{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
	)
	return [][]byte{
		encode(t, eventstream.Message{Headers: strHeaders(":event-type", "messageStart", ":content-type", "application/json", ":message-type", "event"), Payload: []byte(`{"role":"assistant"}`)}),
		encode(t, eventstream.Message{Headers: strHeaders(":exception-type", "throttlingException", ":content-type", "application/json", ":message-type", "exception"), Payload: []byte(`{"message":"Too many tokens"}`)}),
		encode(t, eventstream.Message{Headers: strHeaders(":error-code", "ThrottlingException", ":error-message", "slow down", ":message-type", "error")}),
		encode(t, eventstream.Message{Headers: every, Payload: bytes.Repeat([]byte("x"), 9000)}),
		encode(t, eventstream.Message{}),
	}
}

// sdkDecode decodes one frame with the SDK.
func sdkDecode(b []byte) (eventstream.Message, error) {
	return eventstream.NewDecoder().Decode(bytes.NewReader(b), nil)
}

func sdkString(h eventstream.Headers, name string) []byte {
	if v := h.Get(name); v != nil {
		switch v := v.(type) {
		case eventstream.StringValue:
			return []byte(v)
		case eventstream.BytesValue:
			return []byte(v)
		}
	}
	return nil
}

func TestReaderMatchesSDKDecoder(t *testing.T) {
	frames := sampleFrames(t)
	fr := NewReader(bytes.NewReader(bytes.Join(frames, nil)))
	for i, raw := range frames {
		f, err := fr.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		m, err := sdkDecode(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f.Raw, raw) || !bytes.Equal(f.Payload, m.Payload) {
			t.Errorf("frame %d: raw or payload differs from the SDK's decoding", i)
		}
		for _, h := range []struct {
			name string
			got  []byte
		}{{":message-type", f.MessageType}, {":event-type", f.EventType}, {":exception-type", f.ExceptionType}, {":error-code", f.ErrorCode}, {":error-message", f.ErrorMessage}} {
			if want := sdkString(m.Headers, h.name); !bytes.Equal(h.got, want) {
				t.Errorf("frame %d: %s = %q, the SDK says %q", i, h.name, h.got, want)
			}
		}
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// TestReaderReadsAhead reads the sample frames (one of them over the first
// buffer's size) through bodies that hand out their bytes in different
// ways, and checks every frame, what Buffered says before each, the error
// at the end, and that a released Reader's buffer serves the next.
func TestReaderReadsAhead(t *testing.T) {
	frames := sampleFrames(t)
	all := bytes.Join(frames, nil)
	boom := errors.New("connection reset")
	tests := []struct {
		name string
		body func() io.Reader
		// buffered: Buffered before each Next of a frame that lies within
		// the first read (the body hands out all the buffer takes at once).
		buffered bool
		end      error
	}{
		{"whole", func() io.Reader { return bytes.NewReader(all) }, true, io.EOF},
		{"a byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(all)) }, false, io.EOF},
		{"half of each read", func() io.Reader { return iotest.HalfReader(bytes.NewReader(all)) }, false, io.EOF},
		{"data with its EOF", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(all)) }, true, io.EOF},
		{"an error after the frames", func() io.Reader { return io.MultiReader(bytes.NewReader(all), iotest.ErrReader(boom)) }, false, boom},
		{"cut inside the last frame", func() io.Reader { return bytes.NewReader(all[:len(all)-3]) }, true, ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := NewReader(tt.body())
			defer fr.Release()
			if fr.Buffered() {
				t.Fatal("Buffered before any read")
			}
			n := len(frames)
			if tt.end == ErrTruncated {
				n--
			}
			off := 0
			for i, raw := range frames[:n] {
				off += len(raw)
				if i > 0 && tt.buffered && off <= readBuf && !fr.Buffered() {
					t.Errorf("frame %d: not Buffered, though the body gave everything at once", i)
				}
				f, err := fr.Next()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if !bytes.Equal(f.Raw, raw) {
					t.Fatalf("frame %d: %x, want %x", i, f.Raw, raw)
				}
			}
			if _, err := fr.Next(); !errors.Is(err, tt.end) {
				t.Fatalf("after the frames: %v, want %v", err, tt.end)
			}
			if fr.Buffered() {
				t.Fatal("Buffered after the end")
			}
			fr.Release()
			fr.Reset(bytes.NewReader(frames[0]))
			if f, err := fr.Next(); err != nil || !bytes.Equal(f.Raw, frames[0]) {
				t.Fatalf("after Release and Reset: %x, %v", f.Raw, err)
			}
		})
	}
}

// TestReaderTruncated cuts a frame at every length: a clean end between
// frames is io.EOF, anything else ErrTruncated (io.ErrUnexpectedEOF), never
// the clean end the SDK's stream reader reports.
func TestReaderTruncated(t *testing.T) {
	frame := sampleFrames(t)[0]
	for n := 0; n < len(frame); n++ {
		_, err := NewReader(bytes.NewReader(frame[:n])).Next()
		switch {
		case n == 0 && err != io.EOF:
			t.Fatalf("empty body: %v, want io.EOF", err)
		case n > 0 && (!errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF)):
			t.Fatalf("frame cut at %d of %d bytes: %v, want ErrTruncated", n, len(frame), err)
		}
	}
}

// TestReaderCorrupt flips every byte of a frame in turn: each flip must be
// caught (a CRC or a length), never passed on.
func TestReaderCorrupt(t *testing.T) {
	frame := sampleFrames(t)[1]
	for i := range frame {
		b := bytes.Clone(frame)
		b[i] ^= 0x5a
		_, err := NewReader(bytes.NewReader(append(b, frame...))).Next()
		if err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
		if !IsCorrupt(err) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("flipping byte %d: %v, want a checksum, length or truncation error", i, err)
		}
	}
}

func TestReaderBadLengths(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"shorter than a frame", prelude(8, 0), "message length"},
		{"longer than allowed", prelude(MaxFrame+1, 0), "message length"},
		{"headers past the end", prelude(20, 10), "headers length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(append(tt.b, make([]byte, 64)...))).Next()
			var le eventstream.LengthError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want a LengthError about %s", err, tt.want)
			}
		})
	}
}

// prelude builds a 12-byte prelude with a valid CRC.
func prelude(total, headers uint32) []byte {
	b := []byte{byte(total >> 24), byte(total >> 16), byte(total >> 8), byte(total), byte(headers >> 24), byte(headers >> 16), byte(headers >> 8), byte(headers)}
	c := crcIEEE(b)
	return append(b, byte(c>>24), byte(c>>16), byte(c>>8), byte(c))
}

// FuzzReader decodes arbitrary bytes with Reader and with the SDK's
// decoder: whatever Reader accepts, the SDK must decode to the same payload
// and headers. (Reader refuses a few things the SDK lets through: lengths
// that disagree, frames over MaxFrame.)
func FuzzReader(f *testing.F) {
	for _, fr := range sampleFrames(f) {
		f.Add(fr)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := NewReader(bytes.NewReader(b))
		rest := b
		for {
			got, err := fr.Next()
			if err != nil {
				return
			}
			m, serr := sdkDecode(rest)
			if serr != nil {
				t.Fatalf("Reader accepted a frame the SDK refuses (%v): %x", serr, got.Raw)
			}
			if !bytes.Equal(got.Payload, m.Payload) && (len(got.Payload) > 0 || len(m.Payload) > 0) {
				t.Fatalf("payload %x, SDK %x", got.Payload, m.Payload)
			}
			for _, h := range []struct {
				name string
				v    []byte
			}{{":message-type", got.MessageType}, {":event-type", got.EventType}, {":exception-type", got.ExceptionType}} {
				if want := sdkString(m.Headers, h.name); !bytes.Equal(h.v, want) {
					t.Fatalf("%s = %q, SDK %q", h.name, h.v, want)
				}
			}
			rest = rest[len(got.Raw):]
		}
	})
}

// BenchmarkReader reads Bedrock-sized events: no allocation per frame.
func BenchmarkReader(b *testing.B) {
	frame := encode(b, eventstream.Message{Headers: strHeaders(":event-type", "contentBlockDelta", ":content-type", "application/json", ":message-type", "event"),
		Payload: []byte(`{"contentBlockIndex":0,"delta":{"text":" keel"},"p":"abcdefghijklmnopqrstu"}`)})
	stream := bytes.Repeat(frame, 1000)
	r := bytes.NewReader(stream)
	fr := NewReader(r)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := fr.Next(); err != nil {
			r.Reset(stream)
			if _, err := fr.Next(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkSDKDecoder is the SDK's decoder on the same frames, for
// comparison.
func BenchmarkSDKDecoder(b *testing.B) {
	frame := encode(b, eventstream.Message{Headers: strHeaders(":event-type", "contentBlockDelta", ":content-type", "application/json", ":message-type", "event"),
		Payload: []byte(`{"contentBlockIndex":0,"delta":{"text":" keel"},"p":"abcdefghijklmnopqrstu"}`)})
	stream := bytes.Repeat(frame, 1000)
	r := bytes.NewReader(stream)
	dec := eventstream.NewDecoder()
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := dec.Decode(r, buf); err != nil {
			r.Reset(stream)
			if _, err := dec.Decode(r, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func crcIEEE(b []byte) uint32 { return crc32.ChecksumIEEE(b) }
