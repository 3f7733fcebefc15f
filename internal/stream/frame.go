package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// Frame layout (application/vnd.amazon.eventstream): a 12-byte prelude
// (total length, headers length, CRC32 of those 8 bytes), the headers, the
// payload, and a CRC32 of everything before it.
const (
	preludeLen = 12
	minFrame   = preludeLen + 4
	// MaxFrame bounds a frame's total length. The event-stream format allows
	// 16 MiB of payload and 128 KiB of headers; Bedrock's events are a few
	// hundred bytes. A longer frame is corrupt, not a reason to allocate.
	MaxFrame = 16<<20 + 128<<10 + minFrame
	// maxHeaderValue is the longest string or bytes header value the
	// format allows (the SDK's decoder refuses longer ones too).
	maxHeaderValue = 1<<15 - 1
)

// Frame is one decoded event-stream message. Its slices point into the
// Reader's buffer and are valid until the next call to Next.
type Frame struct {
	// Raw is the whole frame as received, prelude to message CRC: what a
	// reader is given when the frame passes through unchanged.
	Raw []byte
	// Headers is the raw header block.
	Headers []byte
	// Payload is the frame's payload (JSON for Bedrock events and exceptions).
	Payload []byte
	// The string headers Bedrock sets; nil when absent.
	MessageType   []byte // ":message-type": "event", "exception" or "error"
	EventType     []byte // ":event-type" ("messageStart", "chunk", ...)
	ExceptionType []byte // ":exception-type" ("throttlingException", ...)
	ErrorCode     []byte // ":error-code"
	ErrorMessage  []byte // ":error-message"
}

// IsEvent reports whether the frame is an event (not an exception or error).
func (f *Frame) IsEvent() bool { return string(f.MessageType) == "event" }

// Reader reads frames from an event-stream body. The zero Reader is not
// usable; call NewReader or Reset. Most callers want Next.
//
// A Reader reads ahead: each read of the body takes what it has, up to the
// buffer's size, so that a burst of events costs one read rather than two
// per frame, and Buffered tells whether the next frame is already there.
type Reader struct {
	r   io.Reader
	buf []byte
	// buf[start:end] has been read from r and not yet returned by Next.
	start, end int
	// err is the read error met after buf[:end], returned once the bytes
	// before it are used up.
	err error
	// Max bounds a frame's total length; a longer one fails Next with a
	// *FrameTooLargeError before it is read. Zero: MaxFrame.
	Max int
}

// readBuf is a Reader's first buffer: it holds a burst of Bedrock's events
// (a few hundred bytes each), and grows only for a frame that does not fit.
const readBuf = 8 << 10

// readBufs holds the buffers Readers released, for the next stream.
var readBufs = sync.Pool{New: func() any { return new([readBuf]byte) }}

// FrameTooLargeError reports a frame longer than the Reader's Max: a valid
// frame, larger than the caller is willing to hold.
type FrameTooLargeError struct {
	Length, Max int
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("stream: an event-stream message of %d bytes, over the limit of %d", e.Length, e.Max)
}

// NewReader returns a Reader reading frames from r.
func NewReader(r io.Reader) *Reader {
	fr := &Reader{}
	fr.Reset(r)
	return fr
}

// Reset makes the Reader read from r, keeping its buffer (or taking one
// that another Reader released) and dropping what it had read ahead.
func (fr *Reader) Reset(r io.Reader) {
	fr.r, fr.start, fr.end, fr.err = r, 0, 0, nil
	if fr.buf == nil {
		fr.buf = readBufs.Get().(*[readBuf]byte)[:]
	}
}

// Release gives the Reader's buffer back for other Readers to use. The
// frames Next returned are invalid afterwards; Reset makes the Reader
// usable again.
func (fr *Reader) Release() {
	if cap(fr.buf) == readBuf {
		readBufs.Put((*[readBuf]byte)(fr.buf[:readBuf]))
	}
	fr.r, fr.buf, fr.start, fr.end, fr.err = nil, nil, 0, 0, nil
}

// Buffered reports whether the next frame has been read ahead whole, so
// that Next returns it (or its error) without reading the body.
func (fr *Reader) Buffered() bool {
	n := fr.end - fr.start
	return n >= preludeLen && int64(binary.BigEndian.Uint32(fr.buf[fr.start:])) <= int64(n)
}

// Errors of Next, besides the underlying reader's own (a reset connection,
// a cancelled context).
var (
	// ErrTruncated reports a body that ended in the middle of a frame. It
	// wraps io.ErrUnexpectedEOF, which the classifier maps to
	// StreamTruncated.
	ErrTruncated = fmt.Errorf("stream: body ended in the middle of an event-stream frame: %w", io.ErrUnexpectedEOF)
)

