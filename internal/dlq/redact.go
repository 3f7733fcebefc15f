package dlq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// structural names the keys inside messages and system whose string values
// describe the shape of a message, not its content; they are kept.
var structural = map[string]bool{
	"role": true, "type": true, "format": true, "media_type": true, "id": true,
	"toolUseId": true, "tool_use_id": true, "status": true,
}

// RedactBody returns a copy of a Bedrock Runtime request body with the text
// of its messages and system prompts replaced by "[redacted N chars]":
// every string under the top-level "messages" and "system" keys (Converse,
// Anthropic Messages, Amazon Nova bodies), except structural ones such as
// "role" and "type", and the top-level "prompt" (Meta Llama) and "inputText"
// (Amazon Titan) strings. Images and documents inside messages, whose bytes
// are base64 strings, are redacted the same way. Everything else (model
// settings, tool definitions) is kept. A body that is not a JSON object is
// replaced whole by {"redacted": "N bytes, not a JSON object"}.
func RedactBody(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var top map[string]any
	if err := dec.Decode(&top); err != nil || top == nil || dec.More() {
		out, _ := json.Marshal(map[string]string{"redacted": fmt.Sprintf("%d bytes, not a JSON object", len(body))})
		return out
	}
	for k, v := range top {
		switch k {
		case "messages", "system":
			top[k] = redactTree(v)
		case "prompt", "inputText":
			if s, ok := v.(string); ok {
				top[k] = redacted(s)
			}
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(top); err != nil {
		out, _ := json.Marshal(map[string]string{"redacted": fmt.Sprintf("%d bytes", len(body))})
		return out
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func redacted(s string) string {
	return fmt.Sprintf("[redacted %d chars]", utf8.RuneCountInString(s))
}

func redactTree(v any) any {
	switch x := v.(type) {
	case string:
		return redacted(x)
	case []any:
		for i := range x {
			x[i] = redactTree(x[i])
		}
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && structural[k] {
				x[k] = s
				continue
			}
			x[k] = redactTree(val)
		}
	}
	return v
}
