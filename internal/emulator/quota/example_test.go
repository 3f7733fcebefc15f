package quota_test

import (
	"fmt"
	"time"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/quota"
)

func ExampleMeter() {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m := quota.NewMeter(clk, quota.Table{
		{Model: "*claude-sonnet-4*", Region: "us-east-1", Limits: quota.Limits{TokensPerMinute: 10000}},
	})
	req := quota.AdmitRequest{Model: "us.anthropic.claude-sonnet-4-20250514-v1:0", Region: "us-east-1",
		Operation: "converse", InputTokens: 1000, MaxTokens: 8000}

	fmt.Println(m.Admit(req)) // reserves 9,000 of 10,000
	fmt.Println(m.Admit(req).Message)

	// The first request used 1,000 input and 200 output tokens, which Sonnet 4
	// burns down 5 times: 2,000 settled, 7,000 given back, 8,000 free.
	m.Settle(quota.SettleRequest{Model: req.Model, Region: req.Region, Operation: req.Operation,
		InputTokens: 1000, OutputTokens: 200, Burndown: 5, MaxTokens: 8000})
	clk.Advance(6 * time.Second) // the window refills 10,000/60 a second: 9,000 free
	fmt.Println(m.Admit(req))

	u := m.Snapshot()[0]
	fmt.Println(u.Requests, u.Admitted, u.Throttled, u.TokensReserved, u.TokensSettled)
	// Output:
	// <nil>
	// Too many tokens, please wait before trying again.
	// <nil>
	// 3 2 1 18000 2000
}

// A bucket of another shape: 60,000 tokens per minute, but a bucket that
// holds 10 seconds of quota and starts empty.
func ExampleShape() {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m := quota.NewMeter(clk, quota.Table{{Limits: quota.Limits{TokensPerMinute: 60000,
		Shape: &quota.Shape{Burst: 10 * time.Second, StartLevel: 0}}}})
	req := quota.AdmitRequest{Model: "amazon.nova-lite-v1:0", Region: "us-east-1", Operation: "converse",
		InputTokens: 1000, MaxTokens: 1000}

	fmt.Println(m.Admit(req).Message) // empty at the start
	clk.Advance(2 * time.Second)      // +1,000 a second
	fmt.Println(m.Admit(req))
	clk.Advance(time.Minute) // full: 10,000, never more
	u := m.Snapshot()[0]
	fmt.Println(*u.TokensAvailable, *u.TokensCapacity, u.Shape.Burst)
	// Output:
	// Too many tokens, please wait before trying again.
	// <nil>
	// 10000 10000 10s
}
