package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// The goals of issue 16 the learn bench measures.
const (
	goalRatioBand      = 0.2 // the learned limit within ±20 % of the quota after a minute
	goalRatioFloor     = 0.5 // and never below half of it
	goalThrottlesPer   = 3   // quota throttles (beyond the injected) per 100 attempts, at most
	goalResumeRatio    = 1.5 // a resumed run's time ÷ the unbroken run's tail, at most
	goalShapeWallRatio = 1.2 // wall time ÷ what the settled tokens need at the quota, at most
	// goalIdleSeconds is the longest the tight case may leave Bedrock's
	// bucket holding room for any of its calls while sending none: a
	// learning target with nothing in flight probes every 5 s.
	goalIdleSeconds = 5
)

// NoiseResult is what the noise case measured.
type NoiseResult struct {
	Quota           int64   `json:"quotaTokensPerMinute"`
	DurationSeconds float64 `json:"durationSeconds"`
	// TrafficSeconds is how long records were sent: DurationSeconds, or
	// less when every record was done (or failed for good) before.
	TrafficSeconds float64 `json:"trafficSeconds"`
	// At is the learned limit ÷ Quota 30 s, 1 min and 2 min in, and at
	// the end of the traffic (those the traffic reaches).
	At []RatioAt `json:"at"`
	// MinAfterMinute and MaxAfterMinute bound the ratio sampled after the
	// first minute; nil when no limit was sampled then.
	MinAfterMinute *float64 `json:"minAfterMinute"`
	MaxAfterMinute *float64 `json:"maxAfterMinute"`
	// BelowHalf reports that a sampled limit was ever below half the quota.
	BelowHalf bool `json:"belowHalf"`
	// Attempts are the requests the emulator answered; InjectedThrottles
	// the ThrottlingExceptions the scenario's rules injected, and
	// QuotaThrottles those of the quota meter; each also per 100 attempts.
	Attempts          int64   `json:"attempts"`
	InjectedThrottles int64   `json:"injectedThrottles"`
	QuotaThrottles    int64   `json:"quotaThrottles"`
	InjectedPer100    float64 `json:"injectedThrottlesPer100"`
	QuotaPer100       float64 `json:"quotaThrottlesPer100"`
	// Succeeded and Failed count the records that finished well and those
	// that failed for good (requeues used up, or an error not retried).
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	// FailedBy counts the failed records by the code they failed with.
	FailedBy   map[string]int `json:"failedBy"`
	FinalLimit int64          `json:"finalLimitTokensPerMinute"`
	// Stalled reports that the records in flight at the end did not finish
	// within the drain time and were abandoned.
	Stalled bool `json:"stalled"`
	// Series is the ratio every 10 s.
	Series []RatioAt `json:"series"`
	// ThrottleSeries counts the quota throttles of each 10 s of Series.
	ThrottleSeries []int64 `json:"quotaThrottlesSeries"`
}

// RatioAt is the learned limit ÷ the true quota at a moment of a run.
type RatioAt struct {
	Seconds float64 `json:"seconds"`
	// Ratio is nil while the governor had no limit (no throttle yet).
	Ratio *float64 `json:"ratio"`
}

// ResumeResult is what the resume case measured.
type ResumeResult struct {
	Quota   int64 `json:"quotaTokensPerMinute"`
	Records int   `json:"records"`
	// AllSeconds is the unbroken run's wall time.
	AllSeconds      float64 `json:"unbrokenSeconds"`
	UnbrokenStalled bool    `json:"unbrokenStalled"`
	// Kills are the runs killed and resumed, one per kill point.
	Kills []ResumeKill `json:"kills"`
}

