package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/retry"
	"github.com/keel-run/keel/internal/route"
)

// TestTierFallback runs calls against an emulator whose default tier
// throttles every call and whose other tiers serve: a route step naming a
// tier (and a class) moves the call there, the request asks for that tier
// (Converse body, InvokeModel header), and the report names the tier.
func TestTierFallback(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string // the tier of each request the emulator planned
	)
	rn, err := emulator.Start(emulator.Options{Seed: seed, Planner: func(r fault.Request) fault.Plan {
		mu.Lock()
		seen = append(seen, r.Tier)
		mu.Unlock()
		if r.Tier == bedrock.TierDefault {
			return fault.Plan{Error: catalog.CodeThrottling}
		}
		return fault.Plan{}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rn.Close() })
	u, _ := url.Parse(rn.URL)
	flexForBatch := route.Step{Target: attempt.Target{Model: sonnet, Tier: bedrock.TierFlex}, Class: route.ClassBatch}
	priorityForInteractive := route.Step{Target: attempt.Target{Model: sonnet, Tier: bedrock.TierPriority}, Class: route.ClassInteractive}
	converse := []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
	invoke := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`)

	tests := []struct {
		name     string
		steps    []route.Step
		op       attempt.Op
		body     []byte
		header   http.Header
		priority Priority
		tier     string   // Call.Tier
		batch    string   // Options.BatchTier
		want     []string // the tiers the emulator saw, in order
		code     string   // the failure's catalog code; "" for success
	}{
		{name: "batch call falls from default to flex", steps: []route.Step{flexForBatch, priorityForInteractive},
			op: attempt.Converse, body: converse, priority: Batch, want: []string{"default", "flex"}},
		{name: "interactive call goes to priority", steps: []route.Step{flexForBatch, priorityForInteractive},
			op: attempt.Converse, body: converse, priority: Interactive, want: []string{"default", "priority"}},
		{name: "no step for the class: the throttle stands", steps: []route.Step{flexForBatch},
			op: attempt.Converse, body: converse, priority: Interactive, want: []string{"default"}, code: catalog.CodeThrottling},
		{name: "stream falls to flex", steps: []route.Step{flexForBatch},
			op: attempt.ConverseStream, body: converse, priority: Batch, want: []string{"default", "flex"}},
		{name: "invoke falls to flex by header", steps: []route.Step{flexForBatch},
			op: attempt.Invoke, body: invoke, priority: Batch, want: []string{"default", "flex"}},
		{name: "call's tier chosen by the caller", op: attempt.Converse, body: converse, tier: bedrock.TierFlex, want: []string{"flex"}},
		{name: "the request's own tier", op: attempt.Invoke, body: invoke, header: http.Header{TierHeader: {"priority"}}, want: []string{"priority"}},
		{name: "the caller's tier comes before a default step", op: attempt.Converse, tier: bedrock.TierFlex,
			body:  []byte(`{"serviceTier":{"type":"priority"},"messages":[{"role":"user","content":[{"text":"hi"}]}]}`),
			steps: []route.Step{{Target: attempt.Target{Model: sonnet, Tier: bedrock.TierDefault}}}, want: []string{"flex"}},
		{name: "batch calls take the batch tier", op: attempt.Converse, body: converse, priority: Batch, batch: bedrock.TierFlex, want: []string{"flex"}},
		{name: "interactive calls do not", op: attempt.Converse, body: converse, priority: Interactive, batch: bedrock.TierFlex,
			want: []string{"default"}, code: catalog.CodeThrottling},
		{name: "a batch request's own tier stands", op: attempt.Invoke, body: invoke, header: http.Header{TierHeader: {"priority"}},
			priority: Batch, batch: bedrock.TierFlex, want: []string{"priority"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			eng, err := New(Options{Endpoints: attempt.FixedEndpoint{URL: u}, Region: "us-east-1",
				Routes: route.NewSteps("us-east-1", map[string][]route.Step{sonnet: tt.steps}), Retry: retry.Policy{MaxAttempts: 1},
				BatchTier: tt.batch})
			if err != nil {
				t.Fatal(err)
			}
			header := tt.header
			if header == nil {
				header = http.Header{}
			}
			resp, rep, err := eng.Do(context.Background(), &Call{Op: tt.op, Model: sonnet, Body: tt.body, Header: header,
				Priority: tt.priority, Tier: tt.tier})
			var reply []byte
			if resp != nil {
				reply, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			mu.Lock()
			got := slices.Clone(seen)
			mu.Unlock()
			if !slices.Equal(got, tt.want) {
				t.Errorf("emulator saw tiers %q, want %q", got, tt.want)
			}
			last := tt.want[len(tt.want)-1]
			if tt.code != "" {
				var e *Error
				if !errors.As(err, &e) || e.Entry.Code != tt.code {
					t.Fatalf("err = %v, want %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if wantTier := last; rep.Target.Tier != wantTier && !(wantTier == "default" && rep.Target.Tier == "") {
				t.Errorf("report's target %s, want tier %s", rep.Target, wantTier)
			}
			if len(rep.Attempts) != len(tt.want) {
				t.Errorf("%d attempts, want %d", len(rep.Attempts), len(tt.want))
			}
			switch tt.op {
			case attempt.Converse:
				var out struct{ ServiceTier struct{ Type string } }
				if err := json.Unmarshal(reply, &out); err != nil || out.ServiceTier.Type != last {
					t.Errorf("reply reports tier %q (%v), want %q", out.ServiceTier.Type, err, last)
				}
			case attempt.Invoke:
				if h := resp.Header.Get(TierHeader); h != last {
					t.Errorf("reply header reports tier %q, want %q", h, last)
				}
			}
		})
	}
}

// TestRequestTier reads the tier a request names.
func TestRequestTier(t *testing.T) {
	tests := []struct {
		name   string
		op     attempt.Op
		header http.Header
		body   string
		want   string
	}{
		{"converse names none", attempt.Converse, nil, `{"messages":[]}`, ""},
		{"converse flex", attempt.ConverseStream, nil, `{"serviceTier":{"type":"flex"}}`, "flex"},
		{"converse not JSON", attempt.Converse, nil, `{"serviceTier":`, ""},
		{"invoke header", attempt.InvokeWithResponseStream, http.Header{TierHeader: {"priority"}}, `{"serviceTier":{"type":"flex"}}`, "priority"},
		{"invoke body is the model's", attempt.Invoke, nil, `{"serviceTier":{"type":"flex"}}`, ""},
		{"count tokens", attempt.CountTokens, http.Header{TierHeader: {"flex"}}, `{}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RequestTier(tt.op, tt.header, []byte(tt.body)); got != tt.want {
				t.Errorf("RequestTier = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWithTier sets serviceTier in a Converse body and keeps the rest.
func TestWithTier(t *testing.T) {
	got, err := withTier([]byte(`{"messages":[{"role":"user"}],"serviceTier":{"type":"default"}}`), "flex")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"messages":[{"role":"user"}],"serviceTier":{"type":"flex"}}`; string(got) != want {
		t.Errorf("withTier = %s, want %s", got, want)
	}
	if _, err := withTier([]byte(`[1]`), "flex"); err == nil {
		t.Error("withTier of a JSON array: no error")
	}
}

// TestTierErrors: a tier that is no tier is refused, by New and by Do,
// before anything is sent.
func TestTierErrors(t *testing.T) {
	if _, err := New(Options{BatchTier: "cheap"}); err == nil || !strings.Contains(err.Error(), `BatchTier "cheap" is not a service tier`) {
		t.Errorf("New: err = %v", err)
	}
	eng, err := New(Options{Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = eng.Do(context.Background(), &Call{Op: attempt.Converse, Model: sonnet, Body: []byte(`{}`), Tier: "Flex"})
	if err == nil || !strings.Contains(err.Error(), `engine: unknown service tier "Flex"; want one of priority, default, flex, reserved`) {
		t.Errorf("Do: err = %v", err)
	}
}
