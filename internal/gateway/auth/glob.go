package auth

import "fmt"

// maxPatternLen bounds a model pattern: 2048 is the longest model
// identifier (ID, inference profile ID or ARN) Bedrock Runtime accepts.
const maxPatternLen = 2048

// validatePattern checks a model pattern: a model ID, inference profile ID
// or ARN in which '*' and '?' are wildcards. Any other character outside a
// model identifier's (letters, digits, '.', '-', '_', ':', '/') is a
// mistake, most often a regular expression or a shell class, and is
// refused rather than read literally.
func validatePattern(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("is empty; '*' allows every model")
	case len(p) > maxPatternLen:
		return fmt.Errorf("is %d characters long; at most %d", len(p), maxPatternLen)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case isAlnum(rune(c)), c == '.', c == '-', c == '_', c == ':', c == '/', c == '*', c == '?':
		case c == '[' || c == ']' || c == '{' || c == '}':
			return fmt.Errorf("has %q at byte %d; classes and alternatives are not supported, only '*' and '?' "+
				"(list one pattern per model instead)", c, i)
		default:
			return fmt.Errorf("has %q at byte %d; a pattern is a model ID, inference profile ID or ARN with '*' and '?' wildcards", c, i)
		}
	}
	return nil
}

// match reports whether the model identifier s matches the pattern p: '*'
// matches any run of characters, '/' and ':' included, '?' any one
// character, and every other character itself, case-sensitively; the
// whole of s must match. It runs in O(len(p)×len(s)) at worst, with no
// recursion: on a mismatch it only moves the last '*' one character on.
func match(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0 // the last '*' seen in p, and where in s it began matching
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			mark++
			pi, si = star+1, mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
