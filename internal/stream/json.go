package stream

import (
	"math"

	"github.com/keel-run/keel/internal/jsonscan"
)

// maxDepth bounds the nesting an event's JSON may have: events are shallow,
// and a hostile one cannot make the parser walk far.
const maxDepth = 64

// maxCount caps a token count read from an event, far above any real one,
// so that a hostile number cannot overflow the sums of counts.
const maxCount = 1 << 53

// integer reads a count: a number (its integer part, capped at ±maxCount)
// or null (0).
func integer(s *jsonscan.Scanner) int {
	if s.Null() {
		return 0
	}
	return int(max(-maxCount, min(math.Trunc(s.Float()), maxCount)))
}

// str reads a string value with its escapes left in, or nothing when the
// value is not a string (the object it is in skips it).
func str(s *jsonscan.Scanner) []byte {
	if s.Peek() != '"' {
		return nil
	}
	return s.Raw()
}
