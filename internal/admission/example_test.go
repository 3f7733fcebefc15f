package admission_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/clock"
)

func ExampleGovernor() {
	// The fake clock starts at the wall clock's time, so that the real
	// context deadline below, set from it, is as far away on any date.
	clk := clock.NewFake(time.Now())
	sonnet := admission.Target{Model: "us.anthropic.claude-sonnet-4-20250514-v1:0", Region: "us-east-1"}
	g, err := admission.New(admission.Options{
		Targets: map[admission.Target]admission.Quota{sonnet: {TokensPerMinute: 6000}},
		Clock:   clk,
		// The bucket starts full, as Bedrock's does when nothing used it
		// lately. By default it starts with a second of quota and warms
		// up, lest Bedrock's be spent.
		FullStart: true,
	})
	if err != nil {
		panic(err)
	}

	body := []byte(`{"messages":[{"role":"user","content":[{"text":"Write a haiku about quotas."}]}],"inferenceConfig":{"maxTokens":2000}}`)
	est, _ := admission.EstimateBody(body)
	fmt.Printf("estimate: %d input tokens, max tokens %d\n", est.InputTokens, est.MaxTokens)

	tk, err := g.Admit(context.Background(), sonnet, est, admission.Interactive)
	if err != nil {
		panic(err)
	}
	// Until the target has learned its input ratio, the input estimate is
	// held with a 25% margin: 7 → 9.
	fmt.Printf("holds %d = input %d + max tokens %d\n", tk.Tokens(), tk.InputTokens(), tk.MaxTokens())

	// The response reports 14 input and 40 output tokens; Sonnet 4 burns
	// output 5:1, so the call cost 14 + 200 tokens of the quota.
	tk.Settle(admission.Usage{InputTokens: 14, OutputTokens: 40})
	s, _ := g.Stats(sonnet)
	fmt.Printf("available %d of %d\n", s.Available, s.Limit)

	// A call that does not fit waits, unless it would wait past its
	// deadline less the time its reply may take: 5,999 tokens need 213
	// more, at 100 a second. (The reply above came back at once on this
	// fake clock, so the target has no reply time yet: half the call's
	// time is kept for its reply.)
	ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(3*time.Second))
	defer cancel()
	_, err = g.Admit(ctx, sonnet, admission.Estimate{MaxTokens: 5999}, admission.Batch)
	fmt.Println(errors.Is(err, admission.ErrWouldExceedDeadline), err)
	// A call that holds more than the quota can never fit: 10,000 input + 64,000 max tokens by default.
	_, err = g.Admit(context.Background(), sonnet, admission.Estimate{InputTokens: 8000}, admission.Batch)
	fmt.Println(errors.Is(err, admission.ErrTooLarge))
	// Output:
	// estimate: 7 input tokens, max tokens 2000
	// holds 2009 = input 9 + max tokens 2000
	// available 5786 of 6000
	// true admission: us.anthropic.claude-sonnet-4-20250514-v1:0@us-east-1: 5999 tokens would fit in about 2.13s (0 requests ahead) and no reply has come back from it yet, so half the call's time (1.5s) is kept for its reply: past the deadline in 3s
	// true
}
