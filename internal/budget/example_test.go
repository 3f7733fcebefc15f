package budget_test

import (
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/clock"
)

func Example() {
	clk := clock.NewFake(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	b, err := budget.New(budget.Options{Ratio: 0.1, MinPerSecond: 0.2, Window: 10 * time.Second, Clock: clk})
	if err != nil {
		log.Fatal(err)
	}
	// 100 calls earn 10 retries, and the minimum rate adds 0.2/s × 10 s = 2.
	for range 100 {
		b.Request()
	}
	granted := 0
	for b.TryAcquire() {
		granted++
	}
	fmt.Println("granted:", granted)

	err = b.Acquire()
	fmt.Println(errors.Is(err, budget.ErrExhausted))
	fmt.Println(err)
	// Output:
	// granted: 12
	// true
	// budget: retry budget exhausted: 12 retries already sent for 100 first attempts in the last 10s (ratio 0.1, minimum 0.2/s)
}
