package emulator

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var converseKeys = []string{"messages", "role", "content", "system", "inferenceConfig", "maxTokens", "stopSequences", "text", "toolResult", "cachePoint"}

// ambiguous reports whether b has a duplicate key in an object or a key that
// encoding/json would match to a field by case folding: there the two
// decoders are allowed to differ (Bedrock matches keys exactly).
func ambiguous(b []byte, known []string) bool {
	type frame struct {
		obj, wantKey bool
		keys         map[string]bool
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				stack = append(stack, &frame{obj: true, wantKey: true, keys: map[string]bool{}})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].wantKey = true
				}
			}
			continue
		}
		if top != nil && top.obj && top.wantKey {
			k := tok.(string)
			if top.keys[k] {
				return true
			}
			for _, kk := range known {
				if k != kk && strings.EqualFold(k, kk) {
					return true
				}
			}
			top.keys[k] = true
			top.wantKey = false
			continue
		}
		if top != nil && top.obj {
			top.wantKey = true
		}
	}
}

// normalize makes empty slices nil, so results compare by content.
func normalize(c *converseBody) {
	if len(c.Messages) == 0 {
		c.Messages = nil
	}
	if len(c.System) == 0 {
		c.System = nil
	}
	for i := range c.Messages {
		if len(c.Messages[i].Content) == 0 {
			c.Messages[i].Content = nil
		}
		normalizeBlocks(c.Messages[i].Content)
	}
	normalizeBlocks(c.System)
	if c.InferenceConfig != nil && len(c.InferenceConfig.StopSequences) == 0 {
		c.InferenceConfig.StopSequences = nil
	}
}

func normalizeBlocks(bs []converseBlock) {
	for i := range bs {
		if tr := bs[i].ToolResult; tr != nil && len(tr.Content) == 0 {
			tr.Content = nil
		}
	}
}

