package emulator

import "github.com/keel-run/keel/internal/jsonscan"

// jsonReader reads a request body in one pass, checking its syntax as it
// goes: the emulator reads two request shapes (Converse and the Anthropic
// Messages body) on its hot path, and encoding/json's reflection cost half of
// everything else the emulator does per request. Keys match exactly, as
// Bedrock's JSON protocol does. Values of an unexpected type are a syntax
// error, as they are a decoding error for encoding/json; the nesting bound is
// encoding/json's.
type jsonReader struct {
	jsonscan.Scanner
}

func newJSONReader(b []byte) jsonReader {
	return jsonReader{Scanner: jsonscan.New(b, 0)}
}

// str reads a string value.
func (r *jsonReader) str() string {
	return string(r.Bytes())
}

// strings reads an array of strings, or null.
func (r *jsonReader) strings(dst []string) []string {
	dst = dst[:0]
	if r.Null() {
		return nil
	}
	r.Array(func() { dst = append(dst, r.str()) })
	return dst
}
