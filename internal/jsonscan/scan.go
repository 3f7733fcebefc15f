package jsonscan

import (
	"cmp"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// DefaultMaxDepth is the nesting a Scanner follows unless told otherwise:
// encoding/json's limit, so a body it accepts is not refused here, while a
// hostile body still cannot exhaust the stack.
const DefaultMaxDepth = 10000

// A SyntaxError is the first problem a Scanner found: what is wrong and the
// byte offset where it is.
type SyntaxError struct {
	Msg    string
	Offset int
}

func (e *SyntaxError) Error() string {
	return "jsonscan: " + e.Msg + " at byte " + strconv.Itoa(e.Offset)
}

// Scanner reads one JSON document. Make one with New; the zero value reads
// an empty input. Reads past the first error return zero values.
type Scanner struct {
	b        []byte
	i        int
	depth    int
	maxDepth int
	msg      string // a constant, so failing costs no allocation until Err
	at       int
}

// New returns a Scanner over b that follows at most maxDepth nested objects
// and arrays (0 means DefaultMaxDepth).
func New(b []byte, maxDepth int) Scanner {
	return Scanner{b: b, maxDepth: cmp.Or(maxDepth, DefaultMaxDepth)}
}

// Sub returns a Scanner over b, a value s has read (see Value), that starts
// as deep as s is now, so the two together keep s's depth bound.
func (s *Scanner) Sub(b []byte) Scanner {
	return Scanner{b: b, depth: s.depth, maxDepth: s.maxDepth}
}

// Err returns the first syntax error, as a *SyntaxError, or nil.
func (s *Scanner) Err() error {
	if s.msg == "" {
		return nil
	}
	return &SyntaxError{Msg: s.msg, Offset: s.at}
}

// Failed reports whether the scanner has met an error.
func (s *Scanner) Failed() bool { return s.msg != "" }

// Problem returns the first error's message and offset, without allocating;
// msg is "" when there is none.
func (s *Scanner) Problem() (msg string, offset int) { return s.msg, s.at }

// Offset returns the cursor's byte offset.
func (s *Scanner) Offset() int { return s.i }

// Fail records msg at the cursor as the error, unless there is one already,
// and stops the scanner. Callers use it for values that are well formed but
// wrong for them.
func (s *Scanner) Fail(msg string) { s.FailAt(s.i, msg) }

// FailAt is Fail at byte offset off.
func (s *Scanner) FailAt(off int, msg string) {
	if s.msg == "" {
		s.msg, s.at = msg, off
	}
	s.i = len(s.b)
}

// Peek skips whitespace and returns the next byte, or 0 at the end (and
// after an error).
func (s *Scanner) Peek() byte {
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return c
		}
	}
	return 0
}

// AtEnd reports whether nothing but whitespace is left.
func (s *Scanner) AtEnd() bool { return s.Peek() == 0 && s.i == len(s.b) }

// End checks that nothing but whitespace follows the document.
func (s *Scanner) End() {
	if !s.AtEnd() {
		s.Fail("data after the top-level value")
	}
}

// Null consumes a null if one is next and reports whether it did.
func (s *Scanner) Null() bool {
	if s.Peek() != 'n' {
		return false
	}
	s.literal("null")
	return !s.Failed()
}

func (s *Scanner) literal(lit string) {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		s.Fail("invalid literal")
		return
	}
	s.i += len(lit)
}

// open enters the object or array that starts at the cursor with c. It
// reports whether there are members to read: false when the container is
// empty (and already left) or on an error.
func (s *Scanner) open(c, end byte, what string) bool {
	if s.Peek() != c {
		s.Fail(what)
		return false
	}
	if s.depth >= s.maxDepth {
		s.Fail("nested too deeply")
		return false
	}
	s.i++
	if s.Peek() == end {
		s.i++
		return false
	}
	s.depth++ // left by the caller at the closing byte
	return true
}

// Object reads the object at the cursor, calling member with each key and
// the cursor on its value. The key is decoded; it is a sub-slice of the
// input unless it has escapes. member may read the value or leave it: a value
// it does not read is skipped. Anything but an object is an error.
func (s *Scanner) Object(member func(key []byte)) {
	if !s.open('{', '}', "expected an object") {
		return
	}
	for {
		if s.Peek() != '"' {
			s.Fail("expected a string key")
			return
		}
		key := s.Bytes()
		if s.Peek() != ':' {
			s.Fail("expected ':' after a key")
			return
		}
		s.i++
		s.Peek()
		start := s.i
		member(key)
		if !s.next(start, '}', "expected ',' or '}' in an object") {
			return
		}
	}
}

