package emulator

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonReader reads a JSON document from a byte slice in one pass, checking
// its syntax as it goes: the emulator reads two request shapes (Converse and
// the Anthropic Messages body) on its hot path, and encoding/json's
// reflection cost half of everything else the emulator does per request.
// Keys match exactly, as Bedrock's JSON protocol does. Values of an
// unexpected type are a syntax error, as they are a decoding error for
// encoding/json. After the first error every read returns zero values; err
// reports it.
type jsonReader struct {
	b     []byte
	i     int
	depth int
	err   error
}

// maxJSONDepth bounds nesting, as encoding/json does, so a hostile body
// cannot exhaust the stack.
const maxJSONDepth = 10000

var errJSONDepth = errors.New("exceeded max depth")

func (r *jsonReader) fail(what string) {
	if r.err == nil {
		r.err = errors.New(what + " at offset " + strconv.Itoa(r.i))
	}
	r.i = len(r.b)
}

// next skips whitespace and returns the next byte, or 0 at the end.
func (r *jsonReader) next() byte {
	for r.i < len(r.b) {
		switch c := r.b[r.i]; c {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return c
		}
	}
	return 0
}

func (r *jsonReader) expect(c byte) bool {
	if r.next() != c {
		r.fail("expected " + strconv.QuoteRune(rune(c)))
		return false
	}
	r.i++
	return true
}

// null consumes a null if one is next.
func (r *jsonReader) null() bool {
	if r.next() == 'n' {
		r.literal("null")
		return true
	}
	return false
}

func (r *jsonReader) literal(lit string) {
	if len(r.b)-r.i < len(lit) || string(r.b[r.i:r.i+len(lit)]) != lit {
		r.fail("invalid literal")
		return
	}
	r.i += len(lit)
}

// end checks that nothing but whitespace follows the document.
func (r *jsonReader) end() {
	if r.next(); r.i < len(r.b) {
		r.fail("invalid character after top-level value")
	}
}

// object calls field for each key of the object at the cursor, with the
// cursor on the key's value; field must consume the value (or call skip).
func (r *jsonReader) object(field func(key []byte)) {
	if !r.expect('{') {
		return
	}
	if r.depth++; r.depth > maxJSONDepth {
		r.fail(errJSONDepth.Error())
		return
	}
	defer func() { r.depth-- }()
	if r.next() == '}' {
		r.i++
		return
	}
	for r.err == nil {
		key := r.rawString()
		if !r.expect(':') {
			return
		}
		field(key)
		switch r.next() {
		case ',':
			r.i++
		case '}':
			r.i++
			return
		default:
			r.fail("expected ',' or '}'")
		}
	}
}

// array calls elem for each element of the array at the cursor; elem must
// consume the element.
func (r *jsonReader) array(elem func()) {
	if !r.expect('[') {
		return
	}
	if r.depth++; r.depth > maxJSONDepth {
		r.fail(errJSONDepth.Error())
		return
	}
	defer func() { r.depth-- }()
	if r.next() == ']' {
		r.i++
		return
	}
	for r.err == nil {
		elem()
		switch r.next() {
		case ',':
			r.i++
		case ']':
			r.i++
			return
		default:
			r.fail("expected ',' or ']'")
		}
	}
}

// str reads a string value.
func (r *jsonReader) str() string {
	return string(r.rawString())
}

// strings reads an array of strings, or null.
func (r *jsonReader) strings(dst []string) []string {
	dst = dst[:0]
	if r.null() {
		return nil
	}
	r.array(func() { dst = append(dst, r.str()) })
	return dst
}

// rawString reads a string and returns its decoded bytes. They alias the
// document when the string has no escapes, so callers must copy what they
// keep (str does).
func (r *jsonReader) rawString() []byte {
	if !r.expect('"') {
		return nil
	}
	start := r.i
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			s := r.b[start:r.i]
			r.i++
			return s
		case c == '\\' || c >= utf8.RuneSelf:
			return r.slowString(start)
		case c < 0x20:
			r.fail("invalid control character in string")
			return nil
		}
		r.i++
	}
	r.fail("unexpected end of string")
	return nil
}

