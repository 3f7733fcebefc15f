package admission

import (
	"math"

	"github.com/keel-run/keel/internal/jsonscan"
)

// estimator walks a JSON body once with a jsonscan.Scanner, counting what
// EstimateBody counts; the scanner checks the grammar, and its first problem
// stops the walk.
type estimator struct {
	s     *jsonscan.Scanner
	text  int // UTF-8 bytes of counted text
	media int // flat tokens for images and documents
	max   int
}

// top reads the body's top-level object.
func (e *estimator) top() {
	s := e.s
	if s.Peek() != '{' {
		s.Fail("not a JSON object")
		return
	}
	s.Object(func(key []byte) {
		switch string(key) {
		case "system", "messages", "prompt", "inputText", "message", "chat_history":
			e.walk(key)
		case "max_tokens", "max_gen_len", "max_tokens_to_sample":
			e.maxTokens()
		case "inferenceConfig":
			s.Object(func(k []byte) {
				if string(k) == "maxTokens" || string(k) == "max_new_tokens" {
					e.maxTokens()
				}
			})
		case "textGenerationConfig":
			s.Object(func(k []byte) {
				if string(k) == "maxTokenCount" {
					e.maxTokens()
				}
			})
		case "toolConfig", "tools":
			e.text += len(s.Value())
		}
	})
	if !s.Failed() && !s.AtEnd() {
		s.Fail("data after the JSON object")
	}
}

// walk reads the value found under key inside the system prompt or the
// messages, counting its text: strings under a text key, the JSON of tool
// inputs and results, and a flat count per image or document.
func (e *estimator) walk(key []byte) {
	s := e.s
	switch s.Peek() {
	case '"':
		if n := s.StringLen(); textKey(key) {
			e.text += n
		}
	case '{':
		switch string(key) {
		case "image":
			e.media += ImageTokens
			s.Skip()
			return
		case "document":
			e.media += DocumentTokens
			s.Skip()
			return
		case "input", "json":
			e.text += len(s.Value())
			return
		}
		s.Object(func(k []byte) {
			if string(k) == "type" && s.Peek() == '"' {
				switch string(s.Raw()) {
				case "image":
					e.media += ImageTokens
				case "document":
					e.media += DocumentTokens
				}
				return
			}
			e.walk(k)
		})
	case '[':
		if string(key) == "input" || string(key) == "json" {
			e.text += len(s.Value())
			return
		}
		s.Array(func() { e.walk(key) })
	default:
		s.Skip()
	}
}

// textKey reports whether a string under key is text a model reads.
func textKey(key []byte) bool {
	switch string(key) {
	case "text", "content", "thinking", "system", "prompt", "inputText", "message", "input", "json":
		return true
	}
	return false
}

// maxTokens reads a max tokens number: a non-negative integer (a fraction
// is cut) that fits in 32 bits.
func (e *estimator) maxTokens() {
	s := e.s
	s.Peek()
	start := s.Offset()
	v := math.Trunc(s.Float())
	switch {
	case s.Failed():
	case v < 0:
		s.FailAt(start, "max tokens is negative")
	case v > math.MaxInt32:
		s.FailAt(start, "max tokens is larger than 2147483647")
	default:
		e.max = int(v)
	}
}
