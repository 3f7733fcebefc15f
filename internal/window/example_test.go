package window_test

import (
	"fmt"
	"time"

	"github.com/keel-run/keel/internal/window"
)

// Count events over the last 10 s in slots of 1 s.
func Example() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := window.New[int64](10, time.Second, start)
	r.Add(start, 3)
	r.Add(start.Add(4*time.Second), 2)
	sum, over := r.Recent(start.Add(4500*time.Millisecond), 2*time.Second)
	fmt.Println(sum, over)                          // the newest two slots: 3 s to 4.5 s
	fmt.Println(r.Sum(start.Add(9 * time.Second)))  // both slots still in
	fmt.Println(r.Sum(start.Add(10 * time.Second))) // the first slot has slid out
	// Output:
	// 2 1.5s
	// 5
	// 2
}
