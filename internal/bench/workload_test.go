package bench

import (
	"cmp"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/quota"
	"github.com/keel-run/keel/internal/emulator/reply"
)

func TestResolveModel(t *testing.T) {
	tests := []struct {
		name, id   string
		region     string
		burndown   float64
		wantErrSub string
	}{
		{name: "default profile", id: DefaultModel, region: "us-east-1", burndown: 5},
		{name: "eu profile", id: "eu.anthropic.claude-3-haiku-20240307-v1:0", region: "eu-west-1", burndown: 1},
		{name: "global profile", id: "global.anthropic.claude-haiku-4-5-20251001-v1:0", region: "us-east-1", burndown: 1},
		{name: "on-demand model", id: "amazon.nova-pro-v1:0", region: "us-east-1", burndown: 1},
		{name: "bare id of a profile-only model", id: "anthropic.claude-sonnet-4-5-20250929-v1:0", wantErrSub: "only served through an inference profile; try us.anthropic"},
		{name: "profile the model lacks", id: "apac.anthropic.claude-opus-4-20250514-v1:0", wantErrSub: `no "apac" inference profile`},
		{name: "unknown", id: "anthropic.claude-9", wantErrSub: `unknown model "anthropic.claude-9"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ResolveModel(tt.id)
			if tt.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrSub) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.ID != tt.id || m.Region != tt.region || burndown(m.Base) != tt.burndown {
				t.Fatalf("got %s in %s burndown %g, want %s in %s burndown %g", m.ID, m.Region, burndown(m.Base), tt.id, tt.region, tt.burndown)
			}
		})
	}
}

func TestWords(t *testing.T) {
	for _, w := range words {
		if len(w) != 3 || reply.Count(" "+w) != 1 {
			t.Errorf("word %q: every word must be three letters, one token with its leading space", w)
		}
	}
}

func TestWorkload(t *testing.T) {
	m, err := ResolveModel(DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	const tpm, load, d = 1_000_000, 2.0, 20 * time.Second
	w, err := NewWorkload(m, tpm, load, d, 7)
	if err != nil {
		t.Fatal(err)
	}
	target := load * tpm * d.Minutes()
	if got := float64(w.OfferedTokens()); got < target || got > target+float64(m.LargestReservation()*5) {
		t.Errorf("offered %.0f tokens, want %.0f plus at most one call", got, target)
	}
	var prev time.Duration
	for i, c := range w.Calls {
		limit := cmp.Or(c.MaxTokens, m.Base.MaxOutputTokens)
		switch {
		case c.Index != i:
			t.Fatalf("call %d has index %d", i, c.Index)
		case c.At < prev || c.At >= d:
			t.Fatalf("call %d arrives at %s, after %s and before %s expected", i, c.At, prev, d)
		case reply.Count(c.Prompt) != c.InputTokens:
			t.Fatalf("call %d: prompt has %d tokens, InputTokens %d", i, reply.Count(c.Prompt), c.InputTokens)
		case c.MaxTokens < 0 || c.MaxTokens > m.Base.MaxOutputTokens:
			t.Fatalf("call %d: max tokens %d outside the model's 0..%d", i, c.MaxTokens, m.Base.MaxOutputTokens)
		case c.Reserve != c.InputTokens+limit:
			t.Fatalf("call %d: reserve %d, want input %d + %d", i, c.Reserve, c.InputTokens, limit)
		case c.Cost <= c.InputTokens || c.Cost > c.InputTokens+5*limit:
			t.Fatalf("call %d: cost %d not input %d + 5 × (1..%d)", i, c.Cost, c.InputTokens, limit)
		}
		prev = c.At
	}

	again, err := NewWorkload(m, tpm, load, d, 7)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewWorkload(m, tpm, load, d, 8)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Calls) != len(w.Calls) || again.Calls[3] != w.Calls[3] {
		t.Errorf("the same seed drew different calls")
	}
	if other.Calls[3].Prompt == w.Calls[3].Prompt {
		t.Errorf("another seed drew the same prompt")
	}
	// A different load keeps the calls, only fewer or more of them.
	half, err := NewWorkload(m, tpm, load/2, d, 7)
	if err != nil {
		t.Fatal(err)
	}
	if half.Calls[5].Prompt != w.Calls[5].Prompt || half.Calls[5].MaxTokens != w.Calls[5].MaxTokens {
		t.Errorf("a different load changed call 5")
	}
}

// TestMeanCost checks the expected cost the arrival rate is set from
// against a large sample of the mix.
func TestMeanCost(t *testing.T) {
	for _, id := range []string{DefaultModel, "us.anthropic.claude-haiku-4-5-20251001-v1:0"} {
		t.Run(id, func(t *testing.T) {
			m, err := ResolveModel(id)
			if err != nil {
				t.Fatal(err)
			}
			w, err := NewWorkload(m, 5_000_000, 2, time.Minute, 3)
			if err != nil {
				t.Fatal(err)
			}
			mean := float64(w.OfferedTokens()) / float64(len(w.Calls))
			if d := mean/w.MeanCost - 1; d < -0.05 || d > 0.05 {
				t.Errorf("sample mean cost %.0f over %d calls, model %.0f: off by %.1f%%", mean, len(w.Calls), w.MeanCost, 100*d)
			}
		})
	}
}

func TestWorkloadSize(t *testing.T) {
	m, err := ResolveModel(DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		tpm     int64
		d       time.Duration
		wantErr string
	}{
		{"too few", 100_000, 2 * time.Second, "fewer than 20"},
		{"too many", 1_000_000_000, 5 * time.Minute, "at most 20000"},
		{"fine", 1_000_000, 10 * time.Second, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWorkload(m, tt.tpm, 2, tt.d, 1)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestQuarters(t *testing.T) {
	w := &Workload{}
	for i, r := range []int{50, 10, 80, 10, 70, 20, 60, 30, 90} {
		w.Calls = append(w.Calls, Call{Index: i, Reserve: r})
	}
	small, large := w.Quarters()
	if got, want := small, []int{1, 3}; !equal(got, want) {
		t.Errorf("small = %v, want %v", got, want)
	}
	if got, want := large, []int{2, 8}; !equal(got, want) {
		t.Errorf("large = %v, want %v", got, want)
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCostMatchesEmulator sends calls of a workload to an emulator with a
// quota meter, one at a time, and checks that the meter reserves and
// settles exactly what the workload says: the offered load is counted as
// the quota counts it.
func TestCostMatchesEmulator(t *testing.T) {
	m, err := ResolveModel(DefaultModel)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWorkload(m, 1_000_000, 2, 10*time.Second, 5)
	if err != nil {
		t.Fatal(err)
	}
	meter := quota.NewMeter(nil, nil)
	rn, err := emulator.Start(emulator.Options{Seed: 5, ReplyLength: ReplyLength,
		Admit: func(r emulator.AdmitRequest) *emulator.Rejection {
			return (*emulator.Rejection)(meter.Admit(quota.AdmitRequest{Model: r.Model, Region: r.Region, InputTokens: r.InputTokens, MaxTokens: r.MaxTokens}))
		},
		Settle: func(r emulator.SettleRequest) {
			meter.Settle(quota.SettleRequest{Model: r.Model, Region: r.Region, InputTokens: r.InputTokens,
				CacheWriteTokens: r.CacheWriteTokens, OutputTokens: r.OutputTokens, Burndown: r.Burndown, MaxTokens: r.MaxTokens})
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer rn.Close()
	client, err := sdkClient(func() aws.Retryer { return aws.NopRetryer{} })(context.Background(), Endpoint{URL: rn.URL, Model: m.ID, Region: m.Region})
	if err != nil {
		t.Fatal(err)
	}
	var reserved, settled int64
	for _, c := range w.Calls[:12] {
		in := &bedrockruntime.ConverseInput{ModelId: aws.String(m.ID),
			Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: c.Prompt}}}}}
		if c.MaxTokens > 0 {
			in.InferenceConfig = &types.InferenceConfiguration{MaxTokens: aws.Int32(int32(c.MaxTokens))}
		}
		if _, err := client.Converse(context.Background(), in); err != nil {
			t.Fatalf("call %d: %v", c.Index, err)
		}
		reserved += int64(c.Reserve)
		settled += int64(c.Cost)
	}
	u := meter.Snapshot()
	if len(u) != 1 || u[0].TokensReserved != reserved || u[0].TokensSettled != settled {
		t.Fatalf("meter %+v, want reserved %d settled %d", u, reserved, settled)
	}
}

func TestPercentile(t *testing.T) {
	s := func(ms ...int) []time.Duration {
		out := make([]time.Duration, len(ms))
		for i, m := range ms {
			out[i] = time.Duration(m) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", s(7), 99, 7 * time.Millisecond},
		{"median of four", s(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100", s(seq(100)...), 99, 99 * time.Millisecond},
		{"p99 of five", s(1, 2, 3, 4, 5), 99, 5 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Fatalf("percentile(%v, %g) = %s, want %s", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}
