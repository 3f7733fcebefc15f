package dlq_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/dlq"
)

func TestRedactBody(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // JSON, compared as values
	}{
		{
			name: "converse messages and system",
			in:   `{"messages":[{"role":"user","content":[{"text":"héllo wörld"},{"image":{"format":"png","source":{"bytes":"iVBORw0K"}}}]}],"system":[{"text":"be brief"}],"inferenceConfig":{"maxTokens":50,"temperature":0.5}}`,
			want: `{"messages":[{"role":"user","content":[{"text":"[redacted 11 chars]"},{"image":{"format":"png","source":{"bytes":"[redacted 8 chars]"}}}]}],"system":[{"text":"[redacted 8 chars]"}],"inferenceConfig":{"maxTokens":50,"temperature":0.5}}`,
		},
		{
			name: "anthropic string content and string system",
			in:   `{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"system":"You are a pirate","messages":[{"role":"user","content":"Ahoy"},{"role":"assistant","content":[{"type":"text","text":"Arr"}]}]}`,
			want: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"system":"[redacted 16 chars]","messages":[{"role":"user","content":"[redacted 4 chars]"},{"role":"assistant","content":[{"type":"text","text":"[redacted 3 chars]"}]}]}`,
		},
		{
			name: "tool use input is data",
			in:   `{"messages":[{"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"lookup","input":{"ssn":"123-45-6789"}}}]}]}`,
			want: `{"messages":[{"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"[redacted 6 chars]","input":{"ssn":"[redacted 11 chars]"}}}]}]}`,
		},
		{
			name: "llama prompt and titan inputText",
			in:   `{"prompt":"tell me","max_gen_len":10,"inputText":"abc"}`,
			want: `{"prompt":"[redacted 7 chars]","max_gen_len":10,"inputText":"[redacted 3 chars]"}`,
		},
		{
			name: "large numbers are kept exactly",
			in:   `{"messages":[],"seed":12345678901234567890}`,
			want: `{"messages":[],"seed":12345678901234567890}`,
		},
		{
			name: "not JSON",
			in:   `hello there`,
			want: `{"redacted":"11 bytes, not a JSON object"}`,
		},
		{
			name: "a JSON array is not a body",
			in:   `["x"]`,
			want: `{"redacted":"5 bytes, not a JSON object"}`,
		},
		{
			name: "two objects",
			in:   `{"prompt":"a"} {"prompt":"b"}`,
			want: `{"redacted":"29 bytes, not a JSON object"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dlq.RedactBody([]byte(tt.in))
			var g, w any
			dg := json.NewDecoder(strings.NewReader(string(got)))
			dg.UseNumber()
			if err := dg.Decode(&g); err != nil {
				t.Fatalf("redacted body is not JSON: %s", got)
			}
			dw := json.NewDecoder(strings.NewReader(tt.want))
			dw.UseNumber()
			if err := dw.Decode(&w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
