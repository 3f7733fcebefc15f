package engine

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/route"
	"github.com/keel-run/keel/internal/sigv4verify"
)

// Models of the table the adaptation tests move bodies to.
const (
	opus47   = "us.anthropic.claude-opus-4-7"
	sonnet45 = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
	opus41   = "us.anthropic.claude-opus-4-1-20250805-v1:0"
)

func model(t *testing.T, id string) *bedrock.ModelInfo {
	t.Helper()
	m, ok := bedrock.LookupModel(id)
	if !ok {
		t.Fatalf("%s is not in the model table", id)
	}
	return m
}

// newOnly is a model that takes only anthropic_version 2026-10-21 (none
// does today), to check a move to a newer version.
func newOnly(t *testing.T) *bedrock.ModelInfo {
	m := *model(t, opus47)
	m.AnthropicVersions = []string{bedrock.AnthropicVersion20261021}
	return &m
}

func TestAdaptBody(t *testing.T) {
	const user = `{"role":"user","content":"hi"}`
	tests := []struct {
		name    string
		op      attempt.Op
		to      *bedrock.ModelInfo
		body    string
		want    string // "" : the body unchanged
		changes []Adaptation
		refused string // the catalog code of a refusal
	}{
		{name: "new version to an old-version model", op: attempt.Invoke, to: model(t, sonnet45),
			body:    `{"anthropic_version":"2026-10-21","max_tokens":100,"messages":[` + user + `]}`,
			want:    `{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[` + user + `]}`,
			changes: []Adaptation{{Field: "anthropic_version", Action: AdaptTranslated, From: `"2026-10-21"`, To: `"bedrock-2023-05-31"`}}},
		{name: "old version to a model that takes both", op: attempt.InvokeWithResponseStream, to: model(t, opus47),
			body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"temperature":0.2,"messages":[` + user + `]}`},
		{name: "old version to a new-only model drops sampling", op: attempt.Invoke, to: newOnly(t),
			body: `{"anthropic_version":"bedrock-2023-05-31","temperature":0.2,"max_tokens":100,"top_k":5,"top_p":null,"messages":[` + user + `]}`,
			want: `{"anthropic_version":"2026-10-21","max_tokens":100,"messages":[` + user + `]}`,
			changes: []Adaptation{{Field: "anthropic_version", Action: AdaptTranslated, From: `"bedrock-2023-05-31"`, To: `"2026-10-21"`},
				{Field: "temperature", Action: AdaptDropped, From: "0.2"}, {Field: "top_k", Action: AdaptDropped, From: "5"}}},
		{name: "citations on user text cannot move to 2026-10-21", op: attempt.Invoke, to: newOnly(t),
			body:    `{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"a","citations":[{"type":"char_location"}]}]}]}`,
			refused: catalog.CodeRemovedInAPIVersion},
		{name: "a document in an assistant message cannot move to 2026-10-21", op: attempt.Invoke, to: newOnly(t),
			body:    `{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[` + user + `,{"role":"assistant","content":[{"type":"document","source":{}}]},` + user + `]}`,
			refused: catalog.CodeRemovedInAPIVersion},
		{name: "max_tokens above the target's output", op: attempt.Invoke, to: model(t, opus41),
			body:    `{"anthropic_version":"bedrock-2023-05-31","max_tokens":128000,"messages":[` + user + `]}`,
			want:    `{"anthropic_version":"bedrock-2023-05-31","max_tokens":32000,"messages":[` + user + `]}`,
			changes: []Adaptation{{Field: "max_tokens", Action: AdaptLowered, From: "128000", To: "32000"}}},
		{name: "version and max_tokens together", op: attempt.Invoke, to: model(t, opus41),
			body: `{"max_tokens":64000,"anthropic_version":"2026-10-21","messages":[` + user + `]}`,
			want: `{"max_tokens":32000,"anthropic_version":"bedrock-2023-05-31","messages":[` + user + `]}`,
			changes: []Adaptation{{Field: "anthropic_version", Action: AdaptTranslated, From: `"2026-10-21"`, To: `"bedrock-2023-05-31"`},
				{Field: "max_tokens", Action: AdaptLowered, From: "64000", To: "32000"}}},
		{name: "unknown version is the target's to refuse", op: attempt.Invoke, to: model(t, sonnet45),
			body: `{"anthropic_version":"2027-01-01","max_tokens":10,"messages":[` + user + `]}`},
		{name: "prefill to a no-prefill model", op: attempt.Invoke, to: model(t, opus47),
			body:    `{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[` + user + `,{"role":"assistant","content":"{"}]}`,
			refused: catalog.CodePrefillUnsupported},
		{name: "prefill to a model that takes one", op: attempt.Invoke, to: model(t, sonnet45),
			body:    `{"anthropic_version":"2026-10-21","max_tokens":10,"messages":[` + user + `,{"role":"assistant","content":"{"}]}`,
			want:    `{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[` + user + `,{"role":"assistant","content":"{"}]}`,
			changes: []Adaptation{{Field: "anthropic_version", Action: AdaptTranslated, From: `"2026-10-21"`, To: `"bedrock-2023-05-31"`}}},
		{name: "converse maxTokens", op: attempt.ConverseStream, to: model(t, opus41),
			body:    `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"temperature":0.5,"maxTokens":50000}}`,
			want:    `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"temperature":0.5,"maxTokens":32000}}`,
			changes: []Adaptation{{Field: "inferenceConfig.maxTokens", Action: AdaptLowered, From: "50000", To: "32000"}}},
		{name: "converse prefill to a no-prefill model", op: attempt.Converse, to: model(t, opus47),
			body:    `{"messages":[{"role":"user","content":[{"text":"hi"}]},{"role":"assistant","content":[{"text":"{"}]}]}`,
			refused: catalog.CodePrefillUnsupported},
		{name: "converse ending in a user turn", op: attempt.Converse, to: model(t, opus47),
			body: `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":100}}`},
		{name: "nova max_new_tokens", op: attempt.Invoke, to: model(t, "amazon.nova-lite-v1:0"),
			body:    `{"schemaVersion":"messages-v1","messages":[],"inferenceConfig":{"max_new_tokens":9000}}`,
			want:    `{"schemaVersion":"messages-v1","messages":[],"inferenceConfig":{"max_new_tokens":5000}}`,
			changes: []Adaptation{{Field: "inferenceConfig.max_new_tokens", Action: AdaptLowered, From: "9000", To: "5000"}}},
		{name: "titan maxTokenCount", op: attempt.Invoke, to: model(t, "amazon.titan-text-premier-v1:0"),
			body:    `{"inputText":"hi","textGenerationConfig":{"maxTokenCount":8192}}`,
			want:    `{"inputText":"hi","textGenerationConfig":{"maxTokenCount":3072}}`,
			changes: []Adaptation{{Field: "textGenerationConfig.maxTokenCount", Action: AdaptLowered, From: "8192", To: "3072"}}},
		{name: "count tokens is left alone", op: attempt.CountTokens, to: model(t, sonnet45),
			body: `{"anthropic_version":"2026-10-21","messages":[` + user + `]}`},
		{name: "not JSON is the target's to refuse", op: attempt.Invoke, to: model(t, sonnet45), body: `{"anthropic_version":`},
		{name: "trailing data is the target's to refuse", op: attempt.Invoke, to: model(t, sonnet45),
			body: `{"anthropic_version":"2026-10-21"} {}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changes, err := adaptBody(tt.op, []byte(tt.body), tt.to)
			if tt.refused != "" {
				var ae *adaptError
				if !errors.As(err, &ae) || ae.entry.Code != tt.refused {
					t.Fatalf("err = %v, want a refusal %s", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "" {
				want = tt.body
			}
			if string(got) != want {
				t.Errorf("body\n got %s\nwant %s", got, want)
			}
			if !slices.Equal(changes, tt.changes) {
				t.Errorf("changes = %v, want %v", changes, tt.changes)
			}
		})
	}
}

// TestFallbackAcrossModelGenerations runs calls against the emulator whose
// first model's quota is exceeded, so the route moves them to a model of
// another generation; the body is fitted to it, or the target is skipped.
// Without the adaptation the moves from Opus 4.7 end in a 400
// (AnthropicVersionUnsupported, or the output limit).
func TestFallbackAcrossModelGenerations(t *testing.T) {
	const user = `{"role":"user","content":"Name three rivers."}`
	version := func(from, to string) Adaptation {
		return Adaptation{Field: "anthropic_version", Action: AdaptTranslated, From: strconv.Quote(from), To: strconv.Quote(to)}
	}
	tests := []struct {
		name     string
		op       attempt.Op
		from, to string
		body     string
		changes  []Adaptation // on the fallback's attempt
		refused  string       // the fallback is skipped with this code; the call fails
	}{
		{name: "2026-10-21 to an old-version model", op: attempt.Invoke, from: opus47, to: sonnet45,
			body:    `{"anthropic_version":"2026-10-21","max_tokens":200,"messages":[` + user + `]}`,
			changes: []Adaptation{version(bedrock.AnthropicVersion20261021, bedrock.AnthropicVersionBedrock)}},
		{name: "2026-10-21 streamed to an old-version model", op: attempt.InvokeWithResponseStream, from: opus47, to: sonnet45,
			body:    `{"anthropic_version":"2026-10-21","max_tokens":200,"messages":[` + user + `]}`,
			changes: []Adaptation{version(bedrock.AnthropicVersion20261021, bedrock.AnthropicVersionBedrock)}},
		{name: "output limit of a smaller model", op: attempt.Invoke, from: opus47, to: opus41,
			body: `{"anthropic_version":"2026-10-21","max_tokens":100000,"messages":[` + user + `]}`,
			changes: []Adaptation{version(bedrock.AnthropicVersion20261021, bedrock.AnthropicVersionBedrock),
				{Field: "max_tokens", Action: AdaptLowered, From: "100000", To: "32000"}}},
		{name: "converse output limit", op: attempt.Converse, from: opus47, to: opus41,
			body:    `{"messages":[{"role":"user","content":[{"text":"Name three rivers."}]}],"inferenceConfig":{"maxTokens":100000}}`,
			changes: []Adaptation{{Field: "inferenceConfig.maxTokens", Action: AdaptLowered, From: "100000", To: "32000"}}},
		{name: "old version with sampling to a new-version model", op: attempt.Invoke, from: sonnet45, to: opus47,
			body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":200,"temperature":0.3,"messages":[` + user + `]}`},
		{name: "prefill to a no-prefill model", op: attempt.Invoke, from: sonnet45, to: opus47,
			body:    `{"anthropic_version":"bedrock-2023-05-31","max_tokens":200,"messages":[` + user + `,{"role":"assistant","content":"Rivers:"}]}`,
			refused: catalog.CodePrefillUnsupported},
		{name: "converse prefill to a no-prefill model", op: attempt.ConverseStream, from: sonnet45, to: opus47,
			body:    `{"messages":[{"role":"user","content":[{"text":"Name three rivers."}]},{"role":"assistant","content":[{"text":"Rivers:"}]}]}`,
			refused: catalog.CodePrefillUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rn := startSignedEmulator(t, failModel(tt.from, catalog.CodeServiceQuotaExceeded), nil)
			e, _ := newStreamEngine(t, rn.URL, func(o *Options) {
				o.Routes = route.New("us-east-1", map[string][]attempt.Target{tt.from: {{Model: tt.to}}})
			})
			resp, rep, err := e.Do(t.Context(), &Call{Op: tt.op, Model: tt.from, Body: []byte(tt.body)})
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if len(rep.Attempts) != 2 || rep.Attempts[0].Code != catalog.CodeServiceQuotaExceeded {
				t.Fatalf("attempts = %+v, want the quota refusal, then the fallback", rep.Attempts)
			}
			fb := rep.Attempts[1]
			if tt.refused != "" {
				var ke *Error
				if !fb.Skipped || fb.Code != tt.refused || !errors.As(err, &ke) || ke.Entry.Code != catalog.CodeServiceQuotaExceeded {
					t.Fatalf("fallback %+v, err %v: want it skipped with %s, and the call to fail with the first model's error", fb, err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatalf("the fallback failed: %v (attempts %+v)", err, rep.Attempts)
			}
			if fb.Skipped || fb.Status != http.StatusOK || rep.Target.Model != tt.to || rep.Fallbacks != 1 {
				t.Errorf("fallback %+v, target %v: want %s to answer", fb, rep.Target, tt.to)
			}
			if !slices.Equal(fb.Adaptations, tt.changes) || rep.Attempts[0].Adaptations != nil {
				t.Errorf("adaptations = %v then %v, want none then %v", rep.Attempts[0].Adaptations, fb.Adaptations, tt.changes)
			}
		})
	}
}

