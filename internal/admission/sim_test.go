package admission

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-run/keel/internal/emulator/quota"
)

// The simulation runs a workload through a Governor against the emulator's
// model of Bedrock's quota (internal/emulator/quota: reserve input + max
// tokens when a request starts, reject it with a throttle if that does not
// fit, settle input + output × burndown when it ends).
//
// It runs in a synctest bubble rather than on a clock.Fake: hundreds of
// goroutines wait in Admit, in "generation" and in the arrival process at
// once, and the bubble's clock moves exactly when every one of them is
// blocked, which a Fake driven from outside cannot know. clock.Real inside
// the bubble reads the bubble's clock, so the Governor and the meter run on
// simulated time; nothing sleeps for real.

type simConfig struct {
	quota    int     // the upstream's true tokens per minute
	offered  float64 // offered load, as a multiple of the quota (in settled tokens)
	gov      Options
	duration time.Duration
	warmup   time.Duration // excluded from the utilisation figure
	seed     uint64
	noise    float64      // share of attempts throttled whatever the quota holds
	small    bool         // small calls (see workload)
	shape    *quota.Shape // the upstream bucket's shape; nil: a full minute, starting full
	// replicas is how many Governors share one MemStore, calls dealt to
	// them in turn, as replicas sharing a Redis are; 0: one.
	replicas int
}

type simResult struct {
	offered            float64         // settled tokens offered per minute / quota
	utilisation        float64         // quota used upstream (settled + reserved) per minute / quota, after the warm-up
	settledShare       float64         // tokens settled upstream per minute / quota, after the warm-up
	lastUtilisation    float64         // the same over the last third of the run
	sent, throttled    int             // upstream attempts and throttles
	noise              int             // throttles drawn as noise
	lastSent, lastThr  int             // the same over the last third
	firstThr           []time.Duration // when the throttled attempts were sent, after the start
	calls, done        int
	expired, tooLarge  [numClasses]int
	shed               [numClasses]int             // refused as overloaded (Options.QueueTarget)
	expiredAtOnce      [numClasses]int             // refused before waiting
	expiredWaited      [numClasses][]time.Duration // how long the others waited
	waits              [numClasses][]time.Duration
	finalLimit         int64
	finalStats         Stats
	requests           int
	admittedPerMinute  float64
	holdsInFlightAtEnd int64
	perMinute          []minute
}

// minute is one simulated minute's figures.
type minute struct {
	util      float64 // used upstream / quota
	sent, thr int
	limit     int64
}

const simModel = "us.anthropic.claude-sonnet-4-20250514-v1:0" // burndown 5, 64,000 max output

type simRequest struct {
	at        time.Duration
	bodyBytes int // text in the body
	actualIn  int // what the upstream counts
	maxTokens int // 0: unset
	out       int
	class     Class
}

func (r simRequest) cost() float64 { return float64(r.actualIn + 5*r.out) }

// workload draws a Poisson stream of mixed requests offering offered × quota
// settled tokens a minute.
func workload(rng *rand.Rand, quotaTPM int, offered float64, d time.Duration, small bool) []simRequest {
	draw := func() simRequest {
		if small {
			// A batch's calls: 50–2,000 words of prompt, max tokens 1024.
			r := simRequest{bodyBytes: 250 + rng.IntN(9750), maxTokens: 1024}
			r.actualIn = int(float64(r.bodyBytes) / 4 * 1.3 * (0.9 + 0.2*rng.Float64()))
			r.out = 50 + rng.IntN(975)
			r.class = Batch
			return r
		}
		r := simRequest{bodyBytes: 2000 + rng.IntN(30000)}
		// The real tokenizer counts 1.3 tokens per 4 bytes, ±10%.
		r.actualIn = int(float64(r.bodyBytes) / 4 * 1.3 * (0.9 + 0.2*rng.Float64()))
		switch p := rng.Float64(); {
		case p < 0.4:
			r.maxTokens = 1024
		case p < 0.7:
			r.maxTokens = 4096
		case p < 0.9:
			r.maxTokens = 8192
		}
		limit := r.maxTokens
		if limit == 0 || limit > 2000 {
			limit = 2000
		}
		r.out = 50 + rng.IntN(limit-49)
		if rng.Float64() < 0.3 {
			r.class = Batch
		}
		return r
	}
	// The mean cost, to set the arrival rate.
	var sum float64
	for range 20000 {
		sum += draw().cost()
	}
	mean := sum / 20000
	rate := offered * float64(quotaTPM) / mean / 60 // requests per second
	var out []simRequest
	for t := time.Duration(0); ; {
		t += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
		if t >= d {
			return out
		}
		r := draw()
		r.at = t
		out = append(out, r)
	}
}

