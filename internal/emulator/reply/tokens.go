package reply

import (
	"unicode"
	"unicode/utf8"
)

// PieceRunes is the most runes one token holds.
const PieceRunes = 4

// Next returns the length in bytes of the first token of text, or 0 if text
// is empty.
//
// The tokenizer is an approximation of a real one, chosen so counts follow
// text size (about four characters per token) and so it is exact to reason
// about: text is a sequence of words, each a run of whitespace followed by a
// run of other characters; each word is cut, from its start, into pieces of
// at most PieceRunes runes; each piece is one token. A word's leading space
// thus travels with it (" the" is one token, " model" is " mod" + "el").
//
// Next depends only on the text it is given, so tokenizing the rest of a text
// after any token boundary gives exactly the tokens that followed that
// boundary: a reply cut after n tokens and resumed is tokenized the same way.
func Next(text string) int {
	i, runes := 0, 0
	word := false
	for i < len(text) && runes < PieceRunes {
		c := text[i]
		size := 1
		var space bool
		if c < utf8.RuneSelf {
			space = asciiSpace[c]
		} else {
			var r rune
			r, size = utf8.DecodeRuneInString(text[i:])
			space = unicode.IsSpace(r)
		}
		if space && word {
			break // the next word starts here
		}
		if !space {
			word = true
		}
		i += size
		runes++
	}
	return i
}

// Count returns the number of tokens in text (see Next for the rule).
func Count(text string) int {
	_, n := scan(text, -1)
	return n
}

// Cut returns the byte length of the first n tokens of text, or len(text) if
// text has n tokens or fewer.
func Cut(text string, n int) int {
	if n <= 0 {
		return 0
	}
	end, _ := scan(text, n)
	return end
}

// scan walks text piece by piece, as Next would, in one pass. It stops before
// the piece that would exceed limit (limit < 0: no limit) and returns where it
// stopped and how many pieces it passed. ASCII words are measured whole;
// anything else goes rune by rune.
func scan(text string, limit int) (end, n int) {
	for i := 0; i < len(text); {
		j := i
		for j < len(text) && asciiSpace[text[j]] {
			j++
		}
		for j < len(text) && text[j] < utf8.RuneSelf && !asciiSpace[text[j]] {
			j++
		}
		if j < len(text) && text[j] >= utf8.RuneSelf {
			// A word start is a piece boundary, so the rune-by-rune scan can
			// take over from here.
			if limit >= 0 {
				limit -= n
			}
			e, m := scanRunes(text[i:], limit)
			return i + e, n + m
		}
		pieces := (j - i + PieceRunes - 1) / PieceRunes
		if limit >= 0 && n+pieces > limit {
			return i + (limit-n)*PieceRunes, limit
		}
		n += pieces
		i = j
	}
	return len(text), n
}

// scanRunes is scan for any text, one rune at a time. limit < 0: no limit.
func scanRunes(text string, limit int) (end, n int) {
	if limit < 0 {
		limit = -1
	}
	runes, word := 0, false
	for i := 0; i < len(text); {
		c := text[i]
		size := 1
		var space bool
		if c < utf8.RuneSelf {
			space = asciiSpace[c]
		} else {
			var r rune
			r, size = utf8.DecodeRuneInString(text[i:])
			space = unicode.IsSpace(r)
		}
		if runes == 0 || runes == PieceRunes || space && word {
			if n == limit {
				return i, n
			}
			n++
			runes = 0
			if space {
				word = false
			}
		}
		if !space {
			word = true
		}
		runes++
		i += size
	}
	return len(text), n
}

var asciiSpace = [256]bool{' ': true, '\n': true, '\t': true, '\r': true, '\v': true, '\f': true}
