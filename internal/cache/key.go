package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"unicode/utf8"

	"github.com/keel-run/keel/internal/jsonscan"
)

// keyVersion starts every hashed key: a change of the canonical form or of
// what the key holds bumps it, so that no store serves an entry written
// under other rules.
const keyVersion = "keel-cache-v1"

// Request is what a cached reply is keyed by.
type Request struct {
	// Family is the operation family: "converse", "invoke",
	// "converse-stream" or "invoke-stream". A stream is stored as the
	// events its reader got, so streams have families of their own.
	Family string
	// Model is the model id, inference profile or ARN, as the caller named
	// it.
	Model string
	// Tier is the service tier asked for ("" for none).
	Tier string
	// Caller names the caller when callers do not share the cache (the
	// gateway's tenancy); "" otherwise.
	Caller string
	// Header holds the request headers that change the reply, as name and
	// value pairs (InvokeModel's guardrail and trace headers, Accept);
	// their order does not matter.
	Header []string
	// Body is the request body as sent.
	Body []byte
}

// Key is the hash of a Request. Its String is the key stores keep.
type Key [sha256.Size]byte

// String returns the key in hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// ErrNotJSON is returned by KeyOf for a body that is not one JSON object
// of valid UTF-8, or that repeats a key: such a body is never cached.
var ErrNotJSON = errors.New("cache: the body is not a JSON object that can be put in canonical form")

// KeyOf returns the key of r, or ErrNotJSON.
func KeyOf(r Request) (Key, error) {
	canon, err := Canonical(r.Body)
	if err != nil {
		return Key{}, err
	}
	h := sha256.New()
	field := func(b []byte) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
		h.Write(b)
	}
	field([]byte(keyVersion))
	field([]byte(r.Family))
	field([]byte(r.Model))
	field([]byte(r.Tier))
	field([]byte(r.Caller))
	hdr := slices.Clone(r.Header)
	// Pairs are sorted as pairs: name, then value.
	pairs := make([][2]string, 0, len(hdr)/2)
	for i := 0; i+1 < len(hdr); i += 2 {
		pairs = append(pairs, [2]string{hdr[i], hdr[i+1]})
	}
	slices.SortFunc(pairs, func(a, b [2]string) int {
		if c := cmpString(a[0], b[0]); c != 0 {
			return c
		}
		return cmpString(a[1], b[1])
	})
	field(binary.AppendUvarint(nil, uint64(len(pairs))))
	for _, p := range pairs {
		field([]byte(p[0]))
		field([]byte(p[1]))
	}
	field(canon)
	var k Key
	h.Sum(k[:0])
	return k, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Canonical returns body in canonical form: one JSON object, its keys
// sorted (by their bytes) at every level, no whitespace between tokens,
// numbers as written (1.0 stays 1.0: keel does not know how each model
// reads a number), and strings decoded and written again with the fewest
// escapes (only '"', '\\' and control characters). A body that is not a JSON
// object, holds invalid UTF-8 or an escape of an unpaired surrogate, or
// repeats a key in one object returns ErrNotJSON: encoders disagree on what
// those mean, so two of them must not share an entry.
func Canonical(body []byte) ([]byte, error) {
	if !utf8.Valid(body) {
		return nil, ErrNotJSON
	}
	s := jsonscan.New(body, 0)
	if s.Peek() != '{' {
		return nil, ErrNotJSON
	}
	c := canonicalizer{s: &s}
	out := c.value(make([]byte, 0, len(body)))
	s.End()
	if s.Failed() || c.bad {
		return nil, ErrNotJSON
	}
	return out, nil
}

type canonicalizer struct {
	s   *jsonscan.Scanner
	bad bool
	buf []byte // scratch for decoded strings
}

// member is one object member written in canonical form at out[from:to]
// of the scratch, keyed by its decoded key.
type member struct {
	key      string
	from, to int
}

func (c *canonicalizer) value(dst []byte) []byte {
	s := c.s
	switch ch := s.Peek(); {
	case ch == '{':
		return c.object(dst)
	case ch == '[':
		dst = append(dst, '[')
		n := 0
		s.Array(func() {
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = c.value(dst)
		})
		return append(dst, ']')
	case ch == '"':
		return c.str(dst)
	case ch == '-' || '0' <= ch && ch <= '9':
		return append(dst, s.Number()...)
	default: // true, false, null, or a syntax error Skip reports
		return append(dst, s.Value()...)
	}
}

// object writes the object at the cursor with its members sorted by key.
func (c *canonicalizer) object(dst []byte) []byte {
	var scratch []byte
	var members []member
	c.s.Object(func(key []byte) {
		from := len(scratch)
		scratch = c.quote(scratch, key)
		scratch = append(scratch, ':')
		scratch = c.value(scratch)
		members = append(members, member{key: string(key), from: from, to: len(scratch)})
	})
	slices.SortFunc(members, func(a, b member) int { return cmpString(a.key, b.key) })
	dst = append(dst, '{')
	for i, m := range members {
		if i > 0 {
			if members[i-1].key == m.key {
				c.bad = true
			}
			dst = append(dst, ',')
		}
		dst = append(dst, scratch[m.from:m.to]...)
	}
	return append(dst, '}')
}

// str writes the string at the cursor in canonical form.
func (c *canonicalizer) str(dst []byte) []byte {
	raw := c.s.Raw()
	c.buf = c.buf[:0]
	if bytes.IndexByte(raw, '\\') < 0 {
		return c.quote(dst, raw) // valid UTF-8 (checked whole) without escapes
	}
	// Decode the escapes. An unpaired surrogate escape decodes to U+FFFD,
	// as would the character itself: refuse rather than merge the two.
	sub := c.s.Sub(append(append([]byte{'"'}, raw...), '"'))
	c.buf = sub.String(c.buf)
	if bytes.ContainsRune(c.buf, utf8.RuneError) && !bytes.Contains(raw, []byte(`\ufffd`)) &&
		!bytes.Contains(raw, []byte(`\uFFFD`)) && !bytes.ContainsRune(raw, utf8.RuneError) {
		c.bad = true
	}
	return c.quote(dst, c.buf)
}

const hexDigits = "0123456789abcdef"

// quote writes s, decoded, as a JSON string with the fewest escapes.
func (c *canonicalizer) quote(dst, s []byte) []byte {
	dst = append(dst, '"')
	from := 0 // s[from:i] needs no escape, and is appended in one go
	for i, b := range s {
		if b != '"' && b != '\\' && b >= 0x20 {
			continue
		}
		dst = append(dst, s[from:i]...)
		from = i + 1
		if b < 0x20 {
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
		} else {
			dst = append(dst, '\\', b)
		}
	}
	dst = append(dst, s[from:]...)
	return append(dst, '"')
}