func simulate(t *testing.T, cfg simConfig) simResult {
	var res simResult
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(cfg.seed, 1))
		reqs := workload(rng, cfg.quota, cfg.offered, cfg.duration, cfg.small)
		var offered float64
		for _, r := range reqs {
			offered += r.cost()
		}
		res.offered = offered / cfg.duration.Minutes() / float64(cfg.quota)
		res.requests = len(reqs)

		meter := quota.NewMeter(nil, quota.Table{{Model: "*", Region: "*", Limits: quota.Limits{TokensPerMinute: int64(cfg.quota), Shape: cfg.shape}}})
		noise := rand.New(rand.NewPCG(cfg.seed, 3))
		o := cfg.gov
		var rmu sync.Mutex
		jitter := rand.New(rand.NewPCG(cfg.seed, 2))
		o.Rand = func() float64 { rmu.Lock(); defer rmu.Unlock(); return jitter.Float64() }
		if cfg.replicas > 1 {
			o.Store = &MemStore{}
		}
		gs := make([]*Governor, max(cfg.replicas, 1))
		for i := range gs {
			var err error
			if gs[i], err = New(o); err != nil {
				t.Fatal(err)
			}
		}
		g := gs[0]
		tg := Target{Model: simModel, Region: "us-east-1"}
		var mu sync.Mutex
		start := time.Now()
		lastThird := start.Add(cfg.duration * 2 / 3)

		// The quota used upstream by a time: the tokens settled by then plus
		// the reservations of the requests running then. Between two times
		// it grows by what the quota gave (refill) minus what went unused.
		var reserved int64
		usedAt := func(at time.Time) int64 {
			time.Sleep(time.Until(at))
			mu.Lock()
			defer mu.Unlock()
			for _, u := range meter.Snapshot() {
				return u.TokensSettled + reserved
			}
			return 0
		}
		var s0, s1, s2, settled0, settled2 int64
		settledNow := func() int64 {
			mu.Lock()
			defer mu.Unlock()
			return meter.Snapshot()[0].TokensSettled
		}
		var sg sync.WaitGroup
		sg.Add(2)
		go func() {
			defer sg.Done()
			s0 = usedAt(start.Add(cfg.warmup))
			settled0 = settledNow()
			s1 = usedAt(lastThird)
			s2 = usedAt(start.Add(cfg.duration))
			settled2 = settledNow()
			st, _ := g.Stats(tg)
			res.finalLimit = st.Limit
			res.finalStats = st
			res.holdsInFlightAtEnd = st.InFlightTokens
		}()
		res.perMinute = make([]minute, int(cfg.duration/time.Minute))
		go func() {
			defer sg.Done()
			var prev int64
			for i := range res.perMinute {
				s := usedAt(start.Add(time.Duration(i+1) * time.Minute))
				st, _ := g.Stats(tg)
				mu.Lock()
				res.perMinute[i].util = float64(s-prev) / float64(cfg.quota)
				res.perMinute[i].limit = st.Limit
				mu.Unlock()
				prev = s
			}
		}()
		var wg sync.WaitGroup
		for i, r := range reqs {
			time.Sleep(time.Until(start.Add(r.at)))
			wg.Add(1)
			g := gs[i%len(gs)]
			go func() {
				defer wg.Done()
				deadline := 30 * time.Second
				if r.class == Batch {
					deadline = 120 * time.Second
				}
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				defer cancel()
				body := converseBody(r.bodyBytes, r.maxTokens)
				est, err := EstimateBody(body)
				if err != nil {
					t.Error(err)
					return
				}
				for {
					tk, err := g.Admit(ctx, tg, est, r.class)
					if err != nil {
						mu.Lock()
						switch {
						case errors.Is(err, ErrTooLarge):
							res.tooLarge[r.class]++
						case errors.Is(err, ErrOverloaded):
							res.shed[r.class]++
						case errors.Is(err, ErrWouldExceedDeadline):
							res.expired[r.class]++
							var e *Error
							if errors.As(err, &e) && e.Waited == 0 {
								res.expiredAtOnce[r.class]++
							} else if e != nil {
								res.expiredWaited[r.class] = append(res.expiredWaited[r.class], e.Waited)
							}
						default:
							t.Errorf("Admit: %v", err)
						}
						mu.Unlock()
						return
					}
					time.Sleep(20 * time.Millisecond) // to Bedrock
					maxTok := r.maxTokens
					if maxTok == 0 {
						maxTok = 64000
					}
					sentAt := time.Now()
					mu.Lock()
					var rej *quota.Rejection
					if cfg.noise > 0 && noise.Float64() < cfg.noise {
						rej = &quota.Rejection{}
						res.noise++
					} else {
						rej = meter.Admit(quota.AdmitRequest{Model: tg.Model, Region: tg.Region, Operation: "converse",
							InputTokens: r.actualIn, MaxTokens: maxTok})
					}
					if rej == nil {
						reserved += int64(r.actualIn + maxTok)
					}
					res.sent++
					m := &res.perMinute[min(int(sentAt.Sub(start)/time.Minute), len(res.perMinute)-1)]
					m.sent++
					if rej != nil {
						m.thr++
					}
					if !sentAt.Before(lastThird) {
						res.lastSent++
					}
					if rej != nil {
						res.throttled++
						res.firstThr = append(res.firstThr, sentAt.Sub(start))
						if !sentAt.Before(lastThird) {
							res.lastThr++
						}
					}
					mu.Unlock()
					if rej != nil {
						time.Sleep(20 * time.Millisecond) // the throttle comes back
						tk.Throttled()
						continue // the engine would try again; the Governor paces it
					}
					gen := time.Second + time.Duration(float64(r.out)/60*float64(time.Second))
					time.Sleep(gen)
					mu.Lock()
					meter.Settle(quota.SettleRequest{Model: tg.Model, Region: tg.Region, Operation: "converse",
						InputTokens: r.actualIn, OutputTokens: r.out, Burndown: 5, MaxTokens: maxTok})
					reserved -= int64(r.actualIn + maxTok)
					mu.Unlock()
					time.Sleep(20 * time.Millisecond) // the end of the stream reaches the client
					tk.Settle(Usage{InputTokens: r.actualIn, OutputTokens: r.out})
					mu.Lock()
					res.done++
					res.waits[r.class] = append(res.waits[r.class], tk.Waited())
					mu.Unlock()
					return
				}
			}()
		}
		sg.Wait()
		wg.Wait()
		res.calls = len(reqs)
		measured := cfg.duration - cfg.warmup
		res.utilisation = float64(s2-s0) / measured.Minutes() / float64(cfg.quota)
		res.lastUtilisation = float64(s2-s1) / (cfg.duration / 3).Minutes() / float64(cfg.quota)
		res.settledShare = float64(settled2-settled0) / measured.Minutes() / float64(cfg.quota)
	})
	return res
}

