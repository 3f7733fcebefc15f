package stream

import (
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds nesting, so hostile input cannot exhaust the stack.
const maxDepth = 64

// scanner reads just enough JSON to find the fields an event carries,
// without allocating: keys and raw strings are sub-slices of the input,
// and unescaped strings are appended to a buffer the caller owns. Any
// syntax error sets bad and moves the cursor to the end, so every later
// call returns at once.
type scanner struct {
	b     []byte
	i     int
	depth int
	bad   bool
}

func (s *scanner) fail() {
	s.bad = true
	s.i = len(s.b)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// open enters the object or array that starts at the cursor with c, one
// level deeper. It reports whether there are members to read: false when the
// container is empty (and already left) or the input is bad (s.bad is set).
func (s *scanner) open(c, end byte) bool {
	if s.peek() != c {
		s.fail()
		return false
	}
	if s.depth++; s.depth > maxDepth {
		s.fail()
		return false
	}
	s.i++
	if s.peek() == end {
		s.i++
		s.depth--
		return false
	}
	return true
}

// object reads the object at the cursor, calling member with each key (raw,
// escapes left in) and the cursor on its value. member may read the value;
// a value it leaves alone is skipped.
func (s *scanner) object(member func(key []byte)) {
	if !s.open('{', '}') {
		return
	}
	for !s.bad {
		key, ok := s.raw()
		if !ok || s.peek() != ':' {
			s.fail()
			return
		}
		s.i++
		s.ws()
		at := s.i
		member(key)
		if s.bad {
			return
		}
		if s.i == at {
			s.skip()
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			s.depth--
			return
		default:
			s.fail()
		}
	}
}

// array reads the array at the cursor, skipping its elements.
func (s *scanner) array() {
	if !s.open('[', ']') {
		return
	}
	for !s.bad {
		s.skip()
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return
		default:
			s.fail()
		}
	}
}

// skip reads any value.
func (s *scanner) skip() {
	switch c := s.peek(); {
	case c == '{':
		s.object(func([]byte) {})
	case c == '[':
		s.array()
	case c == '"':
		if _, ok := s.raw(); !ok {
			s.fail()
		}
	case c == '-' || ('0' <= c && c <= '9'):
		s.number()
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == 'n':
		s.literal("null")
	default:
		s.fail()
	}
}

func (s *scanner) literal(lit string) {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		s.fail()
		return
	}
	s.i += len(lit)
}

// null consumes a null at the cursor and reports whether there was one.
func (s *scanner) null() bool {
	if s.peek() == 'n' {
		s.literal("null")
		return !s.bad
	}
	return false
}

// raw reads the string at the cursor and returns its content with escapes
// left in.
func (s *scanner) raw() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, true
		case c == '\\':
			s.i += 2
		case c < 0x20:
			s.fail()
			return nil, false
		default:
			s.i++
		}
	}
	s.fail()
	return nil, false
}

// str reads the string at the cursor, appends its unescaped value to dst
// and returns the extended dst.
func (s *scanner) str(dst []byte) []byte {
	v, ok := s.raw()
	if !ok {
		s.fail()
		return dst
	}
	for i := 0; i < len(v); {
		c := v[i]
		if c != '\\' {
			// Copy the run up to the next escape in one go.
			j := i + 1
			for j < len(v) && v[j] != '\\' {
				j++
			}
			dst = append(dst, v[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(v) {
			s.fail()
			return dst
		}
		switch v[i+1] {
		case '"', '\\', '/':
			dst = append(dst, v[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(v, i+2)
			if !ok {
				s.fail()
				return dst
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(v, i+2); ok && i+1 < len(v) && v[i] == '\\' && v[i+1] == 'u' {
					if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
						dst = utf8.AppendRune(dst, p)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			s.fail()
			return dst
		}
		i += 2
	}
	return dst
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a number at the cursor and returns its integer part,
// saturated at 1<<53; ok is false when there is no number.
func (s *scanner) number() (int64, bool) {
	s.ws()
	start := s.i
	neg := false
	if s.i < len(s.b) && s.b[s.i] == '-' {
		neg = true
		s.i++
	}
	var n int64
	digits := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		if n < 1<<53 {
			n = n*10 + int64(s.b[s.i]-'0')
		}
		s.i++
		digits++
	}
	if digits == 0 {
		s.i = start
		s.fail()
		return 0, false
	}
	// A fraction or exponent: consume it; counts are integers.
frac:
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E', '+', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			s.i++
		default:
			break frac
		}
	}
	if neg {
		n = -n
	}
	return n, true
}

// integer reads a number or null (0) at the cursor.
func (s *scanner) integer() int {
	if s.null() {
		return 0
	}
	n, _ := s.number()
	return int(n)
}