// ResumeKill is one run killed and resumed.
type ResumeKill struct {
	// Kill says when the run was abandoned ("at 2s", "after 50 records");
	// KillSeconds is how long it had run.
	Kill        string  `json:"kill"`
	KillSeconds float64 `json:"killedAtSeconds"`
	// TailSeconds is what the unbroken run took after the same point (0:
	// it never reached it).
	TailSeconds float64 `json:"unbrokenTailSeconds"`
	// BucketAtResume is what the emulator's token bucket held when the
	// resumed run started (the killed run's calls spent the rest).
	BucketAtResume int64 `json:"bucketAtResume"`
	// Attempts and QuotaThrottles are the resumed run's requests and the
	// quota meter's throttles of them.
	Attempts       int64 `json:"attempts"`
	QuotaThrottles int64 `json:"quotaThrottles"`
	// Remaining is the records the resumed run had left; ResumedSeconds
	// how long it took; Ratio that ÷ TailSeconds (0: no tail to divide by).
	Remaining      int     `json:"remaining"`
	ResumedSeconds float64 `json:"resumedSeconds"`
	Ratio          float64 `json:"ratio"`
	// BoundSeconds is the least time the quota allowed the resumed run:
	// what the emulator settled while it ran, less what the bucket held at
	// its start (the killed run's calls had ended), at the quota's rate
	// (0: the bucket held it all).
	// BoundRatio is ResumedSeconds ÷ BoundSeconds (0: no bound).
	BoundSeconds float64 `json:"quotaBoundSeconds"`
	BoundRatio   float64 `json:"boundRatio"`
	// HintedLimit is the limit the killed run had learned, which the
	// resumed run started from (0: none learned).
	HintedLimit int64 `json:"hintedLimitTokensPerMinute"`
	Stalled     bool  `json:"stalled"`
	FinalLimit  int64 `json:"finalLimitTokensPerMinute"`
}

// TightResult is what the tight case measured.
type TightResult struct {
	Quota         int64   `json:"quotaTokensPerMinute"`
	Records       int     `json:"records"`
	Succeeded     int     `json:"succeeded"`
	Failed        int     `json:"failed"`
	SettledTokens int64   `json:"settledTokens"`
	WallSeconds   float64 `json:"wallSeconds"`
	// IdealSeconds is what the settled tokens need at the quota, less the
	// minute of quota the bucket starts with; Ratio is WallSeconds ÷ it.
	IdealSeconds float64 `json:"idealSeconds"`
	Ratio        float64 `json:"ratio"`
	// LongestGapSeconds is the longest time in which no record finished
	// well (from the start, between two, or from the last to the end).
	LongestGapSeconds float64 `json:"longestGapSeconds"`
	// IdleWithRoomSeconds is the longest time keel sent nothing while
	// the emulator's bucket held room for the largest call of the run
	// (see idleWithRoom): a stall. A gap with no record finishing while
	// the bucket repays a debt is not one.
	IdleWithRoomSeconds float64 `json:"idleWithRoomSeconds"`
	FinalLimit          int64   `json:"finalLimitTokensPerMinute"`
	Stalled             bool    `json:"stalled"`
}

// ShapesResult is what the shapes case measured.
type ShapesResult struct {
	Quota   int64      `json:"quotaTokensPerMinute"`
	Records int        `json:"records"`
	Rows    []ShapeRow `json:"rows"`
}

// ShapeRow is one batch against one bucket shape.
type ShapeRow struct {
	Shape string `json:"shape"`
	// Keel is "told" (the quota in its quotas:) or "learning".
	Keel            string  `json:"keel"`
	Succeeded       int     `json:"succeeded"`
	Failed          int     `json:"failed"`
	Attempts        int64   `json:"attempts"`
	Throttles       int64   `json:"throttles"`
	ThrottlesPer100 float64 `json:"throttlesPer100"`
	WallSeconds     float64 `json:"wallSeconds"`
	// NeedSeconds is what the settled tokens need at the quota; Ratio is
	// WallSeconds ÷ it.
	NeedSeconds float64 `json:"needSeconds"`
	Ratio       float64 `json:"ratio"`
	FinalLimit  int64   `json:"finalLimitTokensPerMinute"`
	Stalled     bool    `json:"stalled"`
}

