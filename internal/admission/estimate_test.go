package admission

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEstimateBody(t *testing.T) {
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
			if !json.Valid([]byte(tt.body)) {
				t.Fatalf("test body is not valid JSON: %s", tt.body)
			}
			got, err := EstimateBody([]byte(tt.body))
			if err != nil {
				t.Fatalf("EstimateBody: %v", err)
			}
			if got != tt.want {
				t.Errorf("EstimateBody = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEstimateBodyErrors(t *testing.T) {
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
			if err == nil {
				t.Fatalf("EstimateBody(%q) = %+v, want an error", tt.body, got)
			}
			if !strings.HasPrefix(err.Error(), "admission: request body: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			// The fallback: the whole body over BytesPerToken, max tokens unset.
			if want := (Estimate{InputTokens: ceilDiv(len(tt.body), BytesPerToken)}); got != want {
				t.Errorf("fallback estimate %+v, want %+v", got, want)
			}
		})
	}
}

func TestEstimateBodyDoesNotAllocate(t *testing.T) {
	body := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":1024,"system":"You are terse.",` +
		`"messages":[{"role":"user","content":[{"type":"text","text":"Hello \u00e9 there"}]}],"tools":[{"name":"x"}]}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = EstimateBody(body) }); n != 0 {
		t.Errorf("EstimateBody allocates %v times per call, want 0", n)
	}
}

// FuzzEstimateBody checks that the scanner never panics and agrees with
// encoding/json on which bodies are JSON objects.
func FuzzEstimateBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":5}}`,
		`{"system":"x","max_tokens":1,"messages":[{"role":"user","content":"y"}]}`, `{"a":[1,2.5e-3,true,null,"\u00e9"]}`, `[`, `{"a":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		est, err := EstimateBody(body)
		if est.InputTokens < 0 || est.MaxTokens < 0 {
			t.Fatalf("negative estimate %+v", est)
		}
		valid := json.Valid(body) && strings.HasPrefix(strings.TrimLeft(string(body), " \t\r\n"), "{")
		if err == nil && !valid {
			t.Fatalf("accepted a body encoding/json rejects: %q", body)
		}
		if err != nil && valid && !strings.Contains(err.Error(), "max tokens") && !strings.Contains(err.Error(), "nested too deeply") {
			t.Fatalf("rejected a JSON object: %v: %q", err, body)
		}
	})
}

func BenchmarkEstimateBody(b *testing.B) {
	msg := `{"role":"user","content":[{"text":"` + strings.Repeat("The quick brown fox jumps over the lazy dog. ", 100) + `"}]}`
	body := []byte(`{"system":[{"text":"You are helpful."}],"messages":[` + msg + `,` + msg + `],"inferenceConfig":{"maxTokens":1024}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EstimateBody(body); err != nil {
			b.Fatal(err)
		}
	}
}
