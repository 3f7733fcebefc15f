package keel

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/sigv4check"
)

const haiku = "anthropic.claude-3-haiku-20240307-v1:0"

// stepClock is a fake clock whose timers fire at once after moving the time
// forward by their duration, so backoffs take no real time.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) NewTimer(d time.Duration) clock.Timer {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- now
	return firedTimer(ch)
}

type firedTimer chan time.Time

func (t firedTimer) C() <-chan time.Time { return t }
func (t firedTimer) Stop() bool          { return false }

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
}

func newSetup(t *testing.T, plan func(n int, r fault.Request) fault.Plan, c *config.Config, verify bool) *setup {
	t.Helper()
	sc := &script{n: map[string]int{}, plan: plan}
	eo := emulator.Options{Seed: 7, Planner: sc.Plan}
	if verify {
		v := sigv4check.New(sigv4check.Options{Keys: map[string]string{"AKIDKEEL": "keel-secret"}})
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
	k, err := New(cfg, Options{Config: c, Registerer: reg,
		clock: &stepClock{now: time.Now()}, rand: rand.New(rand.NewPCG(3, 4))})
	if err != nil {
		t.Fatal(err)
	}
	client := bedrockruntime.NewFromConfig(cfg, k.ClientOptions, func(o *bedrockruntime.Options) { o.BaseEndpoint = aws.String(emu.URL) })
	return &setup{client: client, script: sc, reg: reg}
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