// limitSample is the governor's limit at a moment of a run, and the quota
// meter's throttles since the case's emulator started.
type limitSample struct {
	at        time.Duration
	limit     int64
	throttled int64
}

// noiseResult sums a noise run.
func noiseResult(quota int64, d time.Duration, samples []limitSample, attempts, injected, throttled int64, o batchOutcome) *NoiseResult {
	r := &NoiseResult{Quota: quota, DurationSeconds: d.Seconds(), Attempts: attempts, InjectedThrottles: injected,
		QuotaThrottles: throttled, InjectedPer100: per100(injected, attempts), QuotaPer100: per100(throttled, attempts),
		Stalled: o.stalled}
	if o.sum != nil {
		r.Succeeded, r.Failed, r.FailedBy = o.sum.Succeeded, o.sum.Failed, o.sum.FailedByCode
	}
	traffic := d
	if n := len(samples); n > 0 && samples[n-1].at < d {
		traffic = samples[n-1].at // the records ran out first
	}
	r.TrafficSeconds = traffic.Seconds()
	for _, t := range noiseMarks {
		if ra, ok := ratioAt(samples, t, quota); ok && t < traffic { // a mark at the end is the end's
			r.At = append(r.At, ra)
		}
	}
	if n := len(samples); n > 0 {
		r.At = append(r.At, RatioAt{Seconds: traffic.Seconds(), Ratio: limitRatio(samples[n-1].limit, quota)})
	}
	var before int64
	for t := noiseSeriesEvery; t <= d; t += noiseSeriesEvery {
		if i := sampleAt(samples, t); i >= 0 {
			r.Series = append(r.Series, RatioAt{Seconds: t.Seconds(), Ratio: limitRatio(samples[i].limit, quota)})
			r.ThrottleSeries = append(r.ThrottleSeries, samples[i].throttled-before)
			before = samples[i].throttled
		}
	}
	r.MinAfterMinute, r.MaxAfterMinute = ratioRange(samples, time.Minute, quota)
	r.BelowHalf = belowHalf(samples, quota)
	if n := len(samples); n > 0 {
		r.FinalLimit = samples[n-1].limit
	}
	return r
}

// ratioAt is the ratio of the first sample at or after t; false when none
// was taken then (the run ended first).
func ratioAt(samples []limitSample, t time.Duration, quota int64) (RatioAt, bool) {
	if i := sampleAt(samples, t); i >= 0 {
		return RatioAt{Seconds: t.Seconds(), Ratio: limitRatio(samples[i].limit, quota)}, true
	}
	return RatioAt{}, false
}

// sampleAt is the index of the first sample at or after t; -1 when none
// was taken then.
func sampleAt(samples []limitSample, t time.Duration) int {
	for i, s := range samples {
		if s.at >= t {
			return i
		}
	}
	return -1
}

// limitRatio is limit ÷ quota, nil when there is no limit.
func limitRatio(limit, quota int64) *float64 {
	if limit <= 0 || quota <= 0 {
		return nil
	}
	v := float64(limit) / float64(quota)
	return &v
}

// ratioRange is the least and the greatest ratio of the samples at or
// after from that have a limit; nil when none has.
func ratioRange(samples []limitSample, from time.Duration, quota int64) (lo, hi *float64) {
	for _, s := range samples {
		r := limitRatio(s.limit, quota)
		if s.at < from || r == nil {
			continue
		}
		if lo == nil || *r < *lo {
			lo = r
		}
		if hi == nil || *r > *hi {
			hi = r
		}
	}
	return lo, hi
}

// belowHalf reports whether any sample's limit was below half the quota.
func belowHalf(samples []limitSample, quota int64) bool {
	for _, s := range samples {
		if r := limitRatio(s.limit, quota); r != nil && *r < goalRatioFloor {
			return true
		}
	}
	return false
}

// per100 is n per 100 attempts; 0 without attempts.
func per100(n, attempts int64) float64 {
	if attempts <= 0 {
		return 0
	}
	return 100 * float64(n) / float64(attempts)
}

