package stream

import (
	"unicode"
	"unicode/utf8"
)

// A continue-turn continuation (see ContinueTurn) is a fresh reply to a
// request to go on, and a model often starts it by repeating the last
// words it sent. The splicer drops such an overlap: the longest stretch
// that ends the text the reader has and starts the continuation.

const (
	// MaxOverlap bounds an overlap, in bytes, and so how much of a
	// continuation is held back before the reader gets any of it. Models
	// asked to continue restart the last words or the last sentence, not
	// paragraphs; 256 bytes is a long sentence, about 64 tokens, which a
	// model streams in about a second.
	MaxOverlap = 256
	// MinOverlap is the fewest characters (runes) an overlap may have,
	// unless it is only the whitespace the reply ended with. One common
	// word with its spaces (" the ", " and ", " which ") is shorter, so a
	// continuation that merely starts with the same short word or letter
	// as the reply ended with is not cut; a model that repeats itself
	// repeats more than that.
	MinOverlap = 8
)

// Overlap returns the length in bytes of the longest overlap between the
// end of have and the start of next: the longest k such that have ends
// with next[:k], at most MaxOverlap, that is either only whitespace or at
// least MinOverlap runes starting at a word start (the rune before it in
// have is not a letter or digit, or its own first rune is not one). It
// never cuts next inside a UTF-8 sequence. 0 means no overlap.
func Overlap(have, next []byte) int {
	best, _ := overlap(have, next)
	return best
}

// overlap returns the best overlap k ≤ len(next) and reports whether a
// longer one might still be found once more of next has arrived.
func overlap(have, next []byte) (best int, pending bool) {
	n := len(have)
	for k := min(n, MaxOverlap); k > 0; k-- {
		start := n - k
		if !validOverlap(have, start) {
			continue
		}
		tail := have[start:]
		if k > len(next) {
			if !pending && string(tail[:len(next)]) == string(next) {
				pending = true
			}
			continue
		}
		if string(tail) == string(next[:k]) {
			return k, pending
		}
	}
	return 0, pending
}

// validOverlap reports whether have[start:] may be an overlap: it starts a
// rune, and is whitespace only or a long enough stretch from a word start.
func validOverlap(have []byte, start int) bool {
	tail := have[start:]
	if !utf8.RuneStart(tail[0]) {
		return false
	}
	if isSpace(tail) {
		return true
	}
	if utf8.RuneCount(tail) < MinOverlap {
		return false
	}
	if start == 0 {
		return true
	}
	before, _ := utf8.DecodeLastRune(have[:start])
	first, _ := utf8.DecodeRune(tail)
	return !wordRune(before) || !wordRune(first)
}

func wordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func isSpace(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if !unicode.IsSpace(r) {
			return false
		}
		b = b[n:]
	}
	return true
}
