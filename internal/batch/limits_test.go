package batch

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/engine"
)

// governedDoer is fakeDoer behind a quota governor, as the engine is: each
// call holds its tokens in g while it is answered.
type governedDoer struct {
	*fakeDoer
	g *admission.Governor
}

func (d governedDoer) Governor() *admission.Governor { return d.g }

func (d governedDoer) Do(ctx context.Context, call *engine.Call) (*http.Response, *engine.Report, error) {
	tk, err := d.g.Admit(ctx, admission.Target{Model: call.Model, Region: "us-east-1"}, admission.Estimate{InputTokens: 10, MaxTokens: 5}, admission.Batch)
	if err != nil {
		return nil, nil, err
	}
	resp, rep, err := d.fakeDoer.Do(ctx, call)
	tk.Settle(admission.Usage{InputTokens: 10, OutputTokens: 5})
	return resp, rep, err
}

func newGovernor(t *testing.T, clk clock.Clock, q admission.Quota) *admission.Governor {
	t.Helper()
	g, err := admission.New(admission.Options{Default: q, Clock: clk, FullStart: true})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestRunKeepsLearnedLimits: a run keeps the limits its governor learned in
// its state file, and a resumed run hints them to its new governor.
func TestRunKeepsLearnedLimits(t *testing.T) {
	const model = "anthropic.claude-3-haiku-20240307-v1:0"
	cases := []struct {
		name  string
		quota admission.Quota // the first run's
		want  []Limit
	}{
		{name: "a learned limit is kept", quota: admission.Quota{TokensPerMinute: 900_000, Learn: true},
			want: []Limit{{Model: model, Region: "us-east-1", TokensPerMinute: 900_000}}},
		{name: "a configured quota is not", quota: admission.Quota{TokensPerMinute: 900_000}},
		{name: "an unknown quota learned nothing", quota: admission.Quota{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := clock.NewAuto(t0)
			o := baseOptions(t, simpleInput(t, ids("r", 20)...), nil, clk)
			o.Doer = governedDoer{fakeDoer: newFakeDoer(clk), g: newGovernor(t, clk, c.quota)}
			if _, err := Run(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			st, err := OpenState(o.Out + ".state")
			if err != nil {
				t.Fatal(err)
			}
			got, err := st.Limits()
			st.Close()
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Limits() = %+v, %v; want %+v", got, err, c.want)
			}
			// Run again with a governor that knows nothing: it starts from
			// what the first run learned.
			g := newGovernor(t, clk, admission.Quota{})
			o.Doer = governedDoer{fakeDoer: newFakeDoer(clk), g: g}
			if sum, err := Run(context.Background(), o); err != nil || !sum.Resumed {
				t.Fatalf("resumed run: %+v, %v", sum, err)
			}
			target := admission.Target{Model: model, Region: "us-east-1"}
			tk, err := g.Admit(context.Background(), target, admission.Estimate{InputTokens: 1, MaxTokens: 1}, admission.Batch)
			if err != nil {
				t.Fatal(err)
			}
			tk.Cancel()
			s, _ := g.Stats(target)
			var want int64
			if len(c.want) > 0 {
				want = c.want[0].TokensPerMinute
			}
			if s.Limit != want {
				t.Errorf("the resumed governor starts at %d tokens/min; want %d", s.Limit, want)
			}
		})
	}
}

// TestLearnedLimitsKeepsWhatItDidNotUse: a checkpoint keeps the limits the
// state file held when the run began for targets its governor has not
// called (or has forgotten) since, beside those the governor holds, which
// win for the same target.
func TestLearnedLimitsKeepsWhatItDidNotUse(t *testing.T) {
	const model = "anthropic.claude-3-haiku-20240307-v1:0"
	clk := clock.NewAuto(t0)
	g := newGovernor(t, clk, admission.Quota{TokensPerMinute: 900_000, Learn: true})
	tk, err := g.Admit(context.Background(), admission.Target{Model: model, Region: "us-east-1"}, admission.Estimate{InputTokens: 1, MaxTokens: 1}, admission.Batch)
	if err != nil {
		t.Fatal(err)
	}
	tk.Cancel()
	nova := Limit{Model: "amazon.nova-lite-v1:0", Region: "us-east-1", TokensPerMinute: 50_000}
	r := &runner{o: Options{Doer: governedDoer{fakeDoer: newFakeDoer(clk), g: g}},
		kept: []Limit{{Model: model, Region: "us-east-1", TokensPerMinute: 120_000}, nova}}
	want := []Limit{nova, {Model: model, Region: "us-east-1", TokensPerMinute: 900_000}}
	got := r.learnedLimits()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("learnedLimits() = %+v; want %+v", got, want)
	}
	// What the last checkpoint saved is not written again.
	r.saved = got
	if again := r.learnedLimits(); again != nil {
		t.Errorf("learnedLimits() after they were saved = %+v; want nil", again)
	}
}

// TestUnreadableLimits: a state file whose learned limits cannot be read
// does not stop a resume (they only spare it some learning); keel batch
// status says what is wrong with them.
func TestUnreadableLimits(t *testing.T) {
	clk := clock.NewAuto(t0)
	o := baseOptions(t, simpleInput(t, ids("r", 3)...), nil, clk)
	o.Doer = governedDoer{fakeDoer: newFakeDoer(clk), g: newGovernor(t, clk, admission.Quota{TokensPerMinute: 900_000, Learn: true})}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	st, err := OpenState(o.Out + ".state")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.db.Exec(`UPDATE batch_meta SET value = '{not json' WHERE key = ?`, limitsKey); err != nil {
		t.Fatal(err)
	}
	_, err = st.Limits()
	st.Close()
	if err == nil || !strings.Contains(err.Error(), o.Out+".state") || !strings.Contains(err.Error(), "learned limits") {
		t.Errorf("Limits() on a broken state = %v; want an error naming the state file and its learned limits", err)
	}
	if sum, err := Run(context.Background(), o); err != nil || !sum.Resumed {
		t.Errorf("Run on a state with broken limits = %+v, %v; want it resumed", sum, err)
	}
}