// ratio is a ÷ b, or 0 (undefined) when b is not above zero: a result
// holds no infinities, which JSON cannot carry.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// idealTime is how long settled tokens take at quota tokens a minute when
// a bucket holding initial tokens gives those at once.
func idealTime(settled, quota, initial int64) time.Duration {
	if quota <= 0 || settled <= initial {
		return 0
	}
	return time.Duration(float64(settled-initial) / float64(quota) * float64(time.Minute))
}

// longestGap is the longest stretch of [start, end] without one of ends
// (which need not be sorted; those outside the span are ignored).
func longestGap(start time.Time, ends []time.Time, end time.Time) time.Duration {
	var gap time.Duration
	last := start
	ends = slices.Clone(ends)
	slices.SortFunc(ends, time.Time.Compare)
	for _, t := range ends {
		if t.Before(start) || t.After(end) {
			continue
		}
		gap = max(gap, t.Sub(last))
		last = t
	}
	return max(gap, end.Sub(last))
}

// nthEnd is how long after start the n-th of ends (n from 1) came; false
// when there are fewer than n.
func nthEnd(start time.Time, ends []time.Time, n int) (time.Duration, bool) {
	if n < 1 || n > len(ends) {
		return 0, false
	}
	ends = slices.Clone(ends)
	slices.SortFunc(ends, time.Time.Compare)
	return ends[n-1].Sub(start), true
}

