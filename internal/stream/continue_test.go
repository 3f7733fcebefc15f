package stream

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestContinue(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		body   string
		c      Continuation
		want   string // JSON, compared as values
		err    string
	}{
		{
			name: "converse: assistant message appended, limit lowered, other fields kept", format: Converse,
			body: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":50,"temperature":0.5},"system":[{"text":"s"}]}`,
			c:    Continuation{OK: true, Prefill: "Hello", Tokens: 7},
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]},{"role":"assistant","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":43,"temperature":0.5},"system":[{"text":"s"}]}`,
		},
		{
			name: "converse: the caller's own prefill is extended", format: Converse,
			body: `{"messages":[{"role":"user","content":[{"text":"Hi"}]},{"role":"assistant","content":[{"text":"{"}]}]}`,
			c:    Continuation{OK: true, Prefill: `"a": 1`, Tokens: 3},
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]},{"role":"assistant","content":[{"text":"{\"a\": 1"}]}]}`,
		},
		{
			name: "converse: nothing to prefill is a plain retry", format: Converse,
			body: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":50}}`,
			c:    Continuation{OK: true, Tokens: 1},
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":49}}`,
		},
		{
			name: "converse: limit reached", format: Converse,
			body: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":5}}`,
			c:    Continuation{OK: true, Prefill: "abc", Tokens: 5}, err: "output limit",
		},
		{
			name: "anthropic: string content, max_tokens lowered", format: Invoke,
			body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"Hi"}]}`,
			c:    Continuation{OK: true, Prefill: "Hello there", Tokens: 3},
			want: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":97,"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello there"}]}`,
		},
		{
			name: "anthropic: a prefill in string form is extended", format: Invoke,
			body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Once"}]}`,
			c:    Continuation{OK: true, Prefill: " upon", Tokens: 1},
			want: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":99,"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Once upon"}]}`,
		},
		{
			name: "anthropic: a prefill ending in a non-text block gets a text block", format: Invoke,
			body: `{"max_tokens":10,"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":[{"type":"image","source":{}}]}]}`,
			c:    Continuation{OK: true, Prefill: "It shows", Tokens: 2},
			want: `{"max_tokens":8,"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":[{"type":"image","source":{}},{"type":"text","text":"It shows"}]}]}`,
		},
		{
			name: "converse continue-turn: the text as an assistant turn, then the user turn", format: Converse,
			body: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":50}}`,
			c:    Continuation{OK: true, Prefill: "Hello", Tokens: 7, Mode: ContinueTurn},
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]},{"role":"assistant","content":[{"text":"Hello"}]},{"role":"user","content":[{"text":` + quote(ContinuePrompt) + `}]}],"inferenceConfig":{"maxTokens":43}}`,
		},
		{
			name: "anthropic continue-turn: string content", format: Invoke,
			body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"Hi"}]}`,
			c:    Continuation{OK: true, Prefill: "Hello there", Tokens: 3, Mode: ContinueTurn},
			want: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":97,"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello there"},{"role":"user","content":` + quote(ContinuePrompt) + `}]}`,
		},
		{
			name: "anthropic continue-turn: the caller's own assistant message is extended, then the user turn", format: Invoke,
			body: `{"max_tokens":100,"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Once"}]}`,
			c:    Continuation{OK: true, Prefill: " upon", Tokens: 1, Mode: ContinueTurn},
			want: `{"max_tokens":99,"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Once upon"},{"role":"user","content":` + quote(ContinuePrompt) + `}]}`,
		},
		{
			name: "continue-turn with nothing to carry is a plain retry", format: Converse,
			body: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":50}}`,
			c:    Continuation{OK: true, Tokens: 1, Mode: ContinueTurn},
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":49}}`,
		},
		{name: "not JSON", format: Converse, body: `nope`, c: Continuation{OK: true, Prefill: "a"}, err: "not a JSON object"},
		{name: "no messages", format: Converse, body: `{"system":[]}`, c: Continuation{OK: true, Prefill: "a"}, err: "no messages"},
		{name: "limit not a number", format: Invoke, body: `{"max_tokens":"ten","messages":[{"role":"user","content":"Hi"}]}`, c: Continuation{OK: true, Prefill: "a"}, err: "not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Continue(tt.format, []byte(tt.body), tt.c)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one mentioning %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			json.Unmarshal(got, &g)
			json.Unmarshal([]byte(tt.want), &w)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	if _, err := Continue(Converse, []byte(`{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":5}}`), Continuation{Tokens: 5}); !errors.Is(err, ErrLimitReached) {
		t.Fatalf("err %v, want ErrLimitReached", err)
	}
}

