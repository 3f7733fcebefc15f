package emulator

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/emulator/reply"
	"github.com/keel-run/keel/internal/stream"
)

// sonnet46 is a model of the table that refuses a prefill.
const sonnet46 = "anthropic.claude-sonnet-4-6"

func TestPrefillRefused(t *testing.T) {
	s := newServer(t, Options{Seed: testSeed})
	path := func(model, op string) string { return "/model/" + url.PathEscape(model) + "/" + op }
	converse := func(msgs ...string) string {
		var m []map[string]any
		for i, text := range msgs {
			role := map[bool]string{true: "user", false: "assistant"}[i%2 == 0]
			m = append(m, map[string]any{"role": role, "content": []any{map[string]any{"text": text}}})
		}
		b, _ := json.Marshal(map[string]any{"messages": m, "inferenceConfig": map[string]any{"maxTokens": 50}})
		return string(b)
	}
	invoke := func(msgs ...string) string {
		var m []map[string]any
		for i, text := range msgs {
			role := map[bool]string{true: "user", false: "assistant"}[i%2 == 0]
			m = append(m, map[string]any{"role": role, "content": text})
		}
		b, _ := json.Marshal(map[string]any{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": m})
		return string(b)
	}
	tests := []struct {
		name, path, body string
		message          string // "" for a reply
	}{
		{"converse prefill on 4.6", path("us."+sonnet46, "converse"), converse("Hi", "Hello"), "The model returned the following errors: " + prefillRefused},
		{"converse-stream prefill on 4.6", path("us."+sonnet46, "converse-stream"), converse("Hi", "Hello"), "The model returned the following errors: " + prefillRefused},
		{"invoke prefill on 4.6", path("us."+sonnet46, "invoke"), invoke("Hi", "Hello"), prefillRefused},
		{"invoke-with-response-stream prefill on 4.6", path("us."+sonnet46, "invoke-with-response-stream"), invoke("Hi", "Hello"), prefillRefused},
		{"a conversation ending in a user turn on 4.6", path("us."+sonnet46, "converse"), converse("Hi", "Hello", "Go on"), ""},
		{"a continue-turn continuation on 4.6", path("us."+sonnet46, "invoke"), invoke("Hi", "Hello", stream.ContinuePrompt), ""},
		{"prefill on 4.5", path(sonnet45US, "converse"), converse("Hi", "Hello"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(s, "POST", tt.path, tt.body)
			if tt.message == "" {
				if w.Code != 200 {
					t.Fatalf("status %d: %s", w.Code, w.Body)
				}
				return
			}
			var body struct{ Message string }
			json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != 400 || !strings.HasPrefix(w.Header().Get("X-Amzn-ErrorType"), "ValidationException:") || body.Message != tt.message {
				t.Fatalf("status %d, type %q, message %q; want 400 ValidationException %q", w.Code, w.Header().Get("X-Amzn-ErrorType"), body.Message, tt.message)
			}
		})
	}
}

// TestContinueTurnServed checks that both operations answer a continue-turn
// continuation with the rest of the unbroken reply, after an overlap that
// the splicer's overlap finder drops whole.
func TestContinueTurnServed(t *testing.T) {
	s := newServer(t, Options{Seed: testSeed})
	const q = "Why do ships have keels?"
	whole := reply.Full(testSeed, sonnet46, "", []reply.Message{{Role: "user", Text: q}}, reply.Range{})
	overlaps := 0
	for k := 3; k < reply.Count(whole); k += 5 {
		partial := strings.TrimRight(whole[:reply.Cut(whole, k)], " \n")
		have := whole[:reply.Cut(whole, k)]
		for _, op := range []string{"converse", "invoke"} {
			var body []byte
			if op == "converse" {
				body, _ = json.Marshal(map[string]any{"messages": []any{
					map[string]any{"role": "user", "content": []any{map[string]any{"text": q}}},
					map[string]any{"role": "assistant", "content": []any{map[string]any{"text": partial}}},
					map[string]any{"role": "user", "content": []any{map[string]any{"text": stream.ContinuePrompt}}}}})
			} else {
				body, _ = json.Marshal(map[string]any{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 4000, "messages": []any{
					map[string]any{"role": "user", "content": q}, map[string]any{"role": "assistant", "content": partial},
					map[string]any{"role": "user", "content": stream.ContinuePrompt}}})
			}
			w := serve(s, "POST", "/model/us."+sonnet46+"/"+op, string(body))
			var out struct {
				Output struct {
					Message struct{ Content []struct{ Text string } }
				}
				Content []struct{ Text string }
			}
			if err := json.Unmarshal(w.Body.Bytes(), &out); w.Code != 200 || err != nil {
				t.Fatalf("%s k=%d: status %d: %s", op, k, w.Code, w.Body)
			}
			text := ""
			if op == "converse" {
				text = out.Output.Message.Content[0].Text
			} else {
				text = out.Content[0].Text
			}
			n := stream.Overlap([]byte(have), []byte(text))
			if have+text[n:] != whole {
				t.Fatalf("%s k=%d: spliced\n%q\nwant\n%q", op, k, have+text[n:], whole)
			}
			if n > 0 {
				overlaps++
			}
		}
	}
	if overlaps == 0 {
		t.Fatal("no continuation overlapped")
	}
}
