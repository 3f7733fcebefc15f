package breaker_test

import (
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/clock"
)

func Example() {
	clk := clock.NewFake(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	reg, err := breaker.NewRegistry(breaker.Options{
		MinCalls: 4, Cooldown: 30 * time.Second, Probes: 1, Successes: 1,
		OnStateChange: func(model, region, tier string, from, to breaker.State) {
			fmt.Printf("%s@%s: %v -> %v\n", model, region, from, to)
		},
	}, clk)
	if err != nil {
		log.Fatal(err)
	}
	br := reg.Get("anthropic.claude-sonnet-4", "us-east-1")

	// Four 503s in a row: the breaker opens.
	for range 4 {
		p, _ := br.Allow()
		p.Done(breaker.Failure)
	}
	_, err = br.Allow()
	var oe *breaker.OpenError
	fmt.Println(errors.Is(err, breaker.ErrOpen), errors.As(err, &oe), oe.ProbeAt.Format(time.TimeOnly))

	// After the cool-down one probe goes through; its success closes the breaker.
	clk.Advance(30 * time.Second)
	p, err := br.Allow()
	fmt.Println(err, p.Probe())
	p.Done(breaker.Success)
	// Output:
	// anthropic.claude-sonnet-4@us-east-1: closed -> open
	// true true 12:00:30
	// anthropic.claude-sonnet-4@us-east-1: open -> half-open
	// <nil> true
	// anthropic.claude-sonnet-4@us-east-1: half-open -> closed
}