// slowString decodes a string with escapes or non-ASCII bytes, from start
// (just after the opening quote). Invalid UTF-8 and unpaired surrogates
// become U+FFFD, as encoding/json does.
func (r *jsonReader) slowString(start int) []byte {
	out := make([]byte, 0, r.i-start+16)
	out = append(out, r.b[start:r.i]...)
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			return out
		case c < 0x20:
			r.fail("invalid control character in string")
			return nil
		case c < utf8.RuneSelf && c != '\\':
			out = append(out, c)
			r.i++
		case c >= utf8.RuneSelf:
			ch, size := utf8.DecodeRune(r.b[r.i:])
			if ch == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, r.b[r.i:r.i+size]...)
			}
			r.i += size
		default: // an escape
			if r.i+1 >= len(r.b) {
				r.fail("unexpected end of string")
				return nil
			}
			e := r.b[r.i+1]
			r.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				ch := r.hex4()
				if r.err != nil {
					return nil
				}
				if utf16.IsSurrogate(ch) {
					ch2 := rune(-1)
					if r.i+1 < len(r.b) && r.b[r.i] == '\\' && r.b[r.i+1] == 'u' {
						save := r.i
						r.i += 2
						ch2 = r.hex4()
						if r.err != nil {
							return nil
						}
						if dec := utf16.DecodeRune(ch, ch2); dec != utf8.RuneError {
							out = utf8.AppendRune(out, dec)
							continue
						}
						r.i = save // not a pair: the second escape stands alone
					}
					ch = utf8.RuneError
				}
				out = utf8.AppendRune(out, ch)
			default:
				r.i--
				r.fail("invalid escape in string")
				return nil
			}
		}
	}
	r.fail("unexpected end of string")
	return nil
}

func (r *jsonReader) hex4() rune {
	if len(r.b)-r.i < 4 {
		r.fail("invalid \\u escape")
		return 0
	}
	var v rune
	for _, c := range r.b[r.i : r.i+4] {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			r.fail("invalid \\u escape")
			return 0
		}
	}
	r.i += 4
	return v
}

// number consumes a JSON number and returns its text.
func (r *jsonReader) number() []byte {
	r.next()
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	switch {
	case r.i < len(r.b) && r.b[r.i] == '0':
		r.i++
	case r.i < len(r.b) && '1' <= r.b[r.i] && r.b[r.i] <= '9':
		r.digits()
	default:
		r.fail("invalid number")
		return nil
	}
	if r.i < len(r.b) && r.b[r.i] == '.' {
		r.i++
		if !r.digits() {
			r.fail("invalid number")
			return nil
		}
	}
	if r.i < len(r.b) && (r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		r.i++
		if r.i < len(r.b) && (r.b[r.i] == '+' || r.b[r.i] == '-') {
			r.i++
		}
		if !r.digits() {
			r.fail("invalid number")
			return nil
		}
	}
	return r.b[start:r.i]
}

func (r *jsonReader) digits() bool {
	start := r.i
	for r.i < len(r.b) && '0' <= r.b[r.i] && r.b[r.i] <= '9' {
		r.i++
	}
	return r.i > start
}

// integer reads a number that must be an integer in int's range, as
// encoding/json requires of an int field.
func (r *jsonReader) integer() int {
	text := r.number()
	if r.err != nil {
		return 0
	}
	v, err := strconv.Atoi(string(text))
	if err != nil {
		r.fail("number " + string(text) + " is not an integer")
		return 0
	}
	return v
}

// skip consumes one value of any type.
func (r *jsonReader) skip() {
	switch r.next() {
	case '{':
		r.object(func([]byte) { r.skip() })
	case '[':
		r.array(r.skip)
	case '"':
		r.rawString()
	case 't':
		r.literal("true")
	case 'f':
		r.literal("false")
	case 'n':
		r.literal("null")
	default:
		r.number()
	}
}
