package jsonscan

import (
	"unicode/utf16"
	"unicode/utf8"
)

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
