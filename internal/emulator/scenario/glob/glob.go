// Package glob matches the model, region and operation patterns of an
// emulator scenario file.
//
// A pattern is literal text in which '*' stands for any run of characters,
// including none. No other character is special: model ids hold '.', ':' and
// '/' (inference profile ARNs), and all of them match themselves. Matching is
// case-sensitive, as Bedrock model ids and region names are.
package glob

import "strings"

// Match reports whether s matches pattern. The empty pattern matches only
// the empty string; "*" matches everything.
func Match(pattern, s string) bool {
	// Split on '*': the first piece must be a prefix, the last a suffix, and
	// the middle pieces must appear in order in between. Leftmost matching of
	// the middle pieces is enough, since '*' can absorb anything.
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == s
	}
	prefix := pattern[:star]
	if !strings.HasPrefix(s, prefix) {
		return false
	}
	s = s[len(prefix):]
	rest := pattern[star+1:]
	for {
		star = strings.IndexByte(rest, '*')
		if star < 0 {
			return len(s) >= len(rest) && strings.HasSuffix(s, rest)
		}
		piece := rest[:star]
		i := strings.Index(s, piece)
		if i < 0 {
			return false
		}
		s = s[i+len(piece):]
		rest = rest[star+1:]
	}
}

// Literal reports whether pattern has no '*', so it matches one string only.
func Literal(pattern string) bool {
	return strings.IndexByte(pattern, '*') < 0
}
