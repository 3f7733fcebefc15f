package auth

import "fmt"

// maxPatternLen bounds a model pattern: 2048 is the longest model
// identifier (ID, inference profile ID or ARN) Bedrock Runtime accepts.
const maxPatternLen = 2048

// validatePattern checks a model pattern: a model ID, inference profile ID
// or ARN in which '*' stands for any run of characters, as in the
// emulator's scenario files (package glob, which matches them). Any other
// character outside a model identifier's (letters, digits, '.', '-', '_',
// ':', '/') is a mistake, most often a regular expression or a shell
// class, and is refused rather than read literally.
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
		case isAlnum(rune(c)), c == '.', c == '-', c == '_', c == ':', c == '/', c == '*':
		case c == '?' || c == '[' || c == ']' || c == '{' || c == '}':
			return fmt.Errorf("has %q at byte %d; the only wildcard is '*' (list one pattern per model instead)", c, i)
		default:
			return fmt.Errorf("has %q at byte %d; a pattern is a model ID, inference profile ID or ARN with '*' wildcards", c, i)
		}
	}
	return nil
}
