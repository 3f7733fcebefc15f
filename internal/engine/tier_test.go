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

// TestTierFallbackAdaptsBody runs calls on Opus 4.7, which throttles them,
// whose route falls back to Sonnet 4.5 on the flex tier: the request sent
// there carries both the body fitted to Sonnet 4.5 (adapt.go) and the flex
// tier (the header of InvokeModel, serviceTier in a Converse body), and the
// report names both. Naming the tier on the call's own body instead sends
// Sonnet 4.5 a body it refuses.
func TestTierFallbackAdaptsBody(t *testing.T) {
	const user = `{"role":"user","content":"Name three rivers."}`
	const converseUser = `{"role":"user","content":[{"text":"Name three rivers."}]}`
	version := Adaptation{Field: "anthropic_version", Action: AdaptTranslated,
		From: `"` + bedrock.AnthropicVersion20261021 + `"`, To: `"` + bedrock.AnthropicVersionBedrock + `"`}
	tests := []struct {
		name    string
		op      attempt.Op
		body    string
		changes []Adaptation // on the fallback's attempt; each To is on the wire
	}{
		{name: "invoke 2026-10-21", op: attempt.Invoke,
			body: `{"anthropic_version":"2026-10-21","max_tokens":200,"messages":[` + user + `]}`, changes: []Adaptation{version}},
		{name: "invoke stream 2026-10-21", op: attempt.InvokeWithResponseStream,
			body: `{"anthropic_version":"2026-10-21","max_tokens":200,"messages":[` + user + `]}`, changes: []Adaptation{version}},
		{name: "invoke 2026-10-21 above the output limit", op: attempt.Invoke,
			body:    `{"anthropic_version":"2026-10-21","max_tokens":100000,"messages":[` + user + `]}`,
			changes: []Adaptation{version, {Field: "max_tokens", Action: AdaptLowered, From: "100000", To: "64000"}}},
		{name: "converse above the output limit", op: attempt.Converse,
			body:    `{"messages":[` + converseUser + `],"inferenceConfig":{"maxTokens":100000}}`,
			changes: []Adaptation{{Field: "inferenceConfig.maxTokens", Action: AdaptLowered, From: "100000", To: "64000"}}},
		{name: "converse stream naming the default tier", op: attempt.ConverseStream,
			body:    `{"serviceTier":{"type":"default"},"messages":[` + converseUser + `],"inferenceConfig":{"maxTokens":100000}}`,
			changes: []Adaptation{{Field: "inferenceConfig.maxTokens", Action: AdaptLowered, From: "100000", To: "64000"}}},
	}
	type request struct {
		path   string
		header http.Header
		body   []byte
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu   sync.Mutex
				seen []request
			)
			rn := startSignedEmulator(t, failModel(opus47, catalog.CodeThrottling), func(r *http.Request, body []byte) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, request{r.URL.Path, r.Header.Clone(), slices.Clone(body)})
			})
			e, _ := newStreamEngine(t, rn.URL, func(o *Options) {
				o.Routes = route.New("us-east-1", map[string][]attempt.Target{opus47: {{Model: sonnet45, Tier: bedrock.TierFlex}}})
				o.Retry = retry.Policy{MaxAttempts: 1}
			})
			resp, rep, err := e.Do(t.Context(), &Call{Op: tt.op, Model: opus47, Body: []byte(tt.body)})
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err != nil {
				t.Fatalf("the call failed: %v (attempts %+v)", err, rep.Attempts)
			}

			// What the emulator saw: the call's own body on Opus 4.7, then
			// the fitted body on Sonnet 4.5, asking for flex.
			mu.Lock()
			got := slices.Clone(seen)
			mu.Unlock()
			if len(got) != 2 {
				t.Fatalf("the emulator saw %d requests, want 2", len(got))
			}
			if !strings.Contains(got[0].path, "/"+opus47+"/") || string(got[0].body) != tt.body || got[0].header.Get(TierHeader) != "" {
				t.Errorf("first request %s (tier header %q) %s, want the call's own body to %s",
					got[0].path, got[0].header.Get(TierHeader), got[0].body, opus47)
			}
			fb := got[1]
			if !strings.Contains(fb.path, "/"+sonnet45+"/") {
				t.Errorf("fallback request went to %s, want %s", fb.path, sonnet45)
			}
			tier := fb.header.Get(TierHeader)
			if tt.op == attempt.Converse || tt.op == attempt.ConverseStream {
				var b struct{ ServiceTier struct{ Type string } }
				if err := json.Unmarshal(fb.body, &b); err != nil {
					t.Fatalf("fallback body %s: %v", fb.body, err)
				}
				tier = b.ServiceTier.Type
			}
			if tier != bedrock.TierFlex {
				t.Errorf("fallback request asks for tier %q, want %q (body %s)", tier, bedrock.TierFlex, fb.body)
			}
			for _, c := range tt.changes {
				if v := jsonAt(t, fb.body, c.Field); string(v) != c.To {
					t.Errorf("fallback body has %s = %s, want %s: %s", c.Field, v, c.To, fb.body)
				}
			}

			// What the report says.
			if len(rep.Attempts) != 2 || rep.Attempts[0].Code != catalog.CodeThrottling || rep.Attempts[0].Adaptations != nil {
				t.Fatalf("attempts = %+v, want the throttle, then the fallback", rep.Attempts)
			}
			a := rep.Attempts[1]
			if a.Skipped || a.Status != http.StatusOK || a.Target.Model != sonnet45 || a.Target.Tier != bedrock.TierFlex {
				t.Errorf("fallback attempt %+v, want %s on %s to answer", a, sonnet45, bedrock.TierFlex)
			}
			if !slices.Equal(a.Adaptations, tt.changes) {
				t.Errorf("fallback adaptations = %v, want %v", a.Adaptations, tt.changes)
			}
			if rep.Target != a.Target || rep.Fallbacks != 1 {
				t.Errorf("report target %s after %d fallbacks, want %s after 1", rep.Target, rep.Fallbacks, a.Target)
			}
		})
	}
}

// jsonAt returns the value at a dotted path of a JSON object, as written;
// nil when absent.
func jsonAt(t *testing.T, data []byte, path string) json.RawMessage {
	t.Helper()
	v := json.RawMessage(data)
	for _, k := range strings.Split(path, ".") {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(v, &m); err != nil {
			t.Fatalf("%s: %v in %s", path, err, data)
		}
		v = m[k]
	}
	return v
}
