package jsonscan

import (
	"math"
	"strconv"
)

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