func TestDecodeConverse(t *testing.T) {
	tests := []struct {
		name string
		body string
		err  bool
	}{
		{name: "full", body: `{"messages":[{"role":"user","content":[{"text":"hi"},{"toolResult":{"toolUseId":"x","content":[{"text":"r"},{"json":{"a":[1,2.5e3,true,null]}}]}}]}],"system":[{"text":"s"},{"cachePoint":{"type":"default"}}],"inferenceConfig":{"maxTokens":12,"temperature":0.5,"stopSequences":["a","b"]},"additionalModelRequestFields":{"x":{"y":[]}}}`},
		{name: "escapes", body: `{"messages":[{"role":"user","content":[{"text":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00\ud800x\u0041"}]}]}`},
		{name: "nulls", body: `{"messages":[null,{"role":null,"content":null}],"system":null,"inferenceConfig":{"maxTokens":null,"stopSequences":null}}`},
		{name: "top-level null", body: `null`},
		{name: "whitespace", body: " \n\t{ \"messages\" : [ ] } \r\n"},
		{name: "invalid UTF-8", body: "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\xffb\"}]}]}"},
		{name: "trailing garbage", body: `{}x`, err: true},
		{name: "not an object", body: `[]`, err: true},
		{name: "wrong type", body: `{"messages":"x"}`, err: true},
		{name: "fractional max tokens", body: `{"inferenceConfig":{"maxTokens":5.5}}`, err: true},
		{name: "huge max tokens", body: `{"inferenceConfig":{"maxTokens":99999999999999999999}}`, err: true},
		{name: "bad escape", body: `{"system":[{"text":"\x"}]}`, err: true},
		{name: "control character", body: "{\"system\":[{\"text\":\"a\x01\"}]}", err: true},
		{name: "unterminated", body: `{"messages":[`, err: true},
		{name: "bad literal", body: `{"x":nul}`, err: true},
		{name: "bad number", body: `{"x":-}`, err: true},
		{name: "cache points", body: `{"system":[{"text":"s"},{"cachePoint":{"type":"default"}}],"messages":[{"role":"user","content":[{"text":"a"},{"cachePoint":{"type":"default"}},{"cachePoint":null}]}]}`},
		{name: "bad cache point", body: `{"system":[{"cachePoint":"x"}]}`, err: true},
		{name: "deep nesting", body: `{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got, want converseBody
			gotErr := decodeConverse([]byte(tt.body), &got)
			wantErr := json.Unmarshal([]byte(tt.body), &want)
			if (gotErr != nil) != tt.err || (wantErr != nil) != tt.err {
				t.Fatalf("errors: ours %v, encoding/json %v; want error %v", gotErr, wantErr, tt.err)
			}
			normalize(&got)
			normalize(&want)
			if !tt.err && !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("decoded\n%s\nencoding/json\n%s", g, w)
			}
		})
	}
}

// FuzzDecodeConverse checks the one-pass decoder against encoding/json.
func FuzzDecodeConverse(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":3,"stopSequences":["x"]}}`))
	f.Add([]byte(`{"system":[{"text":"\ud83d\ude00\u00e9"}],"messages":[{"content":[{"toolResult":{"content":[{"text":"t"}]}}]}]}`))
	f.Add([]byte(`{"a":[1,-2.5e-3,true,false,null,{"b":"c"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if ambiguous(body, converseKeys) {
			return
		}
		var got, want converseBody
		gotErr := decodeConverse(body, &got)
		wantErr := json.Unmarshal(body, &want)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("%q: ours %v, encoding/json %v", body, gotErr, wantErr)
		}
		if gotErr != nil {
			return
		}
		normalize(&got)
		normalize(&want)
		if !reflect.DeepEqual(got, want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			t.Fatalf("%q:\ndecoded       %s\nencoding/json %s", body, g, w)
		}
	})
}

// The encoding/json reading of Anthropic bodies the one-pass decoder
// replaced, kept as the reference it is checked against.
type refAnthropicBody struct {
	AnthropicVersion *string `json:"anthropic_version"`
	MaxTokens        *int    `json:"max_tokens"`
	Messages         []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	System        json.RawMessage `json:"system"`
	StopSequences []string        `json:"stop_sequences"`
}

type refAnthropicBlock struct {
	Type         string          `json:"type"`
	Text         *string         `json:"text"`
	Content      json.RawMessage `json:"content"`
	CacheControl *struct{}       `json:"cache_control"`
}

func refAnthropicText(raw json.RawMessage) (anthropicContent, error) {
	var c anthropicContent
	if len(raw) == 0 || string(raw) == "null" {
		return c, nil
	}
	if raw[0] == '"' {
		err := json.Unmarshal(raw, &c.text)
		c.blocks, c.blank = 1, strings.TrimSpace(c.text) == ""
		return c, err
	}
	var bs []refAnthropicBlock
	if err := json.Unmarshal(raw, &bs); err != nil {
		return c, err
	}
	c.blocks = len(bs)
	for _, b := range bs {
		switch {
		case b.Text != nil:
			if strings.TrimSpace(*b.Text) == "" {
				c.blank = true
			}
			c.text += *b.Text
		case b.Type == "tool_result" && len(b.Content) > 0:
			t, err := refAnthropicText(b.Content)
			if err != nil {
				return c, err
			}
			c.text += t.text
		}
		if b.CacheControl != nil {
			c.cached, c.cacheAt = true, len(c.text)
		}
	}
	return c, nil
}

func refDecodeAnthropic(body []byte) (anthropicRequest, error) {
	var a anthropicRequest
	var b refAnthropicBody
	if err := json.Unmarshal(body, &b); err != nil {
		return a, err
	}
	a.version, a.maxTokens, a.hasMessages, a.stops = b.AnthropicVersion, b.MaxTokens, b.Messages != nil, b.StopSequences
	var err error
	if a.system, err = refAnthropicText(b.System); err != nil {
		return a, err
	}
	for _, m := range b.Messages {
		c, err := refAnthropicText(m.Content)
		if err != nil {
			return a, err
		}
		a.messages = append(a.messages, anthropicMessage{role: m.Role, content: c})
	}
	return a, nil
}

var anthropicKeys = []string{"anthropic_version", "max_tokens", "messages", "role", "content", "system", "stop_sequences", "type", "text", "cache_control"}

func sameAnthropic(a, b anthropicRequest) bool {
	if len(a.messages) == 0 && len(b.messages) == 0 {
		a.messages, b.messages = nil, nil
	}
	if len(a.stops) == 0 && len(b.stops) == 0 {
		a.stops, b.stops = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func TestDecodeAnthropic(t *testing.T) {
	tests := []struct {
		name string
		body string
		err  bool
	}{
		{name: "string content", body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"system":"s","messages":[{"role":"user","content":"hi"}],"stop_sequences":["x"]}`},
		{name: "blocks", body: `{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image","source":{"data":"..."}},{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"r"}]},{"type":"text","text":" "}]}],"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}]}`},
		{name: "tool result with string content", body: `{"messages":[{"role":"user","content":[{"type":"tool_result","content":"r"}]}]}`},
		{name: "content ignored outside tool results", body: `{"messages":[{"role":"user","content":[{"type":"text","text":"a","content":[1]}]}]}`},
		{name: "bad tool result content", body: `{"messages":[{"role":"user","content":[{"type":"tool_result","content":5}]}]}`, err: true},
		{name: "bad content", body: `{"messages":[{"role":"user","content":5}]}`, err: true},
		{name: "null messages", body: `{"messages":null}`},
		{name: "empty messages", body: `{"messages":[]}`},
		{name: "trailing garbage", body: `{} {}`, err: true},
		{name: "cache control", body: `{"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}},{"type":"text","text":"t"}],"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b","cache_control":{"type":"ephemeral"}},{"type":"text","text":"c","cache_control":null}]}]}`},
		{name: "bad cache control", body: `{"system":[{"type":"text","text":"s","cache_control":5}]}`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got anthropicRequest
			gotErr := decodeAnthropic([]byte(tt.body), &got)
			want, wantErr := refDecodeAnthropic([]byte(tt.body))
			if (gotErr != nil) != tt.err || (wantErr != nil) != tt.err {
				t.Fatalf("errors: ours %v, reference %v; want error %v", gotErr, wantErr, tt.err)
			}
			if !tt.err && !sameAnthropic(got, want) {
				t.Errorf("decoded %+v\nreference %+v", got, want)
			}
		})
	}
}

// FuzzDecodeAnthropic checks the one-pass decoder against the encoding/json
// reference.
func FuzzDecodeAnthropic(f *testing.F) {
	f.Add([]byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"system":"s","messages":[{"role":"user","content":"hi"}],"stop_sequences":["x"]}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"tool_result","content":[{"type":"text","text":"r"}]},{"type":"text","text":"\u00e9"}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if ambiguous(body, anthropicKeys) {
			return
		}
		var got anthropicRequest
		gotErr := decodeAnthropic(body, &got)
		want, wantErr := refDecodeAnthropic(body)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("%q: ours %v, reference %v", body, gotErr, wantErr)
		}
		if gotErr == nil && !sameAnthropic(got, want) {
			t.Fatalf("%q:\ndecoded   %+v\nreference %+v", body, got, want)
		}
	})
}
