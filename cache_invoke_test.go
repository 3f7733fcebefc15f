package keel

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/emulator/fault"
)

// anthropicBody is an InvokeModel body for an Anthropic model that asks
// for deterministic output.
func anthropicBody(prompt string) []byte {
	b, _ := json.Marshal(map[string]any{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 60, "temperature": 0,
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	return b
}

// anthropicMessage is what a test reads of a Messages API reply.
type anthropicMessage struct {
	Role       string `json:"role"`
	StopReason string `json:"stop_reason"`
	Content    []struct{ Type, Text string }
	Usage      struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	}
}

// readAnthropicStream reads an InvokeModelWithResponseStream of an
// Anthropic model as a client would: the chunks' events put together into
// the message, and the invocation metrics of the last.
func readAnthropicStream(t *testing.T, out *bedrockruntime.InvokeModelWithResponseStreamOutput) (anthropicMessage, map[string]int) {
	t.Helper()
	st := out.GetStream()
	defer st.Close()
	var m anthropicMessage
	var metrics map[string]int
	var text strings.Builder
	for ev := range st.Events() {
		c, ok := ev.(*types.ResponseStreamMemberChunk)
		if !ok {
			t.Fatalf("event %T", ev)
		}
		var e struct {
			Type    string
			Message anthropicMessage
			Delta   struct {
				Type, Text string
				StopReason string `json:"stop_reason"`
			}
			Usage struct {
				OutputTokens int `json:"output_tokens"`
			}
			Metrics map[string]int `json:"amazon-bedrock-invocationMetrics"`
		}
		if err := json.Unmarshal(c.Value.Bytes, &e); err != nil {
			t.Fatalf("chunk %q: %v", c.Value.Bytes, err)
		}
		switch e.Type {
		case "message_start":
			m = e.Message
		case "content_block_delta":
			text.WriteString(e.Delta.Text)
		case "message_delta":
			m.StopReason, m.Usage.OutputTokens = e.Delta.StopReason, e.Usage.OutputTokens
		case "message_stop":
			metrics = e.Metrics
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	m.Content = append(m.Content, struct{ Type, Text string }{"text", text.String()})
	return m, metrics
}

// TestSDKInvokeAndItsStreamAnswerEachOther: an Anthropic model's InvokeModel
// reply, once stored, answers the same request by
// InvokeModelWithResponseStream with a stream the client reads as the same
// message, and a stored stream answers InvokeModel; the emulator sees one
// request for each pair.
func TestSDKInvokeAndItsStreamAnswerEachOther(t *testing.T) {
	var seen atomic.Int32
	client, _ := newStreamSetup(t, func(int) fault.Plan { seen.Add(1); return fault.Plan{} }, &config.Config{Cache: config.Cache{Mode: "deterministic"}})
	ctx := context.Background()
	invoke := func(prompt string) (anthropicMessage, *bedrockruntime.InvokeModelOutput) {
		out, err := client.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku), Body: anthropicBody(prompt)})
		if err != nil {
			t.Fatal(err)
		}
		var m anthropicMessage
		if err := json.Unmarshal(out.Body, &m); err != nil {
			t.Fatalf("reply %s: %v", out.Body, err)
		}
		return m, out
	}
	stream := func(prompt string) (anthropicMessage, map[string]int, string) {
		out, err := client.InvokeModelWithResponseStream(ctx, &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: aws.String(haiku),
			Body: anthropicBody(prompt)})
		if err != nil {
			t.Fatal(err)
		}
		m, metrics := readAnthropicStream(t, out)
		return m, metrics, ReportOf(out.ResultMetadata).Cache
	}

	// A reply first, then its stream.
	want, out := invoke("Why do ships have keels?")
	if got := ReportOf(out.ResultMetadata).Cache; got != CacheMiss {
		t.Fatalf("first InvokeModel: %s, want a miss", got)
	}
	got, metrics, how := stream("Why do ships have keels?")
	if how != CacheHit || got.Content[0].Text != want.Content[0].Text || got.StopReason != want.StopReason ||
		got.Usage != want.Usage || got.Role != "assistant" || metrics["outputTokenCount"] != want.Usage.OutputTokens {
		t.Errorf("stream from the stored reply (%s): %+v, metrics %v; want %+v", how, got, metrics, want)
	}

	// A stream first, then its reply.
	first, _, how := stream("What is a bilge?")
	if how != CacheMiss {
		t.Fatalf("first stream: %s, want a miss", how)
	}
	reply, out := invoke("What is a bilge?")
	if ReportOf(out.ResultMetadata).Cache != CacheHit || reply.Content[0].Text != first.Content[0].Text || reply.StopReason != first.StopReason ||
		reply.Usage.OutputTokens != first.Usage.OutputTokens || reply.Usage.InputTokens == 0 || aws.ToString(out.ContentType) != "application/json" {
		t.Errorf("reply from the stored stream (%s): %+v; want %+v", ReportOf(out.ResultMetadata).Cache, reply, first)
	}
	if n := seen.Load(); n != 2 {
		t.Errorf("the emulator saw %d requests; want 2, one for each pair", n)
	}
}
