package keel

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	smithy "github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/reply"
	"github.com/keel-run/keel/internal/sigv4verify"
)

const haiku = "anthropic.claude-3-haiku-20240307-v1:0"

// planFunc scripts the emulator: the n-th request (from 0) to a region gets plan(n, region).
type script struct {
	mu   sync.Mutex
	n    map[string]int
	plan func(n int, req fault.Request) fault.Plan
	seen atomic.Int64
}

func (s *script) Plan(r fault.Request) fault.Plan {
	s.seen.Add(1)
	s.mu.Lock()
	n := s.n[r.Region]
	s.n[r.Region] = n + 1
	s.mu.Unlock()
	return s.plan(n, r)
}

type setup struct {
	client *bedrockruntime.Client
	script *script
	reg    *prometheus.Registry
	k      *Keel
}

func newSetup(t *testing.T, plan func(n int, r fault.Request) fault.Plan, c *config.Config, verify bool) *setup {
	t.Helper()
	sc := &script{n: map[string]int{}, plan: plan}
	eo := emulator.Options{Seed: 7, Planner: sc.Plan}
	if verify {
		v := sigv4verify.New(sigv4verify.Options{Keys: map[string]string{"AKIDKEEL": "keel-secret"}})
		eo.Verify = func(r *http.Request, b []byte) *emulator.Rejection { return (*emulator.Rejection)(v.Verify(r, b)) }
	}
	emu, err := emulator.Start(eo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDKEEL", "keel-secret", "")}
	reg := prometheus.NewRegistry()
	if c == nil {
		c = &config.Config{}
	}
	k, err := New(cfg, Options{file: c, Registerer: reg,
		clock: clock.NewAuto(time.Now()), rand: rand.New(rand.NewPCG(3, 4))})
	if err != nil {
		t.Fatal(err)
	}
	client := bedrockruntime.NewFromConfig(cfg, k.ClientOptions, func(o *bedrockruntime.Options) { o.BaseEndpoint = aws.String(emu.URL) })
	return &setup{client: client, script: sc, reg: reg, k: k}
}

func converseInput(model string) *bedrockruntime.ConverseInput {
	return &bedrockruntime.ConverseInput{
		ModelId:         aws.String(model),
		Messages:        []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "Tell me about keels."}}}},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(50)},
	}
}

func TestSDKTypedErrorsKeepTheirTypeAndGainDetails(t *testing.T) {
	tests := []struct {
		name     string
		code     string
		attempts int
		check    func(error) bool
	}{
		{"throttling retried then typed", catalog.CodeThrottling, 3, func(err error) bool { var e *types.ThrottlingException; return errors.As(err, &e) }},
		{"unavailable retried then typed", catalog.CodeServiceUnavailable, 3, func(err error) bool { var e *types.ServiceUnavailableException; return errors.As(err, &e) }},
		{"model not ready retried then typed", catalog.CodeModelNotReady, 3, func(err error) bool { var e *types.ModelNotReadyException; return errors.As(err, &e) }},
		{"validation not retried", catalog.CodeValidation, 1, func(err error) bool { var e *types.ValidationException; return errors.As(err, &e) }},
		{"access denied not retried", catalog.CodeAccessDenied, 1, func(err error) bool { var e *types.AccessDeniedException; return errors.As(err, &e) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t, func(int, fault.Request) fault.Plan { return fault.Plan{Error: tt.code} }, nil, false)
			_, err := s.client.Converse(context.Background(), converseInput(haiku))
			if err == nil {
				t.Fatal("call succeeded")
			}
			if !tt.check(err) {
				t.Fatalf("errors.As with the SDK's type failed for %v", err)
			}
			if got := s.script.seen.Load(); got != int64(tt.attempts) {
				t.Fatalf("emulator saw %d requests, want %d (the SDK's own retryer must be off)", got, tt.attempts)
			}
			entry, rep, ok := Details(err)
			if !ok || entry.Code != tt.code || rep == nil || rep.Sent() != tt.attempts {
				t.Fatalf("Details = %v, %+v, %v", entry, rep, ok)
			}
			for i, a := range rep.Attempts {
				if a.Target.String() != haiku+"@us-east-1" || a.Status != catalog.Must(tt.code).Status || a.Code != tt.code || a.RequestID == "" {
					t.Fatalf("attempt %d = %+v", i, a)
				}
				if i > 0 && a.Delay <= 0 {
					t.Fatalf("attempt %d has no recorded delay", i)
				}
			}
			if Explain(err).Code != tt.code {
				t.Fatalf("Explain = %s", Explain(err).Code)
			}
		})
	}
}

