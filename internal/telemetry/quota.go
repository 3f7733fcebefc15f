package telemetry

import (
	"cmp"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/bedrock"
)

// quotaCollector reports the quota governor's per-target figures, read from
// the governor at each scrape so that the engine's path pays nothing for
// them.
type quotaCollector struct {
	src atomic.Pointer[func() []admission.Stats]

	limit, available, inFlight, reserved, settled, offered, queue, ratio, paused *prometheus.Desc
	throttles, decreases, source                                                 *prometheus.Desc
}

func newQuotaCollector() *quotaCollector {
	// A target is a model in a region on a service tier: each tier has a
	// limiter of its own, and two series must not share their labels.
	target := []string{"model", "region", "tier"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &quotaCollector{
		limit:     d("keel_quota_limit_tokens_per_minute", "The quota governor's tokens-per-minute limit per target: the configured quota, or what it learned from throttles; 0 while unknown (not limited).", target),
		available: d("keel_quota_available_tokens", "Tokens in the target's bucket now (negative while a call that used more than it held is paid back); 0 while the limit is unknown.", target),
		inFlight:  d("keel_quota_in_flight_tokens", "Tokens held by the target's admitted attempts that have not ended.", target),
		reserved:  d("keel_quota_reserved_tokens_per_minute", "Tokens the governor granted the target's attempts over the last minute (input estimate + max tokens each).", target),
		settled:   d("keel_quota_settled_tokens_per_minute", "Tokens the target's attempts that ended over the last minute really used, as Bedrock counts them (input + cache writes + output × burndown).", target),
		offered:   d("keel_quota_offered_tokens_per_minute", "What the calls that asked the target for admission over the last minute would settle (their holds × the tokens settled per token held by the last minute's calls), per minute; above the limit, the target is overloaded and interactive calls are not queued past quotas.queue_target.", target),
		queue:     d("keel_quota_queue_depth", "Calls waiting in the target's quota queue, by priority class.", []string{"model", "region", "tier", "class"}),
		ratio:     d("keel_quota_input_ratio", "The learned ratio of the input tokens Bedrock reports to keel's estimate from the body, per target.", target),
		paused:    d("keel_quota_paused_seconds", "What is left of the target's pause after a throttle.", target),
		throttles: d("keel_quota_throttles_total", "Attempts Bedrock throttled, as the governor was told, per target.", target),
		decreases: d("keel_quota_limit_decreases_total", "Throttles that shrank the target's limit (the first of each burst).", target),
		source:    d("keel_quota_limit_source", "1 for where the target's limit comes from: source configured (keel's configuration), discovered (Service Quotas, quotas.discover) or learned (throttles); no series while the limit is unknown.", append(target[:3:3], "source")),
	}
}

func (c *quotaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.limit, c.available, c.inFlight, c.reserved, c.settled, c.offered, c.queue, c.ratio, c.paused, c.throttles, c.decreases, c.source} {
		ch <- d
	}
}

func (c *quotaCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.src.Load()
	if src == nil {
		return
	}
	for _, s := range (*src)() {
		m, r, t := s.Target.Model, s.Target.Region, cmp.Or(s.Target.Tier, bedrock.TierDefault)
		g := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{m, r, t}, labels...)...)
		}
		g(c.limit, float64(s.Limit))
		g(c.available, float64(s.Available))
		g(c.inFlight, float64(s.InFlightTokens))
		g(c.reserved, float64(s.ReservedPerMinute))
		g(c.settled, float64(s.SettledPerMinute))
		g(c.offered, float64(s.OfferedPerMinute))
		g(c.ratio, s.InputRatio)
		g(c.paused, s.PausedFor.Seconds())
		if s.Source != "" {
			g(c.source, 1, s.Source)
		}
		for cl := admission.Interactive; cl <= admission.Batch; cl++ {
			g(c.queue, float64(s.Classes[cl].Queued), cl.String())
		}
		ch <- prometheus.MustNewConstMetric(c.throttles, prometheus.CounterValue, float64(s.Throttles), m, r, t)
		ch <- prometheus.MustNewConstMetric(c.decreases, prometheus.CounterValue, float64(s.Decreases), m, r, t)
	}
}