// WriteTable writes the cases that ran, each as a few lines, with issue
// 16's goal beside each measure.
func (r *LearnResult) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "keel bench learn, seed %d\n", r.Seed)
	if n := r.Noise; n != nil {
		fmt.Fprintf(&b, "\nnoise: the quick start's scenario (%s tokens/min; 3 %% injected throttles, 2 %% 503, 1 %% ModelNotReady), learning keel, %s of batch traffic\n",
			thousands(n.Quota), time.Duration(n.DurationSeconds*float64(time.Second)))
		b.WriteString("  learned limit ÷ quota:")
		for _, a := range n.At {
			fmt.Fprintf(&b, "  %s %s", atName(a, n.TrafficSeconds), ratioText(a.Ratio))
		}
		b.WriteString("\n")
		if n.TrafficSeconds < n.DurationSeconds {
			fmt.Fprintf(&b, "  the records ran out after %s (every one done, or failed for good)\n", secs(n.TrafficSeconds))
		}
		fmt.Fprintf(&b, "  after the first minute: min %s, max %s (goal: within %.1f-%.1f); ever below %.1f: %s (goal: no)\n",
			ratioText(n.MinAfterMinute), ratioText(n.MaxAfterMinute), 1-goalRatioBand, 1+goalRatioBand, goalRatioFloor, yesNo(n.BelowHalf))
		fmt.Fprintf(&b, "  attempts %s; throttles per 100 attempts: injected %.1f, quota %.1f (goal: quota ≤ %d)\n",
			thousands(n.Attempts), n.InjectedPer100, n.QuotaPer100, goalThrottlesPer)
		fmt.Fprintf(&b, "  records succeeded %s, failed %s%s; limit at the end %s%s\n", thousands(int64(n.Succeeded)), thousands(int64(n.Failed)),
			failedBy(n.FailedBy), limitText(n.FinalLimit), stalledText(n.Stalled))
		b.WriteString("  every 10s:")
		for _, a := range n.Series {
			fmt.Fprintf(&b, " %s", ratioText(a.Ratio))
		}
		b.WriteString("\n  quota throttles in each 10s:")
		for _, c := range n.ThrottleSeries {
			fmt.Fprintf(&b, " %d", c)
		}
		b.WriteString("\n")
	}
	if x := r.Resume; x != nil {
		fmt.Fprintf(&b, "\nresume: the quick start (%d records), killed and resumed by a new keel on the same emulator; unbroken run %s%s\n",
			x.Records, secs(x.AllSeconds), stalledText(x.UnbrokenStalled))
		for _, r := range x.Kills {
			fmt.Fprintf(&b, "  killed %s (%s in): %d records left, the bucket holding %s tokens; resumed in %s%s; the unbroken run after that point %s; ratio %.2f (goal ≤ %.1f)\n",
				r.Kill, secs(r.KillSeconds), r.Remaining, thousands(r.BucketAtResume), secs(r.ResumedSeconds), stalledText(r.Stalled), secs(r.TailSeconds), r.Ratio, goalResumeRatio)
			fmt.Fprintf(&b, "    resumed run: %s attempts, %.1f quota throttles per 100; started from %s, limit at the end %s\n",
				thousands(r.Attempts), per100(r.QuotaThrottles, r.Attempts), limitText(r.HintedLimit), limitText(r.FinalLimit))
			fmt.Fprintf(&b, "    the least time the quota allowed it (tokens settled while it ran, less the bucket at its start) %s; ratio %.2f\n",
				secs(r.BoundSeconds), r.BoundRatio)
		}
	}
	if t := r.Tight; t != nil {
		fmt.Fprintf(&b, "\ntight: %s tokens/min, 100-300 ms latency, no faults, learning keel, %d records\n", thousands(t.Quota), t.Records)
		fmt.Fprintf(&b, "  succeeded %d, failed %d; wall %s, ideal %s (%s tokens settled), ratio %.2f%s\n",
			t.Succeeded, t.Failed, secs(t.WallSeconds), secs(t.IdealSeconds), thousands(t.SettledTokens), t.Ratio, stalledText(t.Stalled))
		fmt.Fprintf(&b, "  longest time sending nothing while the bucket held room for any call %s (goal: no stall, ≤ %ds); longest gap with no record finishing %s\n",
			secs(t.IdleWithRoomSeconds), goalIdleSeconds, secs(t.LongestGapSeconds))
		fmt.Fprintf(&b, "  limit at the end %s\n", limitText(t.FinalLimit))
	}
	if s := r.Shapes; s != nil {
		fmt.Fprintf(&b, "\nshapes: %s tokens/min, %d records (50-2,000 words, max tokens 1024) per run (goals: throttles ≤ %d per 100, wall ÷ need ≤ %.1f)\n",
			thousands(s.Quota), s.Records, goalThrottlesPer, goalShapeWallRatio)
		fmt.Fprintf(&b, "  %-20s %-9s %9s %8s %9s %8s %8s %7s %s\n", "shape", "keel", "succeeded", "attempts", "thr/100", "wall", "need", "ratio", "limit at end")
		for _, x := range s.Rows {
			fmt.Fprintf(&b, "  %-20s %-9s %9d %8d %9.1f %8s %8s %7.2f %s%s\n", x.Shape, x.Keel, x.Succeeded, x.Attempts, x.ThrottlesPer100,
				secs(x.WallSeconds), secs(x.NeedSeconds), x.Ratio, limitText(x.FinalLimit), stalledText(x.Stalled))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// atName names a moment of the noise case: "30s", "1m", "end".
func atName(a RatioAt, duration float64) string {
	if a.Seconds == duration {
		return "end"
	}
	s := time.Duration(a.Seconds * float64(time.Second)).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return s
}

// failedBy writes failures by code, most first, as " (ThrottlingException
// 12, ...)"; "" when there are none.
func failedBy(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	return " (" + failures(m) + ")"
}

func ratioText(r *float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *r)
}

func limitText(limit int64) string {
	if limit <= 0 {
		return "none"
	}
	return thousands(limit) + " tokens/min"
}

func stalledText(stalled bool) string {
	if stalled {
		return " (STALLED: abandoned at the cap)"
	}
	return ""
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// secs writes a time in seconds as a duration rounded to 0.1 s.
func secs(s float64) string {
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return "-"
	}
	return time.Duration(s * float64(time.Second)).Round(100 * time.Millisecond).String()
}