func TestSDKModelNotReadyRecovers(t *testing.T) {
	s := newSetup(t, func(n int, _ fault.Request) fault.Plan {
		if n < 2 {
			return fault.Plan{Error: catalog.CodeModelNotReady}
		}
		return fault.Plan{}
	}, nil, true)
	out, err := s.client.Converse(context.Background(), converseInput(haiku))
	if err != nil {
		t.Fatal(err)
	}
	rep := ReportOf(out.ResultMetadata)
	if rep == nil || rep.Sent() != 3 || rep.Attempts[2].Status != 200 {
		t.Fatalf("report %+v", rep)
	}
	if out.Usage == nil || aws.ToInt32(out.Usage.OutputTokens) == 0 {
		t.Fatalf("usage did not round-trip: %+v", out.Usage)
	}
	// The emulator verified a SigV4 signature on every attempt (Verify is on):
	// keel re-signed each one with the SDK's signer and credentials.
	if v := testutil.ToFloat64(mustVec(t, s.reg, "keel_attempts_total", "model", haiku, "region", "us-east-1", "outcome", catalog.CodeModelNotReady)); v != 2 {
		t.Fatalf("keel_attempts_total{ModelNotReady} = %v", v)
	}
}

func TestSDKFallsBackAcrossRegions(t *testing.T) {
	c, err := config.Parse([]byte(`
routes:
  - models: [` + haiku + `]
    targets:
      - model: ` + haiku + `
        region: us-west-2
`))
	if err != nil {
		t.Fatal(err)
	}
	s := newSetup(t, func(_ int, r fault.Request) fault.Plan {
		if r.Region == "us-east-1" {
			return fault.Plan{Error: catalog.CodeServiceUnavailable}
		}
		return fault.Plan{}
	}, c, true)
	out, err := s.client.Converse(context.Background(), converseInput(haiku))
	if err != nil {
		t.Fatal(err)
	}
	rep := ReportOf(out.ResultMetadata)
	if rep.Target.Region != "us-west-2" || rep.Fallbacks != 1 || rep.Sent() != 4 {
		t.Fatalf("report: target %s, %d fallbacks, %d sent", rep.Target, rep.Fallbacks, rep.Sent())
	}
}

func TestSDKBadSignatureIsNotRetried(t *testing.T) {
	s := newSetup(t, func(int, fault.Request) fault.Plan { return fault.Plan{} }, nil, true)
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDKEEL", "wrong-secret", "")}
	k, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := s.client.Options().BaseEndpoint
	client := bedrockruntime.NewFromConfig(cfg, k.ClientOptions, func(o *bedrockruntime.Options) { o.BaseEndpoint = base })
	_, err = client.Converse(context.Background(), converseInput(haiku))
	entry, rep, ok := Details(err)
	if !ok || entry.Code != catalog.CodeInvalidSignature || rep.Sent() != 1 {
		t.Fatalf("err %v: entry %v, report %+v", err, entry, rep)
	}
	if !strings.Contains(err.Error(), "InvalidSignatureException") {
		t.Fatalf("SDK error text lost the code: %v", err)
	}
}

func mustVec(t *testing.T, reg *prometheus.Registry, name string, labels ...string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := true
			for _, lp := range m.GetLabel() {
				if v, ok := want[lp.GetName()]; ok && v != lp.GetValue() {
					match = false
				}
			}
			if match {
				return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
			}
		}
	}
	t.Fatalf("no %s with %v", name, labels)
	return nil
}

func TestEnableOnConfig(t *testing.T) {
	s := newSetup(t, func(n int, _ fault.Request) fault.Plan {
		if n == 0 {
			return fault.Plan{Error: catalog.CodeInternalServer}
		}
		return fault.Plan{}
	}, nil, false)
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDKEEL", "keel-secret", ""),
		BaseEndpoint: s.client.Options().BaseEndpoint}
	if _, err := Enable(&cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	out, err := bedrockruntime.NewFromConfig(cfg).Converse(context.Background(), converseInput(haiku))
	if err != nil {
		t.Fatal(err)
	}
	if rep := ReportOf(out.ResultMetadata); rep == nil || rep.Sent() != 2 {
		t.Fatalf("report %+v", rep)
	}
	if _, err := Enable(&cfg, Options{ConfigFile: "/nonexistent/keel.yaml"}); err == nil || !strings.Contains(err.Error(), "keel.yaml") {
		t.Fatalf("a missing config file gave %v", err)
	}
}

