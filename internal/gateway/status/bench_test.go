package status

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkObserve measures the per-request cost the gateway pays: a
// success, and one failure in ten (which also keeps the failure).
func BenchmarkObserve(b *testing.B) {
	r, err := NewRecorder(Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	success, failure := ok("team-a", 120, 30), throttled("team-a")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if i%10 == 9 {
				r.Observe(failure)
			} else {
				r.Observe(success)
			}
			i++
		}
	})
}
