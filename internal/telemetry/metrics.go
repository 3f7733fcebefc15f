// Package telemetry holds keel's Prometheus metrics and structured logs: one
// JSON log line per attempt and per outcome, never credentials, and never
// prompt text. The metric names are listed in the README.
package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keel-run/keel/internal/admission"
)

// Metrics are the engine's Prometheus collectors. Create them with
// NewMetrics; a nil *Metrics records nothing, so callers need no checks.
type Metrics struct {
	Calls            *prometheus.CounterVec
	Attempts         *prometheus.CounterVec
	Retries          *prometheus.CounterVec
	Fallbacks        *prometheus.CounterVec
	BudgetRejections prometheus.Counter
	BreakerState     *prometheus.GaugeVec
	BreakerOpens     *prometheus.CounterVec
	CallDuration     *prometheus.HistogramVec
	AttemptDuration  *prometheus.HistogramVec

	// The quota governor's: waits of the admissions that had to wait, and
	// refusals. Its per-target figures (limit, tokens reserved and settled
	// per minute, queue depth, ...) are read from the governor when the
	// registry is scraped (SetQuotaSource).
	QuotaWait     *prometheus.HistogramVec
	QuotaRefusals *prometheus.CounterVec

	quota *quotaCollector
}

// SetQuotaSource makes the quota gauges read src (the governor's
// Snapshot) at each scrape. Until it is called they report nothing.
func (m *Metrics) SetQuotaSource(src func() []admission.Stats) {
	if m != nil {
		m.quota.src.Store(&src)
	}
}

// latencyBuckets span a fast CountTokens call to a long streamed generation.
var latencyBuckets = []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320}

// waitBuckets span a short wait for the bucket to refill to a batch call
// queued for minutes.
var waitBuckets = []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640}

// NewMetrics creates the collectors and registers them with reg. A nil reg
// registers nothing (the collectors still count, for tests and --json).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_calls_total", Help: "Calls handled by the engine, by operation, model asked for, final outcome code (\"ok\" on success) and category.",
		}, []string{"operation", "model", "outcome", "category"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_attempts_total", Help: "Attempts sent upstream, by target model, region and outcome code (\"ok\" on success).",
		}, []string{"model", "region", "outcome"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_retries_total", Help: "Retries scheduled on the same target, by model, region and retry class of the error that caused them.",
		}, []string{"model", "region", "class"}),
		Fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_fallbacks_total", Help: "Moves from one target of a route to the next, by the target left and the reason.",
		}, []string{"model", "region", "reason"}),
		BudgetRejections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keel_retry_budget_exhausted_total", Help: "Retries or fallbacks not sent because the shared retry budget was spent.",
		}),
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keel_breaker_state", Help: "Circuit breaker state per target: 0 closed, 1 half-open, 2 open.",
		}, []string{"model", "region", "tier"}),
		BreakerOpens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_breaker_opens_total", Help: "Times a target's breaker opened.",
		}, []string{"model", "region", "tier"}),
		CallDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keel_call_duration_seconds", Help: "Whole-call latency including retries, waits and fallbacks, by operation and outcome.",
			Buckets: latencyBuckets,
		}, []string{"operation", "outcome"}),
		AttemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keel_attempt_duration_seconds", Help: "Latency of one upstream attempt to response headers, by target model and region.",
			Buckets: latencyBuckets,
		}, []string{"model", "region"}),
		QuotaWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keel_quota_wait_seconds", Help: "Time attempts that did not fit at once waited in the quota governor's queue before being admitted, by target and priority class.",
			Buckets: waitBuckets,
		}, []string{"model", "region", "class"}),
		QuotaRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_quota_refusals_total", Help: "Attempts the quota governor refused, by target and reason (would-exceed-deadline, too-large, overloaded).",
		}, []string{"model", "region", "reason"}),
		quota: newQuotaCollector(),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Calls, m.Attempts, m.Retries, m.Fallbacks, m.BudgetRejections,
			m.BreakerState, m.BreakerOpens, m.CallDuration, m.AttemptDuration, m.QuotaWait, m.QuotaRefusals, m.quota} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