// newStreamSetup is newSetup for streaming tests: the emulator's n-th
// request (from 0) gets plan(n).
func newStreamSetup(t *testing.T, plan func(n int) fault.Plan, c *config.Config) (*bedrockruntime.Client, *emulator.Running) {
	t.Helper()
	var n atomic.Int64
	emu, err := emulator.Start(emulator.Options{Seed: 7, Planner: func(fault.Request) fault.Plan { return plan(int(n.Add(1) - 1)) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDKEEL", "keel-secret", "")}
	if c == nil {
		c = &config.Config{}
	}
	// Backoffs take no time; the stream watchdog's timers (30 s and more)
	// never fire, since nothing advances the clock.
	clk := clock.NewFake(time.Now()).AutoFire(30 * time.Second)
	k, err := New(cfg, Options{file: c, clock: clk, rand: rand.New(rand.NewPCG(3, 4))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.eng.HTTPClient().CloseIdleConnections() })
	return bedrockruntime.NewFromConfig(cfg, k.ClientOptions, func(o *bedrockruntime.Options) { o.BaseEndpoint = aws.String(emu.URL) }), emu
}

const (
	sonnetProfile = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
	streamPrompt  = "Tell me about keels."
	streamTokens  = 50
)

// unbrokenReply is the emulator's reply to streamPrompt, unbroken.
func unbrokenReply() reply.Reply {
	return reply.Generate(&reply.Request{Seed: 7, Model: "anthropic.claude-sonnet-4-5-20250929-v1:0",
		Messages: []reply.Message{{Role: "user", Text: streamPrompt}}, MaxTokens: streamTokens})
}

func conversestream(client *bedrockruntime.Client) (*bedrockruntime.ConverseStreamOutput, error) {
	return client.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{
		ModelId:         aws.String(sonnetProfile),
		Messages:        []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: streamPrompt}}}},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(streamTokens)},
	})
}

// converseRead is what the SDK's ConverseStream reader delivered.
type converseRead struct {
	text          string
	starts, stops int
	indexes       map[int32]bool
	meta          *types.ConverseStreamMetadataEvent
	stop          *types.MessageStopEvent
	err           error
}

func readConverseStream(out *bedrockruntime.ConverseStreamOutput) converseRead {
	r := converseRead{indexes: map[int32]bool{}}
	s := out.GetStream()
	defer s.Close()
	for ev := range s.Events() {
		switch v := ev.(type) {
		case *types.ConverseStreamOutputMemberMessageStart:
			r.starts++
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			r.indexes[aws.ToInt32(v.Value.ContentBlockIndex)] = true
			if d, ok := v.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
				r.text += d.Value
			}
		case *types.ConverseStreamOutputMemberContentBlockStop:
			r.stops++
		case *types.ConverseStreamOutputMemberMessageStop:
			r.stop = &v.Value
		case *types.ConverseStreamOutputMemberMetadata:
			r.meta = &v.Value
		}
	}
	r.err = s.Err()
	return r
}

func TestSDKConverseStreamSpliced(t *testing.T) {
	breaks := []struct {
		name string
		plan fault.Plan
	}{
		{"exception before content", fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 1, Code: catalog.CodeThrottling}}},
		{"exception mid-reply", fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 12, Code: catalog.CodeModelStreamError}}},
		{"truncated mid-reply", fault.Plan{MidStream: &fault.MidStream{Kind: fault.Truncate, After: 20}}},
		{"corrupt mid-reply", fault.Plan{MidStream: &fault.MidStream{Kind: fault.Corrupt, After: 5}}},
	}
	want := unbrokenReply()
	for _, br := range breaks {
		t.Run(br.name, func(t *testing.T) {
			client, _ := newStreamSetup(t, func(n int) fault.Plan {
				if n == 0 {
					return br.plan
				}
				return fault.Plan{}
			}, nil)
			out, err := conversestream(client)
			if err != nil {
				t.Fatal(err)
			}
			r := readConverseStream(out)
			if r.err != nil || r.text != want.Text || r.starts != 1 || r.stops != 1 || len(r.indexes) != 1 || !r.indexes[0] || r.stop == nil || r.meta == nil {
				t.Fatalf("err %v, %d starts, %d stops, indexes %v, text\n%q\nwant\n%q", r.err, r.starts, r.stops, r.indexes, r.text, want.Text)
			}
			if aws.ToInt32(r.meta.Usage.OutputTokens) != int32(want.OutputTokens) && br.name != "exception before content" {
				// A resumed reply: the continuation's output plus what the
				// broken stream delivered is the unbroken reply's output.
				t.Fatalf("output tokens %d, want %d", aws.ToInt32(r.meta.Usage.OutputTokens), want.OutputTokens)
			}
			rep := ReportOf(out.ResultMetadata)
			if rep == nil || rep.Sent() != 2 || int(aws.ToInt32(r.meta.Usage.OutputTokens)) != rep.Usage.OutputTokens {
				t.Fatalf("report %+v, metadata usage %+v", rep, r.meta.Usage)
			}
		})
	}
}