// startSignedEmulator starts an emulator that plans each request with plan
// and checks its SigV4 signature, so that a body keel changed must have been
// signed anew. seen, when not nil, gets each request whose signature passed
// (before its plan's error, if any, is answered); body is the emulator's,
// so seen copies what it keeps.
func startSignedEmulator(t *testing.T, plan func(fault.Request) fault.Plan, seen func(r *http.Request, body []byte)) *emulator.Running {
	t.Helper()
	sig := sigv4verify.New(sigv4verify.Options{Keys: map[string]string{"AKID": "SECRET"},
		Clock: clock.NewFake(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))})
	rn, err := emulator.Start(emulator.Options{Seed: seed, Planner: plan, Verify: func(r *http.Request, body []byte) *emulator.Rejection {
		if rej := sig.Verify(r, body); rej != nil {
			return (*emulator.Rejection)(rej)
		}
		if seen != nil {
			seen(r, body)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rn.Close() })
	return rn
}

// failModel is a plan that answers every request for model (any of its
// inference profiles) with the catalog error code, and serves the others.
func failModel(model, code string) func(fault.Request) fault.Plan {
	base := bedrock.BaseModelID(model)
	return func(r fault.Request) fault.Plan {
		if bedrock.BaseModelID(r.Model) == base {
			return fault.Plan{Error: code}
		}
		return fault.Plan{}
	}
}

// TestInvokeBodyStaysInItsFormat checks that an InvokeModel call is never
// sent to a route's model of another body format: adaptation fits a body
// to a model of its own format only.
func TestInvokeBodyStaysInItsFormat(t *testing.T) {
	rn, err := emulator.Start(emulator.Options{Seed: seed, Planner: func(fault.Request) fault.Plan {
		return fault.Plan{Error: catalog.CodeServiceQuotaExceeded}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rn.Close() })
	e, _ := newStreamEngine(t, rn.URL, func(o *Options) {
		o.Routes = route.New("us-east-1", map[string][]attempt.Target{opus47: {{Model: novaPro}, {Model: llama}, {Model: sonnet45}}})
	})
	body := `{"anthropic_version":"2026-10-21","max_tokens":200,"messages":[{"role":"user","content":"hi"}]}`
	_, rep, err := e.Do(t.Context(), &Call{Op: attempt.Invoke, Model: opus47, Body: []byte(body)})
	if err == nil {
		t.Fatal("the call succeeded; every target's quota is exceeded")
	}
	var got []string
	for _, a := range rep.Attempts {
		got = append(got, a.Target.Model)
	}
	if !slices.Equal(got, []string{opus47, sonnet45}) {
		t.Errorf("targets tried = %v, want %v: never a model of another format", got, []string{opus47, sonnet45})
	}
}
