package jsonscan

import (
	"cmp"
	"strconv"
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