func TestSDKInvokeStreamSpliced(t *testing.T) {
	client, _ := newStreamSetup(t, func(n int) fault.Plan {
		if n == 0 {
			return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 9, Code: catalog.CodeInternalServer}}
		}
		return fault.Plan{}
	}, nil)
	body := `{"anthropic_version":"bedrock-2023-05-31","max_tokens":50,"messages":[{"role":"user","content":"` + streamPrompt + `"}]}`
	out, err := client.InvokeModelWithResponseStream(context.Background(), &bedrockruntime.InvokeModelWithResponseStreamInput{
		ModelId: aws.String(sonnetProfile), Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	s := out.GetStream()
	var text string
	types_ := map[string]int{}
	var metrics map[string]any
	for ev := range s.Events() {
		c, ok := ev.(*types.ResponseStreamMemberChunk)
		if !ok {
			t.Fatalf("event %T", ev)
		}
		var m map[string]any
		if err := json.Unmarshal(c.Value.Bytes, &m); err != nil {
			t.Fatalf("chunk %q: %v", c.Value.Bytes, err)
		}
		typ, _ := m["type"].(string)
		types_[typ]++
		if typ == "content_block_delta" {
			text += m["delta"].(map[string]any)["text"].(string)
			if m["index"].(float64) != 0 {
				t.Fatalf("delta at index %v", m["index"])
			}
		}
		if typ == "message_stop" {
			metrics = m["amazon-bedrock-invocationMetrics"].(map[string]any)
		}
	}
	s.Close()
	want := unbrokenReply()
	if err := s.Err(); err != nil || text != want.Text {
		t.Fatalf("err %v, text\n%q\nwant\n%q", err, text, want.Text)
	}
	for _, typ := range []string{"message_start", "content_block_start", "content_block_stop", "message_delta", "message_stop"} {
		if types_[typ] != 1 {
			t.Fatalf("%d %s events, want 1 (%v)", types_[typ], typ, types_)
		}
	}
	rep := ReportOf(out.ResultMetadata)
	if rep.Resumes != 1 || int(metrics["outputTokenCount"].(float64)) != want.OutputTokens || int(metrics["inputTokenCount"].(float64)) != rep.Usage.InputTokens {
		t.Fatalf("report %+v, metrics %v", rep, metrics)
	}
}

// TestSDKStreamErrorsAreTyped breaks streams after their first content with
// resume off: stream.Err() is the SDK's typed exception (or an API error
// with keel's catalog code), never a clean end, and keel's details are
// reachable from it.
func TestSDKStreamErrorsAreTyped(t *testing.T) {
	off := false
	noResume := &config.Config{Streaming: config.Streaming{Resume: &off}}
	tests := []struct {
		name   string
		plan   fault.MidStream
		code   string
		status int
		is     func(error) bool
	}{
		{"throttling", fault.MidStream{Kind: fault.Exception, Code: catalog.CodeThrottling}, catalog.CodeThrottling, 429, func(err error) bool { var e *types.ThrottlingException; return errors.As(err, &e) }},
		{"internal server", fault.MidStream{Kind: fault.Exception, Code: catalog.CodeInternalServer}, catalog.CodeInternalServer, 500, func(err error) bool { var e *types.InternalServerException; return errors.As(err, &e) }},
		{"unavailable", fault.MidStream{Kind: fault.Exception, Code: catalog.CodeServiceUnavailable}, catalog.CodeServiceUnavailable, 503, func(err error) bool { var e *types.ServiceUnavailableException; return errors.As(err, &e) }},
		{"model stream error", fault.MidStream{Kind: fault.Exception, Code: catalog.CodeModelStreamError}, catalog.CodeModelStreamError, 424, func(err error) bool { var e *types.ModelStreamErrorException; return errors.As(err, &e) }},
		{"model timeout", fault.MidStream{Kind: fault.Exception, Code: catalog.CodeModelTimeout}, catalog.CodeModelTimeout, 408, func(err error) bool { var e *types.ModelTimeoutException; return errors.As(err, &e) }},
		{"validation", fault.MidStream{Kind: fault.Exception, Code: catalog.CodeValidation}, catalog.CodeValidation, 400, func(err error) bool { var e *types.ValidationException; return errors.As(err, &e) }},
		{"error frame", fault.MidStream{Kind: fault.ErrorFrame, Code: catalog.CodeThrottling}, catalog.CodeThrottling, 429, func(err error) bool {
			var e *smithy.GenericAPIError
			return errors.As(err, &e) && e.Code == catalog.CodeThrottling
		}},
		{"truncated", fault.MidStream{Kind: fault.Truncate}, catalog.CodeStreamTruncated, 0, apiCode(catalog.CodeStreamTruncated)},
		{"corrupt", fault.MidStream{Kind: fault.Corrupt}, catalog.CodeStreamCorrupt, 0, apiCode(catalog.CodeStreamCorrupt)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mid := tt.plan
			mid.After = 15
			client, _ := newStreamSetup(t, func(int) fault.Plan { return fault.Plan{MidStream: &mid} }, noResume)
			out, err := conversestream(client)
			if err != nil {
				t.Fatal(err)
			}
			r := readConverseStream(out)
			if r.err == nil {
				t.Fatalf("the stream ended cleanly after %q", r.text)
			}
			if !tt.is(r.err) {
				t.Fatalf("stream.Err() = %T %v, not the expected type", r.err, r.err)
			}
			entry, rep, ok := Details(r.err)
			if !ok || entry.Code != tt.code || rep == nil || rep.Sent() != 1 {
				t.Fatalf("Details = %v, %+v, %v", entry, rep, ok)
			}
			var ke *Error
			if !errors.As(r.err, &ke) || ke.Failure() == nil || ke.Failure().Stream == nil || ke.Failure().Status != tt.status {
				t.Fatalf("keel error %+v", ke)
			}
			if partial := ke.Failure().Stream.Text; partial == "" || partial != r.text || !strings.HasPrefix(unbrokenReply().Text, partial) {
				t.Fatalf("partial %q, the reader got %q", partial, r.text)
			}
		})
	}
}

