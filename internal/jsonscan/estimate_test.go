package jsonscan_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/jsonscan"
)

// This file builds internal/admission's EstimateBody on a Scanner and runs
// admission's own cases against it (copied from estimate_test.go there): the
// scanner serves that use too, messages and offsets included.

const (
	BytesPerToken  = 4
	ImageTokens    = 1600
	DocumentTokens = 3000
	maxDepth       = 256
)

type Estimate struct{ InputTokens, MaxTokens int }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

type estimator struct {
	s                *jsonscan.Scanner
	text, media, max int
}

func EstimateBody(body []byte) (Estimate, error) {
	s := jsonscan.New(body, maxDepth)
	e := estimator{s: &s}
	if s.Peek() != '{' {
		s.Fail("not a JSON object")
	} else if e.top(); !s.AtEnd() {
		s.Fail("data after the JSON object")
	}
	if msg, at := s.Problem(); msg != "" {
		fallback := Estimate{InputTokens: ceilDiv(len(body), BytesPerToken)}
		return fallback, fmt.Errorf("admission: request body: %s at byte %d of %d", msg, at, len(body))
	}
	return Estimate{InputTokens: ceilDiv(e.text, BytesPerToken) + e.media, MaxTokens: e.max}, nil
}

func (e *estimator) top() {
	s := e.s
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
}

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
	}
}

func textKey(key []byte) bool {
	switch string(key) {
	case "text", "content", "thinking", "system", "prompt", "inputText", "message", "input", "json":
		return true
	}
	return false
}

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