// converseBody builds a Converse body with n bytes of text.
func converseBody(n, maxTokens int) []byte {
	var b strings.Builder
	b.WriteString(`{"messages":[{"role":"user","content":[{"text":"`)
	const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do "
	for b.Len() < 48+n {
		b.WriteString(words[:min(len(words), 48+n-b.Len())])
	}
	b.WriteString(`"}]}]`)
	if maxTokens > 0 {
		b.WriteString(`,"inferenceConfig":{"maxTokens":`)
		b.WriteString(itoa(maxTokens))
		b.WriteString(`}`)
	}
	b.WriteString(`}`)
	return []byte(b.String())
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(math.Ceil(p*float64(len(s))))-1]
}

func (r simResult) log(t *testing.T) {
	t.Helper()
	t.Logf("offered %.2f× quota in %d calls: quota used %.1f%% (last third %.1f%%), settled %.1f%%; upstream throttles %d of %d attempts (%.2f%%; last third %d of %d)",
		r.offered, r.calls, 100*r.utilisation, 100*r.lastUtilisation, 100*r.settledShare,
		r.throttled, r.sent, 100*float64(r.throttled)/float64(r.sent), r.lastThr, r.lastSent)
	for c := range numClasses {
		t.Logf("  %-11s served %4d: wait p50 %v, p95 %v, max %v; refused for the deadline %4d (%d at once, %d after a median wait of %v), as overloaded %d",
			Class(c).String()+":", len(r.waits[c]), percentile(r.waits[c], 0.5).Round(time.Millisecond),
			percentile(r.waits[c], 0.95).Round(time.Millisecond), percentile(r.waits[c], 1).Round(time.Millisecond),
			r.expired[c], r.expiredAtOnce[c], len(r.expiredWaited[c]), percentile(r.expiredWaited[c], 0.5).Round(time.Millisecond), r.shed[c])
		if r.tooLarge[c] > 0 {
			t.Logf("  %-11s refused as too large: %d", "", r.tooLarge[c])
		}
	}
	var b strings.Builder
	for i, m := range r.perMinute {
		fmt.Fprintf(&b, " %d:%.0f%%/%d", i+1, 100*m.util, m.thr)
	}
	t.Logf("  per minute (quota used/throttles):%s", b.String())
	t.Logf("  final limit %d tokens/min; governor: %d throttles, %d decreases, %d resyncs, %d taken for noise",
		r.finalLimit, r.finalStats.Throttles, r.finalStats.Decreases, r.finalStats.Resyncs, r.finalStats.Noise)
}

type simCase struct {
	name    string
	offered float64 // × quota; 0: 2
	gov     Options
	// bounds checked on the result
	minUtil, maxThrottle         float64                   // over the run after the warm-up
	minLastUtil, maxLastThrottle float64                   // over its last third
	allServed                    bool                      // every call served, at once unless maxWait says otherwise
	maxWait                      [numClasses]time.Duration // the longest wait allowed per class when allServed
	maxUnserved                  int                       // calls allServed lets go unserved (refused in the first seconds)
}