func apiCode(code string) func(error) bool {
	return func(err error) bool {
		var api smithy.APIError
		return errors.As(err, &api) && api.ErrorCode() == code
	}
}

// TestSDKStreamFailsBeforeContent exhausts every attempt before any
// content: the ConverseStream call itself returns the SDK's typed error,
// as when Bedrock refuses a stream before it starts.
func TestSDKStreamFailsBeforeContent(t *testing.T) {
	client, _ := newStreamSetup(t, func(int) fault.Plan {
		return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 0, Code: catalog.CodeThrottling}}
	}, nil)
	_, err := conversestream(client)
	var te *types.ThrottlingException
	if !errors.As(err, &te) {
		t.Fatalf("err %T %v, want *types.ThrottlingException", err, err)
	}
	entry, rep, ok := Details(err)
	if !ok || entry.Code != catalog.CodeThrottling || rep.Sent() != 3 {
		t.Fatalf("Details = %v, %+v, %v", entry, rep, ok)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gauge returns the value of the gauge name with the given labels.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				for i := 0; i+1 < len(labels); i += 2 {
					if labels[i] == lp.GetName() && labels[i+1] != lp.GetValue() {
						continue metrics
					}
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s with %v", name, labels)
	return 0
}

// TestQuotaGovernor checks the quota governor through the SDK face: on by
// default (learning, so it limits nothing before a throttle) and settled
// from each reply; the priority a context carries; a configured quota that
// a request can never fit; and the governor turned off.
func TestQuotaGovernor(t *testing.T) {
	tests := []struct {
		name      string
		cfg       string
		priority  Priority
		maxTokens int32
		code      string // the failure's catalog code; "" for success
	}{
		{name: "on by default, learning", maxTokens: 50},
		{name: "batch priority from the context", priority: Batch, maxTokens: 50},
		{name: "too large for a known quota", maxTokens: 2000, code: catalog.CodeRequestTooLargeForQuota,
			cfg: "quotas:\n  targets:\n    - model: " + haiku + "\n      tokens_per_minute: 1000\n"},
		{name: "off", maxTokens: 50, cfg: "quotas:\n  disabled: true\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.cfg))
			if err != nil {
				t.Fatal(err)
			}
			s := newSetup(t, func(int, fault.Request) fault.Plan { return fault.Plan{} }, c, false)
			in := converseInput(haiku)
			in.InferenceConfig.MaxTokens = aws.Int32(tt.maxTokens)
			out, err := s.client.Converse(WithPriority(context.Background(), tt.priority), in)
			st, governed := s.k.Quota(haiku, "us-east-1")
			if c.Quotas.Disabled {
				if err != nil || governed || s.k.QuotaGoverned() || s.k.Quotas() != nil {
					t.Fatalf("err %v; the governor is on (%v, %v)", err, governed, s.k.QuotaGoverned())
				}
				return
			}
			if !governed {
				t.Fatal("the governor saw no call")
			}
			if tt.code != "" {
				entry, rep, ok := Details(err)
				if !ok || entry.Code != tt.code || rep.Sent() != 0 || s.script.seen.Load() != 0 || !rep.Attempts[0].Skipped {
					t.Fatalf("Details = %v, %+v, %v (emulator saw %d); want %s, nothing sent", entry, rep, ok, s.script.seen.Load(), tt.code)
				}
				if !strings.Contains(err.Error(), "can never fit 1000 tokens per minute") {
					t.Fatalf("error %q does not say why", err)
				}
				if v := testutil.ToFloat64(mustVec(t, s.reg, "keel_quota_refusals_total", "reason", "too-large")); v != 1 {
					t.Fatalf("keel_quota_refusals_total{too-large} = %v", v)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rep := ReportOf(out.ResultMetadata)
			cs := st.Classes[tt.priority]
			if st.Limit != 0 || st.Settled != 1 || st.InFlight != 0 || cs.Admitted != 1 || st.Classes[1-tt.priority].Admitted != 0 || rep.Attempts[0].QuotaTokens == 0 {
				t.Fatalf("stats %+v; attempt %+v", st, rep.Attempts[0])
			}
			want := float64(aws.ToInt32(out.Usage.InputTokens) + aws.ToInt32(out.Usage.OutputTokens)) // Haiku: burndown 1
			if v := gauge(t, s.reg, "keel_quota_settled_tokens_per_minute", "model", haiku, "region", "us-east-1"); v != want {
				t.Fatalf("keel_quota_settled_tokens_per_minute = %v, want %v", v, want)
			}
		})
	}
}

func TestPriorityOf(t *testing.T) {
	ctx := context.Background()
	if p := priorityOf(ctx); p != Interactive {
		t.Errorf("no priority set: %v", p)
	}
	if p := priorityOf(WithPriority(ctx, Batch)); p != Batch {
		t.Errorf("WithPriority(Batch): %v", p)
	}
	if p := priorityOf(WithPriority(WithPriority(ctx, Batch), Interactive)); p != Interactive {
		t.Errorf("the innermost WithPriority wins: %v", p)
	}
}

func TestGovernorOptions(t *testing.T) {
	c, err := config.Parse([]byte(`
quotas:
  max_wait: 20s
  queue_target: 3s
  default: {requests_per_minute: 50}
  targets:
    - {model: a, tokens_per_minute: 1000}
    - {model: b, region: eu-west-1, tokens_per_minute: 2000, learn: true, max_tokens_per_minute: 9000}
  models:
    - {match: x1, max_output_tokens: 100, burndown: 5}
`))
	if err != nil {
		t.Fatal(err)
	}
	o := governorOptions(&c.Quotas, "us-west-2")
	tests := []struct {
		name string
		got  admission.Quota
		want admission.Quota
	}{
		{"default", o.Default, admission.Quota{RequestsPerMinute: 50}},
		{"a known quota in the default region", o.Targets[admission.Target{Model: "a", Region: "us-west-2"}], admission.Quota{TokensPerMinute: 1000}},
		{"a learned one", o.Targets[admission.Target{Model: "b", Region: "eu-west-1"}], admission.Quota{TokensPerMinute: 2000, Learn: true, MaxTokensPerMinute: 9000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%+v, want %+v", tt.got, tt.want)
			}
		})
	}
	if o.MaxWait != 20*time.Second || o.QueueTarget != 3*time.Second || len(o.Targets) != 2 || len(o.Models) != 1 || o.Models[0] != (admission.Model{Match: "x1", MaxOutputTokens: 100, Burndown: 5}) {
		t.Errorf("options %+v", o)
	}
	if _, err := admission.New(o); err != nil {
		t.Errorf("admission.New: %v", err)
	}
}

// TestRedirectNotFollowed (issue 15, item 6): through the SDK face, with
// keel's client or a caller's that follows redirects, a 3xx never sends the
// signed request or the prompt to the Location's server; the call fails
// with UnexpectedRedirect, which keel explain finds again from the text.
// Calls keel passes through untouched (ApplyGuardrail) do not follow either.
func TestRedirectNotFollowed(t *testing.T) {
	clients := []struct {
		name   string
		client *http.Client
	}{
		{name: "keel's client"},
		{name: "caller's client", client: &http.Client{}},
	}
	for _, status := range []int{301, 302, 303, 307, 308} {
		for _, hc := range clients {
			t.Run(http.StatusText(status)+"/"+hc.name, func(t *testing.T) {
				var other atomic.Int64
				b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					other.Add(1)
					w.Header().Set("Content-Type", "application/json")
					w.Write([]byte(`{"output":{"message":{"role":"assistant","content":[{"text":"not the model"}]}},"stopReason":"end_turn"}`))
				}))
				defer b.Close()
				a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, b.URL+r.URL.Path, status)
				}))
				defer a.Close()
				cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDKEEL", "keel-secret", "TOKEN")}
				k, err := New(cfg, Options{HTTPClient: hc.client, clock: clock.NewAuto(time.Now()), rand: rand.New(rand.NewPCG(3, 4))})
				if err != nil {
					t.Fatal(err)
				}
				client := bedrockruntime.NewFromConfig(cfg, k.ClientOptions, func(o *bedrockruntime.Options) { o.BaseEndpoint = aws.String(a.URL) })
				out, err := client.Converse(context.Background(), converseInput(haiku))
				if err == nil {
					t.Fatalf("call succeeded with %q", replyOf(out))
				}
				if n := other.Load(); n != 0 {
					t.Fatalf("the redirect's target received %d request(s)", n)
				}
				entry, rep, ok := Details(err)
				if !ok || entry.Code != catalog.CodeUnexpectedRedirect || rep.Sent() != 1 {
					t.Fatalf("Details = %v, %+v, %v; want %s after 1 attempt (%v)", entry, rep, ok, catalog.CodeUnexpectedRedirect, err)
				}
				if e := Explain(err); e.Code != catalog.CodeUnexpectedRedirect {
					t.Errorf("Explain = %s", e.Code)
				}
				var f *Error
				if !errors.As(err, &f) || f.Failure() == nil {
					t.Fatalf("no keel failure in %v", err)
				}
				for _, text := range []string{err.Error(), f.Failure().Error()} {
					if r, ok := classify.FromText(text); !ok || r.Entry.Code != catalog.CodeUnexpectedRedirect {
						t.Errorf("keel explain %q = %v", text, r.Entry)
					}
				}
				_, err = client.ApplyGuardrail(context.Background(), &bedrockruntime.ApplyGuardrailInput{
					GuardrailIdentifier: aws.String("g"), GuardrailVersion: aws.String("1"), Source: types.GuardrailContentSourceInput,
					Content: []types.GuardrailContentBlock{&types.GuardrailContentBlockMemberText{Value: types.GuardrailTextBlock{Text: aws.String("hi")}}}})
				if err == nil {
					t.Error("ApplyGuardrail through a redirect succeeded")
				}
				if n := other.Load(); n != 0 {
					t.Fatalf("ApplyGuardrail: the redirect's target received %d request(s)", n)
				}
			})
		}
	}
}

