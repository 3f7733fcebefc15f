package telemetry

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keel-run/keel/internal/admission"
)

// TestQuotaGaugesPerTier: two tiers of one model and region are two
// targets, and their series do not collide.
func TestQuotaGaugesPerTier(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.SetQuotaSource(func() []admission.Stats {
		return []admission.Stats{
			{Target: admission.Target{Model: "m", Region: "us-east-1"}, Limit: 1000},
			{Target: admission.Target{Model: "m", Region: "us-east-1", Tier: "flex"}, Limit: 2000},
		}
	})
	n, err := testutil.GatherAndCount(reg, "keel_quota_limit_tokens_per_minute", "keel_quota_queue_depth")
	if err != nil || n != 6 {
		t.Fatalf("gathered %d series, err %v; want 2 limits and 4 queue depths", n, err)
	}
}
