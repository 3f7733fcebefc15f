package emulator

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicbedrock "github.com/anthropics/anthropic-sdk-go/v2/bedrock"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keel-run/keel/internal/bedrock"
)

// TestAnthropicSDK calls the emulator through the official Anthropic Go SDK
// (anthropic-sdk-go/v2, which sends anthropic_version 2026-10-21) with its
// Bedrock option and fake credentials: one call and one streamed call on a
// current Claude model, through an inference profile, and the same SDK
// against a model that does not take the new version.
func TestAnthropicSDK(t *testing.T) {
	t.Setenv("ANTHROPIC_BEDROCK_BASE_URL", "")
	t.Setenv("AWS_BEARER_TOKEN_BEDROCK", "")
	rn := start(t, Options{Seed: testSeed})
	cfg := aws.Config{Region: "us-east-1", HTTPClient: testHTTPClient,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "")}
	c := anthropic.NewClient(anthropicbedrock.WithConfig(cfg), option.WithBaseURL(rn.URL), option.WithMaxRetries(0))
	const (
		profile = "us.anthropic.claude-sonnet-5-5"
		prompt  = "Tell me about harbors."
	)
	base := bedrock.BaseModelID(profile)
	params := anthropic.MessageNewParams{
		Model:     profile,
		MaxTokens: 200,
		System:    []anthropic.TextBlockParam{{Text: "Answer plainly."}},
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(prompt))},
	}
	w := want(base, "Answer plainly.", 200, nil, user(prompt))

	check := func(t *testing.T, m *anthropic.Message) {
		t.Helper()
		if len(m.Content) != 1 || m.Content[0].Text != w.Text {
			t.Errorf("content %+v, want the one text block %q", m.Content, w.Text)
		}
		if string(m.StopReason) != string(w.StopReason) || string(m.Model) != "claude-sonnet-5-5" {
			t.Errorf("stop reason %q, model %q; want %q, claude-sonnet-5-5", m.StopReason, m.Model, w.StopReason)
		}
		if m.Usage.InputTokens != int64(w.InputTokens) || m.Usage.OutputTokens != int64(w.OutputTokens) {
			t.Errorf("usage %d in, %d out; want %d, %d", m.Usage.InputTokens, m.Usage.OutputTokens, w.InputTokens, w.OutputTokens)
		}
	}

	t.Run("call", func(t *testing.T) {
		m, err := c.Messages.New(context.Background(), params)
		if err != nil {
			t.Fatalf("Messages.New: %v", err)
		}
		check(t, m)
	})
	t.Run("stream", func(t *testing.T) {
		s := c.Messages.NewStreaming(context.Background(), params)
		var m anthropic.Message
		events := 0
		for s.Next() {
			events++
			if err := m.Accumulate(s.Current()); err != nil {
				t.Fatalf("Accumulate: %v", err)
			}
		}
		if err := s.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		if events < 5 {
			t.Errorf("%d stream events, want message_start to message_stop", events)
		}
		check(t, &m)
	})
	t.Run("a model without the new version", func(t *testing.T) {
		old := params
		old.Model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
		_, err := c.Messages.New(context.Background(), old)
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
			t.Fatalf("Messages.New on Sonnet 4.5: %v, want a 400", err)
		}
		for _, want := range []string{"2026-10-21", "is not supported by this model (claude-sonnet-4-5-20250929)"} {
			if !strings.Contains(apiErr.Error(), want) {
				t.Errorf("error %q, want it to contain %q", apiErr.Error(), want)
			}
		}
	})
}
