package telemetry

import (
	"strings"
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
			{Target: admission.Target{Model: "m", Region: "us-east-1"}, Limit: 1000, Source: admission.SourceDiscovered},
			{Target: admission.Target{Model: "m", Region: "us-east-1", Tier: "flex"}, Limit: 2000, Source: admission.SourceLearned},
			{Target: admission.Target{Model: "n", Region: "us-east-1"}},
		}
	})
	const want = `# HELP keel_quota_limit_source 1 for where the target's limit comes from: source configured (keel's configuration), discovered (Service Quotas, quotas.discover) or learned (throttles); no series while the limit is unknown.
# TYPE keel_quota_limit_source gauge
keel_quota_limit_source{model="m",region="us-east-1",source="discovered",tier="default"} 1
keel_quota_limit_source{model="m",region="us-east-1",source="learned",tier="flex"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "keel_quota_limit_source"); err != nil {
		t.Error(err)
	}
	n, err := testutil.GatherAndCount(reg, "keel_quota_limit_tokens_per_minute", "keel_quota_queue_depth")
	if err != nil || n != 9 {
		t.Fatalf("gathered %d series, err %v; want 3 limits and 6 queue depths", n, err)
	}
}
