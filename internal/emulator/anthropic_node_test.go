package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// jsTimeout bounds one run of the node script: it makes two calls to a
// local emulator with no simulated latency, so a minute means it hung.
const jsTimeout = time.Minute

// jsDir is the node project holding the script, relative to this package.
var jsDir = filepath.Join("..", "..", "test", "js")

// TestAnthropicJSSDK runs test/js/anthropic-bedrock.mjs, the official
// @anthropic-ai/bedrock-sdk 1.x (anthropic_version 2026-10-21) calling
// messages.create with and without stream: true, against the emulator on a
// current Claude model. Without node or the script's node_modules it skips,
// saying how to install them; with KEEL_REQUIRE_JS=1 (as .ci/run sets) it
// fails instead.
func TestAnthropicJSSDK(t *testing.T) {
	node := requireNode(t, "@anthropic-ai/bedrock-sdk")

	rn := start(t, Options{Seed: testSeed})
	const (
		profile = "us.anthropic.claude-opus-4-7"
		prompt  = "Tell me about rivers."
	)
	w := want("anthropic.claude-opus-4-7", "Answer plainly.", 200, nil, user(prompt))

	ctx, cancel := context.WithTimeout(context.Background(), jsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "anthropic-bedrock.mjs", rn.URL, profile, prompt)
	cmd.Dir = jsDir
	cmd.Env = append(os.Environ(), "AWS_BEARER_TOKEN_BEDROCK=", "ANTHROPIC_BEDROCK_BASE_URL=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node anthropic-bedrock.mjs: %v\nstderr: %s", err, stderr.String())
	}

	type result struct {
		Mode         string `json:"mode"`
		Text         string `json:"text"`
		InputTokens  int    `json:"input_tokens"`
		OutputTokens int    `json:"output_tokens"`
		StopReason   string `json:"stop_reason"`
		Model        string `json:"model"`
	}
	var modes []string
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var r result
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		modes = append(modes, r.Mode)
		if r.Text != w.Text || r.StopReason != string(w.StopReason) || r.Model != "claude-opus-4-7" {
			t.Errorf("%s: text %q, stop %q, model %q; want %q, %q, claude-opus-4-7", r.Mode, r.Text, r.StopReason, r.Model, w.Text, w.StopReason)
		}
		if r.InputTokens != w.InputTokens || r.OutputTokens != w.OutputTokens {
			t.Errorf("%s: usage %d in, %d out; want %d, %d", r.Mode, r.InputTokens, r.OutputTokens, w.InputTokens, w.OutputTokens)
		}
	}
	if strings.Join(modes, ",") != "create,stream" {
		t.Errorf("calls %v, want create then stream", modes)
	}
}