// Array reads the array at the cursor, calling elem with the cursor on each
// element; an element elem does not read is skipped. Anything but an array
// is an error.
func (s *Scanner) Array(elem func()) {
	if !s.open('[', ']', "expected an array") {
		return
	}
	for {
		s.Peek()
		start := s.i
		elem()
		if !s.next(start, ']', "expected ',' or ']' in an array") {
			return
		}
	}
}

// next ends the member or element whose value began at start, skipping the
// value if the callback left it, and reads what follows: it reports whether
// a ',' announced another, or leaves the container at end.
func (s *Scanner) next(start int, end byte, msg string) bool {
	if s.Failed() {
		return false
	}
	if s.i == start {
		s.Skip()
	}
	switch s.Peek() {
	case ',':
		s.i++
		return true
	case end:
		s.i++
		s.depth--
		return false
	}
	s.Fail(msg)
	return false
}

// Skip reads and checks one value of any type.
func (s *Scanner) Skip() {
	switch c := s.Peek(); {
	case c == '{':
		s.Object(func([]byte) {})
	case c == '[':
		s.Array(func() {})
	case c == '"':
		s.Raw()
	case c == '-' || '0' <= c && c <= '9':
		s.Number()
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == 'n':
		s.literal("null")
	case c == 0 && s.i == len(s.b):
		s.Fail("unexpected end of JSON")
	default:
		s.Fail("unexpected character")
	}
}

// Value reads one value of any type and returns its JSON text, a sub-slice
// of the input.
func (s *Scanner) Value() []byte {
	s.Peek()
	start := s.i
	s.Skip()
	if s.Failed() {
		return nil
	}
	return s.b[start:s.i]
}

// Raw reads the string at the cursor and returns its content with escapes
// left in, a sub-slice of the input. The escapes are checked.
func (s *Scanner) Raw() []byte {
	raw, _ := s.scanString()
	return raw
}

// String reads the string at the cursor, appends its decoded value to dst
// and returns the extended dst.
func (s *Scanner) String(dst []byte) []byte {
	raw, simple := s.scanString()
	if simple {
		return append(dst, raw...)
	}
	dst, _ = unquote(dst, raw, true)
	return dst
}

// StringLen reads the string at the cursor and returns the length in bytes
// of its decoded value (what String would append), without decoding it.
func (s *Scanner) StringLen() int {
	raw, simple := s.scanString()
	if simple {
		return len(raw)
	}
	_, n := unquote(nil, raw, false)
	return n
}

// Bytes reads the string at the cursor and returns its decoded value: a
// sub-slice of the input when it needs no decoding, else a new slice.
func (s *Scanner) Bytes() []byte {
	raw, simple := s.scanString()
	if simple {
		return raw
	}
	k, _ := unquote(make([]byte, 0, len(raw)), raw, true)
	return k
}

// scanString reads the string at the cursor, checking its escapes, and
// returns its content as written; simple reports content that decodes to
// itself (no escapes, valid UTF-8).
func (s *Scanner) scanString() (raw []byte, simple bool) {
	if s.Peek() != '"' {
		s.Fail("expected a string")
		return nil, false
	}
	b := s.b
	start := s.i + 1
	var seen byte // every plain byte ORed: ≥ 0x80 means non-ASCII
	plain := true
	for i := start; ; {
		// Most of a string is plain bytes: pass them in a tight loop.
		for i < len(b) && !special[b[i]] {
			seen |= b[i]
			i++
		}
		if i >= len(b) {
			s.FailAt(len(b), "unterminated string")
			return nil, false
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			raw = b[start:i]
			return raw, plain && (seen < utf8.RuneSelf || utf8.Valid(raw))
		case c == '\\':
			plain = false
			if i+1 >= len(b) {
				s.FailAt(i, "unterminated string")
				return nil, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := hex4(b, i+2); !ok {
					s.FailAt(i, `invalid \u escape`)
					return nil, false
				}
				i += 6
			default:
				s.FailAt(i, "invalid escape in string")
				return nil, false
			}
		default:
			s.FailAt(i, "control character in string")
			return nil, false
		}
	}
}