func replyOf(out *bedrockruntime.ConverseOutput) string {
	if m, ok := out.Output.(*types.ConverseOutputMemberMessage); ok && len(m.Value.Content) > 0 {
		if t, ok := m.Value.Content[0].(*types.ContentBlockMemberText); ok {
			return t.Value
		}
	}
	return ""
}

// hostRecorder is an HTTP transport that records where each request was
// sent (host, and the region of its signature) and sends only those bound
// for allow: a test can see that a call would go to AWS without it leaving
// the machine.
type hostRecorder struct {
	allow string
	tr    *http.Transport
	mu    sync.Mutex
	sent  []sentTo
}

type sentTo struct{ host, region string }

func (h *hostRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.sent = append(h.sent, sentTo{r.URL.Host, attempt.RegionFromAuthorization(r.Header.Get("Authorization"))})
	h.mu.Unlock()
	if r.URL.Host != h.allow {
		return nil, errors.New("test: not sending to " + r.URL.Host)
	}
	return h.tr.RoundTrip(r)
}

func (h *hostRecorder) first() (sentTo, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.sent) == 0 {
		return sentTo{}, false
	}
	return h.sent[0], true
}

// isolateAWSEnv leaves the AWS SDK only what set names: no profile, no
// shared files, no instance metadata, static test credentials.
func isolateAWSEnv(t *testing.T, set map[string]string) {
	t.Helper()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	t.Setenv("HOME", dir)
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDKEEL")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "keel-secret")
	for k, v := range set {
		t.Setenv(k, v)
	}
}