func TestAdmissionEstimate(t *testing.T) {
	long := strings.Repeat("word ", 200) // 1000 bytes
	tests := []struct {
		name string
		body string
		want Estimate
	}{
		{
			name: "converse: system and messages, maxTokens",
			body: `{"system":[{"text":"abcd"}],"messages":[{"role":"user","content":[{"text":"` + long + `"}]}],` +
				`"inferenceConfig":{"maxTokens":512,"temperature":0.5}}`,
			want: Estimate{InputTokens: 1004 / 4, MaxTokens: 512},
		},
		{
			name: "converse: no maxTokens means unset",
			body: `{"messages":[{"role":"user","content":[{"text":"abcde"}]}]}`,
			want: Estimate{InputTokens: 2},
		},
		{
			name: "converse: image and document count flat, their bytes do not",
			body: `{"messages":[{"role":"user","content":[{"text":"abcd"},` +
				`{"image":{"format":"png","source":{"bytes":"` + strings.Repeat("A", 4000) + `"}}},` +
				`{"document":{"format":"pdf","name":"x","source":{"bytes":"QUFB"}}}]}]}`,
			want: Estimate{InputTokens: 1 + ImageTokens + DocumentTokens},
		},
		{
			name: "converse: tool use input and tool result json count as JSON, tool config too",
			body: `{"messages":[{"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"get","input":{"a":1}}}]},` +
				`{"role":"user","content":[{"toolResult":{"toolUseId":"t1","content":[{"json":{"b":2}},{"text":"ok"}]}}]}],` +
				`"toolConfig":{"tools":[]}}`,
			// {"a":1} 7 + {"b":2} 7 + ok 2 + {"tools":[]} 12 = 28 bytes
			want: Estimate{InputTokens: 7},
		},
		{
			name: "converse: reasoning text counts, signature does not",
			body: `{"messages":[{"role":"assistant","content":[{"reasoningContent":{"reasoningText":{"text":"abcdefgh","signature":"` +
				strings.Repeat("s", 400) + `"}}}]}]}`,
			want: Estimate{InputTokens: 2},
		},
		{
			name: "anthropic: string system and string content, max_tokens",
			body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":1024,"system":"abcd",` +
				`"messages":[{"role":"user","content":"abcdefgh"}]}`,
			want: Estimate{InputTokens: 3, MaxTokens: 1024},
		},
		{
			name: "anthropic: blocks, base64 image, tool_result with string content, thinking",
			body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":200,"system":[{"type":"text","text":"abcd","cache_control":{"type":"ephemeral"}}],` +
				`"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + strings.Repeat("B", 999) + `"}},` +
				`{"type":"text","text":"abcd"}]},` +
				`{"role":"assistant","content":[{"type":"thinking","thinking":"abcd","signature":"zz"},{"type":"tool_use","id":"x","name":"n","input":{}}]},` +
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":"x","content":"abcd"}]}],` +
				`"tools":[]}`,
			// text 4+4+4+4, input {} 2, tools [] 2 = 20 bytes
			want: Estimate{InputTokens: 5 + ImageTokens, MaxTokens: 200},
		},
		{
			name: "nova invoke: max_new_tokens",
			body: `{"schemaVersion":"messages-v1","system":[{"text":"abcd"}],"messages":[{"role":"user","content":[{"text":"abcd"}]}],` +
				`"inferenceConfig":{"max_new_tokens":300}}`,
			want: Estimate{InputTokens: 2, MaxTokens: 300},
		},
		{
			name: "llama: prompt and max_gen_len",
			body: `{"prompt":"abcdefghi","max_gen_len":128,"temperature":0.1}`,
			want: Estimate{InputTokens: 3, MaxTokens: 128},
		},
		{
			name: "titan: inputText and maxTokenCount",
			body: `{"inputText":"abcd","textGenerationConfig":{"maxTokenCount":77,"stopSequences":[]}}`,
			want: Estimate{InputTokens: 1, MaxTokens: 77},
		},
		{
			name: "cohere: message and chat history",
			body: `{"message":"abcd","chat_history":[{"role":"USER","message":"abcd"}],"max_tokens":10}`,
			want: Estimate{InputTokens: 2, MaxTokens: 10},
		},
		{
			name: "escapes decode to their UTF-8 length",
			// \n 1, \" 1, \u00e9 2 (é), \u4e2d 3 (中), \ud83d\ude00 4 (😀), é raw 2 bytes = 13
			body: `{"messages":[{"role":"user","content":[{"text":"\n\"\u00e9\u4e2d\ud83d\ude00é"}]}]}`,
			want: Estimate{InputTokens: 4},
		},
		{
			name: "text under other keys is not counted",
			body: `{"messages":[{"role":"user","content":[{"text":""}],"name":"` + long + `"}],"metadata":{"text":"` + long + `"}}`,
			want: Estimate{},
		},
		{
			name: "numbers: fraction and exponent",
			body: `{"max_tokens":1.5e3}`,
			want: Estimate{MaxTokens: 1500},
		},
		{
			name: "empty object",
			body: " {}\n",
			want: Estimate{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EstimateBody([]byte(tt.body))
			if err != nil || got != tt.want {
				t.Errorf("EstimateBody = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestAdmissionEstimateErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string // in the error
	}{
		{name: "empty", body: ``, want: "not a JSON object at byte 0 of 0"},
		{name: "array", body: `[1]`, want: "not a JSON object at byte 0"},
		{name: "unterminated", body: `{"messages":[{"text":"abc`, want: "unterminated string"},
		{name: "trailing data", body: `{} {}`, want: "data after the JSON object at byte 3"},
		{name: "missing colon", body: `{"a" 1}`, want: "expected ':' after a key at byte 5"},
		{name: "bad literal", body: `{"a":tru}`, want: "invalid literal at byte 5"},
		{name: "leading zero", body: `{"max_tokens":01}`, want: "invalid number at byte 14"},
		{name: "control character", body: "{\"a\":\"x\ty\"}", want: "control character in string at byte 7"},
		{name: "bad escape", body: `{"a":"\x"}`, want: "invalid escape in string at byte 6"},
		{name: "bad unicode escape", body: `{"a":"\u12G4"}`, want: `invalid \u escape at byte 6`},
		{name: "negative max tokens", body: `{"max_tokens":-5}`, want: "max tokens is negative at byte 14"},
		{name: "absurd max tokens", body: `{"inferenceConfig":{"maxTokens":1e12}}`, want: "max tokens is larger than 2147483647 at byte 32"},
		{name: "nested too deeply", body: `{"messages":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`, want: "nested too deeply"},
		{name: "missing comma", body: `{"a":1 "b":2}`, want: "expected ',' or '}' in an object at byte 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EstimateBody([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("EstimateBody(%q) = %+v, %v; want an error containing %q", tt.body, got, err, tt.want)
			}
			if want := (Estimate{InputTokens: ceilDiv(len(tt.body), BytesPerToken)}); got != want {
				t.Errorf("fallback estimate %+v, want %+v", got, want)
			}
		})
	}
}

func TestAdmissionEstimateDoesNotAllocate(t *testing.T) {
	body := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":1024,"system":"You are terse.",` +
		`"messages":[{"role":"user","content":[{"type":"text","text":"Hello \u00e9 there"}]}],"tools":[{"name":"x"}]}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = EstimateBody(body) }); n != 0 {
		t.Errorf("EstimateBody allocates %v times per call, want 0", n)
	}
}
