package admission

import (
	"math"
)

// scanner walks a JSON body once, counting what EstimateBody counts. It
// checks the JSON grammar as it goes; the first problem stops it.
type scanner struct {
	b     []byte
	i     int
	text  int // UTF-8 bytes of counted text
	media int // flat tokens for images and documents
	max   int
	err   string // a constant string, so an error costs no allocation until reported
	errAt int
}

func (s *scanner) fail(msg string) bool {
	if s.err == "" {
		s.err, s.errAt = msg, s.i
	}
	return false
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) top() {
	if s.peek() != '{' {
		s.fail("not a JSON object")
		return
	}
	ok := s.object(0, func(key []byte) bool {
		switch string(key) {
		case "system", "messages", "prompt", "inputText", "message", "chat_history":
			return s.walk(key, 1)
		case "max_tokens", "max_gen_len", "max_tokens_to_sample":
			return s.maxTokens()
		case "inferenceConfig":
			return s.object(1, func(k []byte) bool {
				if string(k) == "maxTokens" || string(k) == "max_new_tokens" {
					return s.maxTokens()
				}
				return s.value(2)
			})
		case "textGenerationConfig":
			return s.object(1, func(k []byte) bool {
				if string(k) == "maxTokenCount" {
					return s.maxTokens()
				}
				return s.value(2)
			})
		case "toolConfig", "tools":
			return s.raw(1)
		}
		return s.value(1)
	})
	if !ok {
		return
	}
	if s.ws(); s.i < len(s.b) {
		s.fail("data after the JSON object")
	}
}

// walk reads the value at s.i, found under key inside the system prompt or
// the messages, counting its text.
func (s *scanner) walk(key []byte, depth int) bool {
	if depth > maxDepth {
		return s.fail("nested too deeply")
	}
	switch s.peek() {
	case '"':
		n, ok := s.str()
		if ok && textKey(key) {
			s.text += n
		}
		return ok
	case '{':
		switch string(key) {
		case "image":
			s.media += ImageTokens
			return s.value(depth)
		case "document":
			s.media += DocumentTokens
			return s.value(depth)
		case "input", "json":
			return s.raw(depth)
		}
		return s.object(depth, func(k []byte) bool {
			if string(k) == "type" && s.peek() == '"' {
				start := s.i
				if _, ok := s.str(); !ok {
					return false
				}
				switch string(s.b[start:s.i]) {
				case `"image"`:
					s.media += ImageTokens
				case `"document"`:
					s.media += DocumentTokens
				}
				return true
			}
			return s.walk(k, depth+1)
		})
	case '[':
		if string(key) == "input" || string(key) == "json" {
			return s.raw(depth)
		}
		return s.array(depth, func() bool { return s.walk(key, depth+1) })
	}
	return s.value(depth)
}

// textKey reports whether a string found under key is text the model reads.
func textKey(key []byte) bool {
	switch string(key) {
	case "text", "content", "thinking", "system", "prompt", "inputText", "message", "input", "json":
		return true
	}
	return false
}

// raw counts the JSON of the value at s.i as text (tool definitions, tool
// inputs and results).
func (s *scanner) raw(depth int) bool {
	s.ws()
	start := s.i
	if !s.value(depth) {
		return false
	}
	s.text += s.i - start
	return true
}

// maxTokens reads a max tokens number.
func (s *scanner) maxTokens() bool {
	s.ws()
	start := s.i
	v, ok := s.number()
	if !ok {
		return false
	}
	switch {
	case v < 0:
		s.i = start
		return s.fail("max tokens is negative")
	case v > math.MaxInt32:
		s.i = start
		return s.fail("max tokens is larger than 2147483647")
	}
	s.max = int(v)
	return true
}

// value checks and skips any JSON value.
func (s *scanner) value(depth int) bool {
	if depth > maxDepth {
		return s.fail("nested too deeply")
	}
	switch c := s.peek(); {
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '{':
		return s.object(depth, func([]byte) bool { return s.value(depth + 1) })
	case c == '[':
		return s.array(depth, func() bool { return s.value(depth + 1) })
	case c == '-' || c >= '0' && c <= '9':
		_, ok := s.number()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == 0:
		return s.fail("unexpected end of JSON")
	}
	return s.fail("unexpected character")
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.fail("invalid literal")
	}
	s.i += len(lit)
	return true
}