// Next reads the next frame. It returns io.EOF when the body ends cleanly
// between frames; ErrTruncated when it ends inside one;
// eventstream.ChecksumError when a CRC does not match; eventstream.LengthError
// for impossible lengths or a malformed header block; or the underlying
// reader's error. Next does not allocate once its buffer has grown to the
// largest frame seen.
func (fr *Reader) Next() (Frame, error) {
	if err := fr.fill(preludeLen); err != nil {
		return Frame{}, err
	}
	p := fr.buf[fr.start : fr.start+preludeLen]
	total := binary.BigEndian.Uint32(p[0:4])
	hlen := binary.BigEndian.Uint32(p[4:8])
	if crc32.ChecksumIEEE(p[:8]) != binary.BigEndian.Uint32(p[8:12]) {
		fr.start += preludeLen
		return Frame{}, eventstream.ChecksumError{}
	}
	if total < minFrame || total > MaxFrame {
		fr.start += preludeLen
		return Frame{}, eventstream.LengthError{Part: "message", Want: MaxFrame, Have: int(total)}
	}
	if fr.Max > 0 && int(total) > fr.Max {
		fr.start += preludeLen
		return Frame{}, &FrameTooLargeError{Length: int(total), Max: fr.Max}
	}
	if hlen > total-minFrame {
		fr.start += preludeLen
		return Frame{}, eventstream.LengthError{Part: "headers", Want: int(total - minFrame), Have: int(hlen)}
	}
	if err := fr.fill(int(total)); err != nil {
		return Frame{}, err
	}
	b := fr.buf[fr.start : fr.start+int(total)]
	fr.start += int(total)
	if crc32.Update(crc32.ChecksumIEEE(b[:8]), crc32.IEEETable, b[8:total-4]) != binary.BigEndian.Uint32(b[total-4:]) {
		return Frame{}, eventstream.ChecksumError{}
	}
	f := Frame{Raw: b, Headers: b[preludeLen : preludeLen+hlen], Payload: b[preludeLen+hlen : total-4]}
	if err := scanHeaders(&f); err != nil {
		return Frame{}, err
	}
	return f, nil
}

// fill reads until n bytes from start are buffered, moving what is left to
// the front of the buffer (or to a larger one) when they would not fit.
// It fails as Next does: io.EOF when the body ended before anything of the
// next frame, ErrTruncated when it ended inside it, or the body's error;
// what was buffered is dropped then.
func (fr *Reader) fill(n int) error {
	if fr.end-fr.start >= n {
		return nil
	}
	if fr.start+n > len(fr.buf) {
		dst := fr.buf
		if n > len(fr.buf) {
			dst = make([]byte, max(n, 2*len(fr.buf)))
		}
		fr.end = copy(dst, fr.buf[fr.start:fr.end])
		fr.start, fr.buf = 0, dst
	}
	for fr.end-fr.start < n {
		if err := fr.err; err != nil {
			partial := fr.end > fr.start
			fr.start, fr.end, fr.err = 0, 0, nil
			switch {
			case err == io.EOF && !partial:
				return io.EOF
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				return ErrTruncated
			}
			return err
		}
		m, err := fr.r.Read(fr.buf[fr.end:])
		fr.end += m
		fr.err = err
	}
	return nil
}

// errHeaders is returned for a header block that does not parse.
func errHeaders(what string, have int) error {
	return eventstream.LengthError{Part: "header " + what, Have: have}
}

// scanHeaders walks the header block, keeping the string headers Frame
// names. Other headers are skipped by their type's size.
func scanHeaders(f *Frame) error {
	h := f.Headers
	for len(h) > 0 {
		nl := int(h[0])
		if 1+nl+1 > len(h) {
			return errHeaders("name", nl)
		}
		name := h[1 : 1+nl]
		typ := h[1+nl]
		h = h[2+nl:]
		var size int
		switch typ {
		case 0, 1: // true, false
		case 2: // byte
			size = 1
		case 3: // int16
			size = 2
		case 4: // int32
			size = 4
		case 5, 8: // int64, timestamp
			size = 8
		case 9: // uuid
			size = 16
		case 6, 7: // bytes, string: a 2-byte length, then the value
			if len(h) < 2 {
				return errHeaders("value", len(h))
			}
			n := int(binary.BigEndian.Uint16(h))
			if n > maxHeaderValue || 2+n > len(h) {
				return errHeaders("value", n)
			}
			v := h[2 : 2+n]
			switch string(name) {
			case ":message-type":
				f.MessageType = v
			case ":event-type":
				f.EventType = v
			case ":exception-type":
				f.ExceptionType = v
			case ":error-code":
				f.ErrorCode = v
			case ":error-message":
				f.ErrorMessage = v
			}
			h = h[2+n:]
			continue
		default:
			return errHeaders("type", int(typ))
		}
		if size > len(h) {
			return errHeaders("value", size)
		}
		h = h[size:]
	}
	return nil
}

// IsCorrupt reports whether err says a frame was damaged: a checksum
// mismatch or an impossible length.
func IsCorrupt(err error) bool {
	var ce eventstream.ChecksumError
	var le eventstream.LengthError
	return errors.As(err, &ce) || errors.As(err, &le)
}
