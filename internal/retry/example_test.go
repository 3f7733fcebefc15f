package retry_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/retry"
)

func ExamplePolicy_Decide() {
	throttled := &catalog.Entry{Code: "ThrottlingException", Status: 429, Retry: catalog.Throttled}
	validation := &catalog.Entry{Code: "ValidationException", Status: 400, Retry: catalog.Never}

	var p retry.Policy                 // zero value: all defaults
	rnd := rand.New(rand.NewPCG(1, 2)) // seeded for a reproducible example; pass nil in production

	d := p.Decide(1, throttled, 0, rnd)
	fmt.Println(d.Retry, d.Delay <= retry.DefaultThrottleBase, d.Reason)

	// The service asked for 3 s: that is the floor.
	d = p.Decide(1, throttled, 3*time.Second, rnd)
	fmt.Println(d.Retry, d.Delay, d.Reason)

	d = p.Decide(1, validation, 0, rnd)
	fmt.Println(d.Retry, d.Reason)

	d = p.Decide(3, throttled, 0, rnd)
	fmt.Println(d.Retry, d.Reason)
	// Output:
	// true true throttled: back off longer and retry
	// true 3s retry after the service's Retry-After hint
	// false not retryable: the same request cannot succeed
	// false attempts on this target used up
}

func ExampleWait() {
	last := errors.New("ServiceUnavailableException: try again")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()

	// Two seconds of backoff cannot fit in a one-second deadline: Wait fails
	// at once, and the error still carries the upstream failure.
	err := retry.Wait(ctx, clock.Real{}, 2*time.Second, last)
	fmt.Println(errors.Is(err, retry.ErrDeadline), errors.Is(err, last))
	// Output:
	// true true
}