// TestGoFaceEndpointAndRegionPrecedence (issue 15, item 7): a program built
// as the README shows sends to the endpoint and region that win in this
// order: keel.Options, then the config file, then the aws.Config, then the
// environment (AWS_REGION, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_BEDROCK_RUNTIME,
// AWS_ENDPOINT_URL), then AWS's endpoint in us-east-1. EMU stands for an
// in-process emulator's URL; OTHER for a loopback URL nothing must reach.
func TestGoFaceEndpointAndRegionPrecedence(t *testing.T) {
	const other = "http://127.0.0.1:1"
	tests := []struct {
		name string
		opts Options
		file string // keel.yaml; "" for none
		env  map[string]string
		// handCfg builds the aws.Config by hand with these fields, instead
		// of config.LoadDefaultConfig (which reads the environment itself).
		handCfg              bool
		cfgRegion, cfgEndpnt string
		clientEndpoint       string // a bedrockruntime option after k.ClientOptions
		enable               bool   // keel.Enable(&cfg, opts) instead of ClientOptions
		wantHost, wantRegion string // wantHost "EMU": the emulator
	}{
		{name: "file endpoint and region, no AWS_REGION", file: "region: us-west-2\nendpoint: EMU\n",
			wantHost: "EMU", wantRegion: "us-west-2"},
		{name: "file endpoint and region with Enable", file: "region: us-west-2\nendpoint: EMU\n", enable: true,
			wantHost: "EMU", wantRegion: "us-west-2"},
		{name: "file endpoint, region from AWS_REGION", file: "endpoint: EMU\n", env: map[string]string{"AWS_REGION": "eu-west-1"},
			wantHost: "EMU", wantRegion: "eu-west-1"},
		{name: "file region wins over AWS_REGION", file: "region: us-west-2\nendpoint: EMU\n", env: map[string]string{"AWS_REGION": "eu-west-1"},
			wantHost: "EMU", wantRegion: "us-west-2"},
		{name: "file region wins, AWS's endpoint of that region", file: "region: us-west-2\n", env: map[string]string{"AWS_REGION": "eu-west-1"},
			wantHost: "bedrock-runtime.us-west-2.amazonaws.com", wantRegion: "us-west-2"},
		{name: "file endpoint wins over AWS_ENDPOINT_URL_BEDROCK_RUNTIME", file: "endpoint: EMU\n",
			env:      map[string]string{"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": other},
			wantHost: "EMU", wantRegion: "eu-west-1"},
		{name: "options win over the file", opts: Options{Region: "ap-south-1", Endpoint: "EMU"},
			file: "region: us-west-2\nendpoint: " + other + "\n", env: map[string]string{"AWS_REGION": "eu-west-1"},
			wantHost: "EMU", wantRegion: "ap-south-1"},
		{name: "file wins over aws.Config", file: "region: us-west-2\nendpoint: EMU\n",
			handCfg: true, cfgRegion: "eu-central-1", cfgEndpnt: other,
			wantHost: "EMU", wantRegion: "us-west-2"},
		{name: "aws.Config wins over the environment", handCfg: true, cfgRegion: "eu-central-1", cfgEndpnt: "EMU",
			env:      map[string]string{"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": other},
			wantHost: "EMU", wantRegion: "eu-central-1"},
		{name: "environment under an empty aws.Config", handCfg: true,
			env:      map[string]string{"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "EMU", "AWS_ENDPOINT_URL": other},
			wantHost: "EMU", wantRegion: "eu-west-1"},
		{name: "AWS_DEFAULT_REGION and AWS_ENDPOINT_URL under an empty aws.Config", handCfg: true,
			env:      map[string]string{"AWS_DEFAULT_REGION": "ca-central-1", "AWS_ENDPOINT_URL": "EMU"},
			wantHost: "EMU", wantRegion: "ca-central-1"},
		{name: "environment through LoadDefaultConfig", env: map[string]string{"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "EMU"},
			wantHost: "EMU", wantRegion: "eu-west-1"},
		{name: "nothing anywhere: AWS in us-east-1",
			wantHost: "bedrock-runtime.us-east-1.amazonaws.com", wantRegion: "us-east-1"},
		{name: "file endpoint with a path", file: "endpoint: EMU/region/eu-north-1\n", env: map[string]string{"AWS_REGION": "eu-west-1"},
			wantHost: "EMU", wantRegion: "eu-west-1"},
		{name: "a client option after ClientOptions wins over the file", file: "endpoint: " + other + "\n", clientEndpoint: "EMU",
			wantHost: "EMU", wantRegion: "us-east-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu, err := emulator.Start(emulator.Options{Seed: 7})
			if err != nil {
				t.Fatal(err)
			}
			defer emu.Close()
			sub := func(s string) string { return strings.ReplaceAll(s, "EMU", emu.URL) }
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = sub(v)
			}
			isolateAWSEnv(t, env)
			rec := &hostRecorder{allow: emu.Addr(), tr: &http.Transport{}}
			defer rec.tr.CloseIdleConnections()
			opts := tt.opts
			opts.Endpoint = sub(opts.Endpoint)
			opts.HTTPClient = &http.Client{Transport: rec}
			opts.clock = clock.NewAuto(time.Now()) // the refused cases' backoffs take no time
			if tt.file != "" {
				opts.ConfigFile = filepath.Join(t.TempDir(), "keel.yaml")
				if err := os.WriteFile(opts.ConfigFile, []byte(sub(tt.file)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			var cfg aws.Config
			if tt.handCfg {
				cfg = aws.Config{Region: tt.cfgRegion, Credentials: credentials.NewStaticCredentialsProvider("AKIDKEEL", "keel-secret", "")}
				if tt.cfgEndpnt != "" {
					cfg.BaseEndpoint = aws.String(sub(tt.cfgEndpnt))
				}
			} else if cfg, err = awsconfig.LoadDefaultConfig(ctx); err != nil {
				t.Fatal(err)
			}
			var client *bedrockruntime.Client
			if tt.enable {
				if _, err := Enable(&cfg, opts); err != nil {
					t.Fatal(err)
				}
				client = bedrockruntime.NewFromConfig(cfg)
			} else {
				k, err := New(cfg, opts)
				if err != nil {
					t.Fatal(err)
				}
				client = bedrockruntime.NewFromConfig(cfg, k.ClientOptions, func(o *bedrockruntime.Options) {
					if tt.clientEndpoint != "" {
						o.BaseEndpoint = aws.String(sub(tt.clientEndpoint))
					}
				})
			}
			out, callErr := client.Converse(ctx, converseInput(haiku))
			got, ok := rec.first()
			if !ok {
				t.Fatalf("nothing sent; the call failed with %v", callErr)
			}
			wantHost := tt.wantHost
			if wantHost == "EMU" {
				wantHost = emu.Addr()
			}
			if got.host != wantHost || got.region != tt.wantRegion {
				t.Errorf("sent to %s signed for %q; want %s signed for %q", got.host, got.region, wantHost, tt.wantRegion)
			}
			if wantHost == emu.Addr() {
				if callErr != nil {
					t.Fatalf("the call failed: %v", callErr)
				}
				if ReportOf(out.ResultMetadata) == nil {
					t.Errorf("the call went past keel (no report)")
				}
			}
		})
	}
}