func TestThinking(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		body   string
		want   bool
	}{
		{"converse plain", Converse, `{"messages":[]}`, false},
		{"converse thinking on", Converse, `{"additionalModelRequestFields":{"thinking":{"type":"enabled","budget_tokens":2000}}}`, true},
		{"converse thinking off", Converse, `{"additionalModelRequestFields":{"thinking":{"type":"disabled"}}}`, false},
		{"converse reasoning config", Converse, `{"additionalModelRequestFields":{"reasoning_config":{"type":"enabled"}}}`, true},
		{"anthropic thinking on", Invoke, `{"thinking":{"type":"enabled","budget_tokens":1024},"messages":[]}`, true},
		{"anthropic adaptive", Invoke, `{"thinking":{"type":"adaptive"}}`, true},
		{"anthropic null", Invoke, `{"thinking":null}`, false},
		{"a top-level thinking key means nothing to Converse", Converse, `{"thinking":{"type":"enabled"}}`, false},
		{"not JSON", Invoke, `x`, false},
		{"invalid JSON after the field", Invoke, `{"thinking":{"type":"enabled"},}`, false},
		{"data after the object", Invoke, `{"thinking":{"type":"enabled"}} x`, false},
		{"not an object", Invoke, `[{"thinking":{"type":"enabled"}}]`, false},
		{"top-level null", Invoke, `null`, false},
		{"the last of duplicate keys counts", Invoke, `{"thinking":{"type":"enabled"},"thinking":null}`, false},
		{"the last of duplicate keys counts, on", Invoke, `{"thinking":null,"thinking":{"type":"enabled"}}`, true},
		{"type in another case", Invoke, `{"thinking":{"TYPE":"Disabled"}}`, false},
		{"disabled with escapes", Invoke, `{"thinking":{"type":"dis\u0061bled"}}`, false},
		{"a type that is not a string", Invoke, `{"thinking":{"type":0}}`, true},
		{"a null type after disabled", Invoke, `{"thinking":{"type":"disabled","type":null}}`, false},
		{"a bad type after disabled", Invoke, `{"thinking":{"type":"disabled","Type":[]}}`, true},
		{"a value that is not an object", Invoke, `{"reasoningConfig":true}`, true},
		{"an empty object", Invoke, `{"thinking":{}}`, true},
		{"converse fields null", Converse, `{"additionalModelRequestFields":null}`, false},
		{"converse fields not an object", Converse, `{"additionalModelRequestFields":[{"thinking":{}}]}`, false},
		{"converse duplicate fields", Converse, `{"additionalModelRequestFields":{"thinking":{}},"additionalModelRequestFields":{}}`, false},
		{"converse reasoningConfig", Converse, `{"additionalModelRequestFields":{"reasoningConfig":{"type":"enabled"}},"messages":[]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Thinking(tt.format, []byte(tt.body)); got != tt.want {
				t.Fatalf("Thinking = %v, want %v", got, tt.want)
			}
			if ref := thinkingJSON(tt.format, []byte(tt.body)); ref != tt.want {
				t.Fatalf("the encoding/json reference says %v, want %v", ref, tt.want)
			}
		})
	}
}

// thinkingJSON is Thinking as it was written with encoding/json: the
// reference Thinking must agree with.
func thinkingJSON(format Format, body []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	if format == Converse {
		var extra map[string]json.RawMessage
		if json.Unmarshal(m["additionalModelRequestFields"], &extra) != nil {
			return false
		}
		m = extra
	}
	for _, k := range []string{"thinking", "reasoning_config", "reasoningConfig"} {
		raw, ok := m[k]
		if !ok || string(raw) == "null" {
			continue
		}
		var v struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &v) == nil && strings.EqualFold(v.Type, "disabled") {
			continue
		}
		return true
	}
	return false
}

// FuzzThinking checks Thinking against the encoding/json reference on any
// body, in both formats.
func FuzzThinking(f *testing.F) {
	for _, b := range []string{`{"thinking":{"type":"enabled"}}`, `{"additionalModelRequestFields":{"thinking":{"type":"disabled"}}}`,
		`{"reasoning_config":{"type":"Disabled","type":null}}`, `{"thinking":{"Type":"dis\u0061bled"}}`, `{"reasoningConfig":[]}`} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, format := range []Format{Converse, Invoke} {
			if got, want := Thinking(format, []byte(body)), thinkingJSON(format, []byte(body)); got != want {
				t.Fatalf("format %d, body %q: Thinking = %v, encoding/json says %v", format, body, got, want)
			}
		}
	})
}

// BenchmarkThinking reads a ConverseStream request of a few messages and
// tools, with thinking off, as engine.resumeMode does on every streamed call.
func BenchmarkThinking(b *testing.B) {
	var msgs []any
	for i := range 8 {
		msgs = append(msgs, map[string]any{"role": []string{"user", "assistant"}[i%2], "content": []any{map[string]any{"text": strings.Repeat("a line of the conversation so far. ", 10)}}})
	}
	body, _ := json.Marshal(map[string]any{"messages": msgs, "inferenceConfig": map[string]any{"maxTokens": 512},
		"toolConfig":                   map[string]any{"tools": []any{map[string]any{"toolSpec": map[string]any{"name": "lookup", "inputSchema": map[string]any{"json": map[string]any{"type": "object"}}}}}},
		"additionalModelRequestFields": map[string]any{"top_k": 40}})
	for _, impl := range []struct {
		name string
		f    func(Format, []byte) bool
	}{{"jsonscan", Thinking}, {"encoding-json", thinkingJSON}} {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if impl.f(Converse, body) {
					b.Fatal("thinking on")
				}
			}
		})
	}
}

func TestPrefillRule(t *testing.T) {
	tests := []struct {
		model            string
		accepts, refuses bool
	}{
		{"anthropic.claude-3-haiku-20240307-v1:0", true, false},
		{"anthropic.claude-3-5-sonnet-20241022-v2:0", true, false},
		{"us.anthropic.claude-3-7-sonnet-20250219-v1:0", true, false},
		{"anthropic.claude-sonnet-4-20250514-v1:0", true, false},
		{"us.anthropic.claude-opus-4-1-20250805-v1:0", true, false},
		{"global.anthropic.claude-sonnet-4-5-20250929-v1:0", true, false},
		{"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0", true, false},
		{"anthropic.claude-v2:1", false, false}, // not served today, so not in the table: neither known
		{"us.anthropic.claude-opus-4-6-v1", false, true},
		{"anthropic.claude-sonnet-4-6", false, true},
		{"anthropic.claude-opus-5-20270101-v1:0", false, false}, // no such id in the table
		{"global.anthropic.claude-opus-4-7", false, true},
		{"us.anthropic.claude-sonnet-5-5", false, true},
		{"amazon.nova-pro-v1:0", true, false},
		{"us.amazon.nova-lite-v1:0", true, false},
		{"meta.llama3-1-8b-instruct-v1:0", false, false},
		{"amazon.titan-text-express-v1", false, false},
		{"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			if got := AcceptsPrefill(tt.model); got != tt.accepts {
				t.Errorf("AcceptsPrefill(%q) = %v, want %v", tt.model, got, tt.accepts)
			}
			if got := RefusesPrefill(tt.model); got != tt.refuses {
				t.Errorf("RefusesPrefill(%q) = %v, want %v", tt.model, got, tt.refuses)
			}
		})
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