// learnedLastThrottle bounds the throttled share of the attempts in the
// last third of a run whose limit is learned (or cut from a told one that
// is too high). The goroutines of one instant run in a different order
// from run to run, and so do the figures: over 20 runs of each such row
// (2026-12-04) the share averaged 1.2-1.6 % and reached 3.2 %, and runs
// read 3.5 % and 3.7 %, so a 3 % bound failed about one run of the test in
// eight (docs/governor.md, Measured: the simulation).
const learnedLastThrottle = 0.04

func TestSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	const q = 2_000_000
	tests := []simCase{
		{name: "known quota", gov: Options{Default: Quota{TokensPerMinute: q}},
			minUtil: 0.95, maxThrottle: 0.01, minLastUtil: 0.95, maxLastThrottle: 0.01},
		{name: "unknown quota, learned", gov: Options{},
			minUtil: 0.75, maxThrottle: 0.05, minLastUtil: 0.8, maxLastThrottle: learnedLastThrottle},
		{name: "guess twice too high, learned", gov: Options{Default: Quota{TokensPerMinute: 2 * q, Learn: true}},
			minUtil: 0.75, maxThrottle: 0.05, minLastUtil: 0.8, maxLastThrottle: learnedLastThrottle},
		{name: "guess half too low, learned", gov: Options{Default: Quota{TokensPerMinute: q / 2, Learn: true}},
			minUtil: 0.6, maxThrottle: 0.05, minLastUtil: 0.8, maxLastThrottle: learnedLastThrottle},
		{name: "known quota configured twice too high", gov: Options{Default: Quota{TokensPerMinute: 2 * q}},
			minUtil: 0.75, maxThrottle: 0.05, minLastUtil: 0.8, maxLastThrottle: learnedLastThrottle},
		// Under the quota, the governor must not get in the way: every call
		// served, without waiting.
		{name: "light load, known quota", offered: 0.7, gov: Options{Default: Quota{TokensPerMinute: q}, FullStart: true},
			maxThrottle: 0.01, maxLastThrottle: 0.01, allServed: true},
		// Warming up (the default), the first seconds' calls may wait for
		// the bucket that starts with a second of quota: Interactive ones
		// behind a Batch call at the head of the queue, Batch ones until
		// the level has grown.
		{name: "light load, known quota, warming up", offered: 0.7, gov: Options{Default: Quota{TokensPerMinute: q}},
			maxThrottle: 0.01, maxLastThrottle: 0.01, allServed: true, maxUnserved: 10,
			maxWait: [numClasses]time.Duration{2 * time.Second, 7 * time.Second}},
		{name: "light load, unknown quota", offered: 0.7, gov: Options{},
			maxThrottle: 0.01, maxLastThrottle: 0.01, allServed: true},
	}
	duration := 15 * time.Minute
	if raceEnabled {
		// Under the race detector, a shorter run of the main cases: the
		// point there is the races, not the figures.
		duration = 6 * time.Minute
		tests = slices.DeleteFunc(tests, func(tt simCase) bool {
			return tt.name != "known quota" && tt.name != "unknown quota, learned"
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offered := tt.offered
			if offered == 0 {
				offered = 2
			}
			r := simulate(t, simConfig{quota: q, offered: offered, gov: tt.gov, duration: duration, warmup: 2 * time.Minute, seed: 7})
			r.log(t)
			thr := float64(r.throttled) / float64(r.sent)
			lastThr := float64(r.lastThr) / float64(r.lastSent)
			if r.utilisation < tt.minUtil || thr > tt.maxThrottle || r.lastUtilisation < tt.minLastUtil || lastThr > tt.maxLastThrottle {
				t.Errorf("utilisation %.3f (want ≥ %.2f), throttles %.4f (want ≤ %.2f); last third %.3f (≥ %.2f), %.4f (≤ %.2f)",
					r.utilisation, tt.minUtil, thr, tt.maxThrottle, r.lastUtilisation, tt.minLastUtil, lastThr, tt.maxLastThrottle)
			}
			if served := len(r.waits[Interactive]) + len(r.waits[Batch]); tt.allServed &&
				(served < r.calls-tt.maxUnserved || percentile(r.waits[Interactive], 1) > tt.maxWait[Interactive] || percentile(r.waits[Batch], 1) > tt.maxWait[Batch]) {
				t.Errorf("served %d of %d calls, longest waits %v and %v; want all but %d, waiting at most %v and %v", served, r.calls, tt.maxUnserved,
					percentile(r.waits[Interactive], 1), percentile(r.waits[Batch], 1), tt.maxWait[Interactive], tt.maxWait[Batch])
			}
		})
	}
}
