package emulator

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAnthropicVersions checks the anthropic_version each model takes, what
// version 2026-10-21 forbids, and the prefill refusal of Claude 4.6 on, on
// InvokeModel and Converse.
func TestAnthropicVersions(t *testing.T) {
	s := newServer(t, Options{})
	const (
		opus47   = "/model/us.anthropic.claude-opus-4-7/invoke"
		sonnet55 = "/model/global.anthropic.claude-sonnet-5-5/invoke"
		sonnet46 = "/model/us.anthropic.claude-sonnet-4-6/invoke"
		user     = `"messages":[{"role":"user","content":"Hi"}]`
	)
	body := func(version, extra string) string {
		return `{"anthropic_version":"` + version + `","max_tokens":20,` + user + extra + `}`
	}
	tests := []struct {
		name    string
		path    string
		body    string
		status  int
		message string // a fragment of the error message, or the model the reply names
	}{
		{name: "old version on a dated model", path: invokeSonnet, body: body("bedrock-2023-05-31", ""), status: 200, message: "claude-sonnet-4-5-20250929"},
		{name: "old version on 4.7", path: opus47, body: body("bedrock-2023-05-31", ""), status: 200, message: "claude-opus-4-7"},
		{name: "new version on 4.7", path: opus47, body: body("2026-10-21", ""), status: 200, message: "claude-opus-4-7"},
		{name: "new version on 5.5", path: sonnet55, body: body("2026-10-21", ""), status: 200, message: "claude-sonnet-5-5"},
		{name: "undated -v1 id named without its suffix", path: "/model/us.anthropic.claude-opus-4-6-v1/invoke", body: body("bedrock-2023-05-31", ""), status: 200, message: `"model":"claude-opus-4-6"`},
		{name: "new version on 4.5", path: invokeSonnet, body: body("2026-10-21", ""), status: 400,
			message: `anthropic_version "2026-10-21" is not supported by this model (claude-sonnet-4-5-20250929), which takes bedrock-2023-05-31.`},
		{name: "new version on 4.6", path: sonnet46, body: body("2026-10-21", ""), status: 400, message: "is not supported by this model (claude-sonnet-4-6)"},
		{name: "a version no model takes", path: opus47, body: body("2023-06-01", ""), status: 400,
			message: `Malformed input request: #/anthropic_version: "2023-06-01" is not a known anthropic_version (bedrock-2023-05-31, 2026-10-21)`},
		{name: "temperature under the new version", path: opus47, body: body("2026-10-21", `,"temperature":0.5`), status: 400, message: "temperature: this parameter is not supported in API version 2026-10-21."},
		{name: "top_p under the new version", path: opus47, body: body("2026-10-21", `,"top_p":0.9`), status: 400, message: "top_p: this parameter is not supported"},
		{name: "top_k under the new version", path: opus47, body: body("2026-10-21", `,"top_k":5`), status: 400, message: "top_k: this parameter is not supported"},
		{name: "null temperature under the new version", path: opus47, body: body("2026-10-21", `,"temperature":null`), status: 200, message: "claude-opus-4-7"},
		{name: "temperature under the old version", path: opus47, body: body("bedrock-2023-05-31", `,"temperature":0.5,"top_k":5`), status: 200, message: "claude-opus-4-7"},
		{name: "document in an assistant message", path: opus47, status: 400, message: "messages.1.content.1: a document block in an assistant message is not supported in API version 2026-10-21.",
			body: `{"anthropic_version":"2026-10-21","max_tokens":20,"messages":[{"role":"user","content":"a"},` +
				`{"role":"assistant","content":[{"type":"text","text":"b"},{"type":"document","source":{"type":"text","media_type":"text/plain","data":"d"}}]},{"role":"user","content":"c"}]}`},
		{name: "citations on user text", path: opus47, status: 400, message: "messages.0.content.0: citations on user text are not supported",
			body: `{"anthropic_version":"2026-10-21","max_tokens":20,"messages":[{"role":"user","content":[{"type":"text","text":"a","citations":[{"type":"char_location"}]}]}]}`},
		{name: "citations inside a search result", path: opus47, status: 400, message: "messages.0.content.1: citations on user text are not supported",
			body: `{"anthropic_version":"2026-10-21","max_tokens":20,"messages":[{"role":"user","content":[{"type":"text","text":"a"},` +
				`{"type":"search_result","source":"s","title":"t","content":[{"type":"text","text":"r","citations":[{"type":"x"}]}]}]}]}`},
		{name: "a document asking for citations is allowed", path: opus47, status: 200, message: "claude-opus-4-7",
			body: `{"anthropic_version":"2026-10-21","max_tokens":20,"messages":[{"role":"user","content":[` +
				`{"type":"document","source":{"type":"text","media_type":"text/plain","data":"d"},"citations":{"enabled":true}},{"type":"text","text":"a"}]}]}`},
		{name: "empty citations are allowed", path: opus47, status: 200, message: "claude-opus-4-7",
			body: `{"anthropic_version":"2026-10-21","max_tokens":20,"messages":[{"role":"user","content":[{"type":"text","text":"a","citations":[]}]}]}`},
		{name: "citations under the old version", path: opus47, status: 200, message: "claude-opus-4-7",
			body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":20,"messages":[{"role":"user","content":[{"type":"text","text":"a","citations":[{"type":"x"}]}]}]}`},
		{name: "prefill on 4.5", path: invokeSonnet, status: 200, message: "claude-sonnet-4-5-20250929",
			body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":20,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`},
		{name: "prefill on 4.6", path: sonnet46, status: 400, message: prefillRefused,
			body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":20,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`},
		{name: "converse prefill on 4.7", path: "/model/us.anthropic.claude-opus-4-7/converse", status: 400, message: prefillRefused,
			body: `{"messages":[{"role":"user","content":[{"text":"a"}]},{"role":"assistant","content":[{"text":"b"}]}]}`},
		{name: "converse ending in a user turn on 4.7", path: "/model/us.anthropic.claude-opus-4-7/converse", status: 200,
			body: `{"messages":[{"role":"user","content":[{"text":"a"}]},{"role":"assistant","content":[{"text":"b"}]},{"role":"user","content":[{"text":"go on"}]}]}`},
		{name: "a dated suffix on an undated id", path: "/model/us.anthropic.claude-opus-4-6-v1%3A0/invoke", body: body("bedrock-2023-05-31", ""), status: 400, message: "The provided model identifier is invalid."},
		{name: "an unknown undated id", path: "/model/us.anthropic.claude-opus-9-9/invoke", body: body("bedrock-2023-05-31", ""), status: 404, message: "Could not resolve the foundation model"},
		{name: "bare id of a profile-only model", path: "/model/anthropic.claude-opus-4-7/invoke", body: body("2026-10-21", ""), status: 400, message: "with on-demand throughput isn’t supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(s, "POST", tt.path, tt.body)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			if tt.status == 200 {
				if !strings.Contains(w.Body.String(), tt.message) {
					t.Errorf("reply %s does not contain %q", w.Body, tt.message)
				}
				return
			}
			if got := w.Header().Get("X-Amzn-ErrorType"); !strings.HasPrefix(got, "ValidationException:") && !strings.HasPrefix(got, "ResourceNotFoundException:") {
				t.Errorf("X-Amzn-ErrorType %q", got)
			}
			var e struct{ Message string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Message, tt.message) {
				t.Errorf("message %q (%v), want it to contain %q", e.Message, err, tt.message)
			}
		})
	}
}

func TestProfileGeographies(t *testing.T) {
	s := newServer(t, Options{})
	tests := []struct {
		name, path string
		status     int
	}{
		{name: "jp from Tokyo", path: "/region/ap-northeast-1/model/jp.anthropic.claude-sonnet-4-6/converse", status: 200},
		{name: "jp from Singapore", path: "/region/ap-southeast-1/model/jp.anthropic.claude-sonnet-4-6/converse", status: 400},
		{name: "au from Sydney", path: "/region/ap-southeast-2/model/au.anthropic.claude-sonnet-5-5/converse", status: 200},
		{name: "au from Tokyo", path: "/region/ap-northeast-1/model/au.anthropic.claude-sonnet-5-5/converse", status: 400},
		{name: "global from Sydney", path: "/region/ap-southeast-2/model/global.anthropic.claude-opus-4-7/converse", status: 200},
		{name: "a geography the model lacks", path: "/region/ap-northeast-1/model/apac.anthropic.claude-sonnet-4-6/converse", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(s, "POST", tt.path, `{"messages":[{"role":"user","content":[{"text":"a"}]}]}`)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
		})
	}
}

func TestWireName(t *testing.T) {
	for id, want := range map[string]string{
		"anthropic.claude-sonnet-4-5-20250929-v1:0": "claude-sonnet-4-5-20250929",
		"anthropic.claude-3-5-sonnet-20241022-v2:0": "claude-3-5-sonnet-20241022",
		"anthropic.claude-opus-4-6-v1":              "claude-opus-4-6",
		"anthropic.claude-sonnet-4-6":               "claude-sonnet-4-6",
		"anthropic.claude-sonnet-5-5":               "claude-sonnet-5-5",
		"anthropic.claude-v-x":                      "claude-v-x",
	} {
		if got := wireName(id); got != want {
			t.Errorf("wireName(%q) = %q, want %q", id, got, want)
		}
	}
}