// special marks the bytes that end a run of plain bytes in a string: the
// closing quote, an escape, and the control characters JSON forbids there.
var special = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// unquote decodes raw, a string's checked content, as encoding/json does:
// it appends the value to dst when out is set, and returns its length.
func unquote(dst, raw []byte, out bool) ([]byte, int) {
	n := 0
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			var r rune
			switch e := raw[i+1]; e {
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			case 'u':
				r, _ = hex4(raw, i+2)
				i += 6
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						r2, _ = hex4(raw, i+2)
					}
					if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
						r = p
						i += 6
					} else {
						r = utf8.RuneError // a lone surrogate; what follows stands alone
					}
				}
				n += utf8.RuneLen(r)
				if out {
					dst = utf8.AppendRune(dst, r)
				}
				continue
			default: // '"', '\\', '/'
				r = rune(e)
			}
			i += 2
			n++
			if out {
				dst = append(dst, byte(r))
			}
		case c < utf8.RuneSelf:
			// Copy the run up to the next escape or non-ASCII byte in one go.
			j := i + 1
			for j < len(raw) && raw[j] != '\\' && raw[j] < utf8.RuneSelf {
				j++
			}
			n += j - i
			if out {
				dst = append(dst, raw[i:j]...)
			}
			i = j
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				n += len(string(utf8.RuneError))
				if out {
					dst = utf8.AppendRune(dst, utf8.RuneError)
				}
			} else {
				n += size
				if out {
					dst = append(dst, raw[i:i+size]...)
				}
			}
			i += size
		}
	}
	return dst, n
}

func hex4(b []byte, i int) (rune, bool) {
	if len(b)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// Number reads the number at the cursor and returns its text, a sub-slice
// of the input. A leading zero followed by a digit is an invalid number, not
// two values.
func (s *Scanner) Number() []byte {
	s.Peek()
	start, i := s.i, s.i
	digits := func() int {
		from := i
		for i < len(s.b) && '0' <= s.b[i] && s.b[i] <= '9' {
			i++
		}
		return i - from
	}
	if i < len(s.b) && s.b[i] == '-' {
		i++
	}
	first := i
	if n := digits(); n == 0 || n > 1 && s.b[first] == '0' {
		s.FailAt(start, "invalid number")
		return nil
	}
	if i < len(s.b) && s.b[i] == '.' {
		i++
		if digits() == 0 {
			s.FailAt(start, "invalid number")
			return nil
		}
	}
	if i < len(s.b) && (s.b[i] == 'e' || s.b[i] == 'E') {
		i++
		if i < len(s.b) && (s.b[i] == '+' || s.b[i] == '-') {
			i++
		}
		if digits() == 0 {
			s.FailAt(start, "invalid number")
			return nil
		}
	}
	s.i = i
	return s.b[start:i]
}

// Int reads a number that must be an integer in int's range, as
// encoding/json requires of an int field: 5.0 and 1e3 are errors.
func (s *Scanner) Int() int {
	s.Peek()
	start := s.i
	text := s.Number()
	if s.Failed() {
		return 0
	}
	neg := text[0] == '-'
	if neg {
		text = text[1:]
	}
	var v uint64
	for _, c := range text {
		if c < '0' || c > '9' {
			s.FailAt(start, "number is not an integer")
			return 0
		}
		if v > (math.MaxUint64-9)/10 {
			s.FailAt(start, "number out of range")
			return 0
		}
		v = v*10 + uint64(c-'0')
	}
	switch {
	case !neg && v > math.MaxInt:
		s.FailAt(start, "number out of range")
		return 0
	case neg && v > math.MaxInt+1:
		s.FailAt(start, "number out of range")
		return 0
	case neg:
		return int(-v)
	}
	return int(v)
}

// exactDigits is the longest run of decimal digits a float64 holds exactly
// (10^15 < 2^53), so Float can sum them digit by digit.
const exactDigits = 15

// Float reads a number as a float64. One too large for float64 is ±Inf.
func (s *Scanner) Float() float64 {
	text := s.Number()
	if s.Failed() {
		return 0
	}
	if len(text) <= exactDigits {
		// Most numbers are small counts: read them without ParseFloat.
		var v float64
		for _, c := range text {
			if c < '0' || c > '9' {
				goto parse
			}
			v = v*10 + float64(c-'0')
		}
		return v
	}
parse:
	v, _ := strconv.ParseFloat(string(text), 64) // the grammar is checked: only a range error is left
	return v
}
