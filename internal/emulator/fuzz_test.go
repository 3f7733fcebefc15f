package emulator

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzServe sends arbitrary bodies to every operation and model format: the
// emulator must answer each with a well-formed reply or a well-formed
// error, never panic.
func FuzzServe(f *testing.F) {
	seeds := []string{
		`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`,
		`{"messages":[{"role":"user","content":[{"text":"hi"}]},{"role":"assistant","content":[{"text":"Yes"}]}],"inferenceConfig":{"maxTokens":3,"stopSequences":["a"]}}`,
		`{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":[{"type":"tool_result","content":"x"}]}]}`,
		`{"messages":[{"role":"user","content":[{"text":"\u2028\ud800"}]}],"inferenceConfig":{"max_new_tokens":4}}`,
		`{"prompt":"hi","max_gen_len":3}`,
		`{"inputText":"hi","textGenerationConfig":{"maxTokenCount":2,"stopSequences":["x"]}}`,
		`{"input":{"invokeModel":{"body":"e30="}}}`,
		`{"input":{"converse":{"messages":[]}}}`,
		`null`, `[]`, `{"messages":null}`, `{"messages":[{"content":"x"}]}`, "\x00\xff",
	}
	for _, s := range seeds {
		f.Add(s, uint8(0))
	}
	s, err := New(Options{})
	if err != nil {
		f.Fatal(err)
	}
	models := []string{haiku3, novaLite, llama8b, titanExp}
	ops := []string{OpConverse, OpConverseStream, OpInvoke, OpInvokeStream, OpCountTokens}
	f.Fuzz(func(t *testing.T, body string, pick uint8) {
		model, op := models[int(pick)%len(models)], ops[int(pick/4)%len(ops)]
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("POST", "/model/"+model+"/"+op, strings.NewReader(body)))
		switch {
		case w.Code == 200 && (op == OpConverseStream || op == OpInvokeStream):
			if w.Header().Get("Content-Type") != "application/vnd.amazon.eventstream" {
				t.Fatalf("stream answered with %q", w.Header().Get("Content-Type"))
			}
		case w.Code == 200 || w.Code == 400 || w.Code == 404:
			if !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s %s: status %d with invalid JSON %q", model, op, w.Code, w.Body)
			}
			if w.Code != 200 && w.Header().Get("X-Amzn-ErrorType") == "" {
				t.Fatalf("error without X-Amzn-ErrorType")
			}
		default:
			t.Fatalf("%s %s: status %d: %s", model, op, w.Code, w.Body)
		}
	})
}
