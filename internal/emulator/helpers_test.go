package emulator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/reply"
)

const (
	sonnet45   = "anthropic.claude-sonnet-4-5-20250929-v1:0"
	sonnet45US = "us." + sonnet45
	haiku3     = "anthropic.claude-3-haiku-20240307-v1:0" // callable on demand
	novaLite   = "amazon.nova-lite-v1:0"
	llama8b    = "meta.llama3-1-8b-instruct-v1:0"
	titanExp   = "amazon.titan-text-express-v1"
	testSeed   = 42
)

// start runs an emulator for the test and closes it at cleanup.
func start(t testing.TB, opts Options) *Running {
	t.Helper()
	rn, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := rn.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return rn
}

// client returns the official SDK client pointed at the emulator, signing
// for region with fake static credentials, its own retries off so each call
// is one attempt.
func client(rn *Running, region string) *bedrockruntime.Client {
	return bedrockruntime.New(bedrockruntime.Options{
		Region:           region,
		BaseEndpoint:     aws.String(rn.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""),
		RetryMaxAttempts: 1,
		HTTPClient:       testHTTPClient,
	})
}

// testHTTPClient works around a race between smithy-go and net/http that a
// zero-latency server exposes (aws-sdk-go-v2 bedrockruntime v1.63.11,
// smithy-go v1.28.8). net/http copies a request body of known length and
// then calls WriteTo on the body for any bytes beyond the length; smithy-go
// closes the body as soon as the response headers arrive, and its closed body
// answers WriteTo with io.EOF, which io.Copy reports as an error. When the
// response beats that second call, the transport tears the connection down
// and the response body fails with "use of closed network connection"
// (about 0.5% of zero-latency streams here, several percent under -race).
// Against Bedrock the response takes far longer than the window. Hiding
// WriteTo makes the transport read instead, and a closed body's Read answers
// a plain EOF.
var testHTTPClient = &http.Client{Transport: noWriteTo{http.DefaultTransport}}

type noWriteTo struct{ base http.RoundTripper }

func (n noWriteTo) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r = r.Clone(r.Context())
		r.Body = struct{ io.ReadCloser }{r.Body}
	}
	return n.base.RoundTrip(r)
}

func userMsg(text string) types.Message {
	return types.Message{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: text}}}
}

func assistantMsg(text string) types.Message {
	return types.Message{Role: types.ConversationRoleAssistant, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: text}}}
}

// always returns a Planner that gives every request p.
func always(p fault.Plan) func(fault.Request) fault.Plan {
	return func(fault.Request) fault.Plan { return p }
}

// hooks records what the emulator's hooks were called with.
type hooks struct {
	mu      sync.Mutex
	plans   []fault.Request
	admits  []AdmitRequest
	settles []SettleRequest
}

func (h *hooks) install(o *Options) {
	plan := o.Planner
	o.Planner = func(r fault.Request) fault.Plan {
		h.mu.Lock()
		h.plans = append(h.plans, r)
		h.mu.Unlock()
		if plan != nil {
			return plan(r)
		}
		return fault.Plan{}
	}
	o.Admit = func(r AdmitRequest) *Rejection {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.admits = append(h.admits, r)
		return nil
	}
	o.Settle = func(r SettleRequest) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.settles = append(h.settles, r)
	}
}

func (h *hooks) lastSettle(t *testing.T) SettleRequest {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.settles) != 1 {
		t.Fatalf("Settle called %d times, want 1", len(h.settles))
	}
	return h.settles[0]
}

// want computes, independently of the server, the reply the emulator must
// give.
func want(model, system string, maxTokens int, stops []string, msgs ...reply.Message) reply.Reply {
	return reply.Generate(&reply.Request{Seed: testSeed, Model: model, System: system, Messages: msgs, MaxTokens: maxTokens, StopSequences: stops})
}

func user(text string) reply.Message      { return reply.Message{Role: "user", Text: text} }
func assistant(text string) reply.Message { return reply.Message{Role: "assistant", Text: text} }

// converseEvents is what a ConverseStream delivered.
type converseEvents struct {
	n      int
	deltas []string
	start  *types.MessageStartEvent
	stop   *types.MessageStopEvent
	meta   *types.ConverseStreamMetadataEvent
	err    error
}

func (c converseEvents) text() string {
	var s string
	for _, d := range c.deltas {
		s += d
	}
	return s
}

func readConverse(out *bedrockruntime.ConverseStreamOutput) converseEvents {
	var c converseEvents
	stream := out.GetStream()
	defer stream.Close()
	for ev := range stream.Events() {
		c.n++
		switch v := ev.(type) {
		case *types.ConverseStreamOutputMemberMessageStart:
			c.start = &v.Value
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			if d, ok := v.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
				c.deltas = append(c.deltas, d.Value)
			}
		case *types.ConverseStreamOutputMemberMessageStop:
			c.stop = &v.Value
		case *types.ConverseStreamOutputMemberMetadata:
			c.meta = &v.Value
		}
	}
	c.err = stream.Err()
	return c
}

// invokeEvents is what an InvokeModelWithResponseStream delivered: the
// decoded model events of each chunk.
type invokeEvents struct {
	chunks []map[string]any
	err    error
}

func readInvoke(out *bedrockruntime.InvokeModelWithResponseStreamOutput) invokeEvents {
	var c invokeEvents
	stream := out.GetStream()
	defer stream.Close()
	for ev := range stream.Events() {
		if v, ok := ev.(*types.ResponseStreamMemberChunk); ok {
			var m map[string]any
			if err := json.Unmarshal(v.Value.Bytes, &m); err != nil {
				m = map[string]any{"undecodable": string(v.Value.Bytes)}
			}
			c.chunks = append(c.chunks, m)
		}
	}
	c.err = stream.Err()
	return c
}

func anthropicJSON(maxTokens int, msgs ...reply.Message) []byte {
	type m struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	body := struct {
		Version   string `json:"anthropic_version"`
		MaxTokens int    `json:"max_tokens"`
		System    string `json:"system,omitempty"`
		Messages  []m    `json:"messages"`
	}{Version: "bedrock-2023-05-31", MaxTokens: maxTokens}
	for _, x := range msgs {
		body.Messages = append(body.Messages, m{Role: x.Role, Content: x.Text})
	}
	b, _ := json.Marshal(body)
	return b
}

func bg() context.Context { return context.Background() }
