package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/jsonscan"
)

// Entry is a stored reply: a complete, successful non-streaming reply (a
// Converse or InvokeModel body). Streams are stored as the reply they
// amount to, when one can be built from their events (docs/cache.md).
type Entry struct {
	Status int
	// Header holds the reply headers that matter to a reader: the content
	// type and Bedrock's own (x-amzn-bedrock-*: token counts, latency,
	// service tier), and the request id of the reply that was stored.
	Header http.Header
	Body   []byte
	// Stored is when the reply was stored.
	Stored time.Time
}

// keptHeader reports whether a reply header is stored with the entry;
// Date, Content-Length and the connection's headers are not.
func keptHeader(name string) bool {
	switch name {
	case "Content-Type", "X-Amzn-Requestid":
		return true
	}
	return strings.HasPrefix(name, "X-Amzn-Bedrock-")
}

// NewEntry returns the entry of a reply: its status, the headers that are
// kept, and body (not copied: the caller gives it up).
func NewEntry(status int, h http.Header, body []byte, now time.Time) *Entry {
	e := &Entry{Status: status, Header: http.Header{}, Body: body, Stored: now}
	for name, v := range h {
		if keptHeader(name) && len(v) > 0 {
			e.Header[name] = []string{v[0]}
		}
	}
	return e
}

// Response returns a new response carrying the entry: its own header map
// and a reader over the body (shared, never written).
func (e *Entry) Response() *http.Response {
	h := make(http.Header, len(e.Header)+1)
	for k, v := range e.Header {
		h[k] = v
	}
	h["Content-Length"] = []string{strconv.Itoa(len(e.Body))}
	return &http.Response{Status: strconv.Itoa(e.Status) + " " + http.StatusText(e.Status), StatusCode: e.Status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h,
		Body: io.NopCloser(bytes.NewReader(e.Body)), ContentLength: int64(len(e.Body))}
}

// Size is what the entry weighs in a store bounded by bytes: its encoded
// length.
func (e *Entry) Size() int { return len(e.Body) + 64 + headerSize(e.Header) }

func headerSize(h http.Header) int {
	n := 0
	for k, v := range h {
		n += len(k) + len(v[0]) + 4
	}
	return n
}

// Filtered reports whether a reply body says a content filter or guardrail
// blocked or cut the reply: a stop reason of content_filtered,
// guardrail_intervened, refusal and their kin (classify.FromStopReason),
// read where each body format puts it (Converse's stopReason, Anthropic's
// stop_reason, also inside a stream event's delta, Titan's
// results[].completionReason, Mistral's outputs[].stop_reason, Cohere's
// generations[].finish_reason, Llama's stop_reason) or the guardrail
// action amazon-bedrock-guardrailAction. A body that does not parse counts
// as filtered: keel cannot tell.
func Filtered(body []byte) bool {
	blocked, ok := stopBlocked(body)
	return blocked || !ok
}

// EventFiltered is Filtered for one stream event's JSON: an event that is
// not JSON says nothing of a filter.
func EventFiltered(payload []byte) bool {
	blocked, _ := stopBlocked(payload)
	return blocked
}

// stopBlocked reports a blocked stop reason in body; ok is false when body
// is not a JSON object.
func stopBlocked(body []byte) (blocked, ok bool) {
	s := jsonscan.New(body, 0)
	reason := func() {
		if s.Peek() == '"' {
			if _, b := classify.FromStopReason(string(s.Bytes())); b {
				blocked = true
			}
		}
	}
	fields := func(names ...string) func(k []byte) {
		return func(k []byte) {
			for _, n := range names {
				if string(k) == n {
					reason()
				}
			}
		}
	}
	list := func(field string) {
		if s.Peek() != '[' {
			return
		}
		s.Array(func() {
			if s.Peek() == '{' {
				s.Object(fields(field))
			}
		})
	}
	if s.Peek() != '{' {
		return false, false
	}
	s.Object(func(key []byte) {
		switch string(key) {
		case "stopReason", "stop_reason", "completionReason", "finish_reason", "amazon-bedrock-guardrailAction":
			reason()
		case "delta":
			if s.Peek() == '{' {
				s.Object(fields("stop_reason", "stopReason"))
			}
		case "results":
			list("completionReason")
		case "outputs":
			list("stop_reason")
		case "generations":
			list("finish_reason")
		}
	})
	s.End()
	return blocked, !s.Failed()
}

// The encoded form: magic, then uvarint-prefixed fields, then a CRC-32
// (Castagnoli) of everything before it, so that a torn or altered entry is
// refused rather than served.
var entryMagic = []byte("kc1\x00")

// ErrCorrupt is returned by Decode for bytes that are not an entry this
// keel wrote.
var ErrCorrupt = errors.New("cache: entry does not decode")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Encode returns the entry's stored form.
func (e *Entry) Encode() []byte {
	b := make([]byte, 0, e.Size())
	b = append(b, entryMagic...)
	b = binary.AppendUvarint(b, uint64(e.Status))
	b = binary.AppendVarint(b, e.Stored.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(e.Header)))
	for k, v := range e.Header {
		b = appendField(b, []byte(k))
		b = appendField(b, []byte(v[0]))
	}
	b = appendField(b, e.Body)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func appendField(b, f []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(f)))
	return append(b, f...)
}

// Decode reads an entry Encode wrote. The body is a sub-slice of b.
func Decode(b []byte) (*Entry, error) {
	if len(b) < len(entryMagic)+4 || !bytes.Equal(b[:len(entryMagic)], entryMagic) {
		return nil, ErrCorrupt
	}
	n := len(b) - 4
	if crc32.Checksum(b[:n], crcTable) != binary.BigEndian.Uint32(b[n:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	r := reader{b: b[len(entryMagic):n]}
	e := &Entry{Status: int(r.uvarint())}
	e.Stored = time.Unix(0, r.varint())
	nh := r.uvarint()
	if nh > uint64(len(r.b)) {
		return nil, ErrCorrupt
	}
	e.Header = make(http.Header, nh)
	for range nh {
		k, v := r.field(), r.field()
		e.Header[string(k)] = []string{string(v)}
	}
	e.Body = r.field()
	if r.bad || len(r.b) != 0 || e.Status < 200 || e.Status > 299 {
		return nil, ErrCorrupt
	}
	return e, nil
}

type reader struct {
	b   []byte
	bad bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) field() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return nil
	}
	f := r.b[:n:n]
	r.b = r.b[n:]
	return f
}