// object reads an object at s.i, calling member with each key (unescaped
// keys are passed as they are) and s.i at its value; member must read the
// value.
func (s *scanner) object(depth int, member func(key []byte) bool) bool {
	if s.peek() != '{' {
		return s.fail("expected an object")
	}
	if depth > maxDepth {
		return s.fail("nested too deeply")
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		if s.peek() != '"' {
			return s.fail("expected a string key")
		}
		start := s.i
		if _, ok := s.str(); !ok {
			return false
		}
		key := s.b[start+1 : s.i-1]
		if s.peek() != ':' {
			return s.fail("expected ':' after a key")
		}
		s.i++
		if !member(key) {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return s.fail("expected ',' or '}' in an object")
		}
	}
}

// array reads an array at s.i, calling elem with s.i at each element.
func (s *scanner) array(depth int, elem func() bool) bool {
	if depth > maxDepth {
		return s.fail("nested too deeply")
	}
	s.i++ // '['
	if s.peek() == ']' {
		s.i++
		return true
	}
	for {
		if !elem() {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return s.fail("expected ',' or ']' in an array")
		}
	}
}

// str reads a string at s.i and returns the length in UTF-8 bytes of its
// decoded text.
func (s *scanner) str() (int, bool) {
	n := 0
	i := s.i + 1
	for i < len(s.b) {
		c := s.b[i]
		switch {
		case c == '"':
			s.i = i + 1
			return n, true
		case c == '\\':
			if i+1 >= len(s.b) {
				s.i = i
				return 0, s.fail("unterminated string")
			}
			switch s.b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				n++
				i += 2
			case 'u':
				cp, ok := hex4(s.b, i+2)
				if !ok {
					s.i = i
					return 0, s.fail(`invalid \u escape`)
				}
				switch {
				case cp < 0x80:
					n++
				case cp < 0x800, cp >= 0xD800 && cp < 0xE000: // a surrogate is half of a 4-byte character
					n += 2
				default:
					n += 3
				}
				i += 6
			default:
				s.i = i
				return 0, s.fail("invalid escape in string")
			}
		case c < 0x20:
			s.i = i
			return 0, s.fail("control character in string")
		default:
			n++
			i++
		}
	}
	s.i = i
	return 0, s.fail("unterminated string")
}

func hex4(b []byte, i int) (rune, bool) {
	if len(b)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// number reads a JSON number and returns its value, truncated toward zero.
func (s *scanner) number() (float64, bool) {
	i := s.i
	neg := false
	if i < len(s.b) && s.b[i] == '-' {
		neg = true
		i++
	}
	digits := func() (float64, int) {
		v, n := 0.0, 0
		for i < len(s.b) && s.b[i] >= '0' && s.b[i] <= '9' {
			v = v*10 + float64(s.b[i]-'0')
			i++
			n++
		}
		return v, n
	}
	first := i
	v, n := digits()
	if n == 0 || n > 1 && s.b[first] == '0' {
		s.i = first
		return 0, s.fail("invalid number")
	}
	if i < len(s.b) && s.b[i] == '.' {
		i++
		n := 0
		for f := 0.1; i < len(s.b) && s.b[i] >= '0' && s.b[i] <= '9'; f /= 10 {
			v += float64(s.b[i]-'0') * f
			i++
			n++
		}
		if n == 0 {
			s.i = i
			return 0, s.fail("invalid number")
		}
	}
	if i < len(s.b) && (s.b[i] == 'e' || s.b[i] == 'E') {
		i++
		eneg := false
		if i < len(s.b) && (s.b[i] == '+' || s.b[i] == '-') {
			eneg = s.b[i] == '-'
			i++
		}
		e, n := digits()
		if n == 0 {
			s.i = i
			return 0, s.fail("invalid number")
		}
		if eneg {
			e = -e
		}
		v *= math.Pow(10, e)
	}
	v = math.Trunc(v)
	s.i = i
	if neg {
		v = -v
	}
	return v, true
}
