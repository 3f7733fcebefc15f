package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/scenario"
	"github.com/keel-run/keel/internal/emulator/scenario/glob"
)

// The outage bench's route: every call names its model in Primary, and
// keel's route falls back to the same model in Fallback.
const (
	Primary  = "us-east-1"
	Fallback = "us-west-2"
)

// DefaultOutageModel is Claude 3 Haiku, served on demand in both regions of
// the route: the model of issue 15's hang reproduction.
const DefaultOutageModel = "anthropic.claude-3-haiku-20240307-v1:0"

// outageContenders are keel configured as a Go user would for a regional
// outage: a route from Primary to Fallback, otherwise defaults; and the same
// with per-attempt timeouts effectively off, to show what they buy.
var outageContenders = []Contender{
	{Name: "keel", Description: "official SDK client + keel with a route MODEL@us-east-1 -> MODEL@us-west-2, otherwise defaults (learned per-attempt timeouts)",
		client: routedClient(false)},
	{Name: "no-attempt-timeout", Description: "the same with retry.attempt_timeout set to the deadline: per-attempt timeouts effectively off",
		client: routedClient(true)},
}

// DefaultOutageContenders are the contenders an outage bench compares when
// none are named.
var DefaultOutageContenders = []string{"keel", "no-attempt-timeout"}

// OutageContenders lists the outage bench's contenders in table order.
func OutageContenders() []Contender { return slices.Clone(outageContenders) }

func routedClient(deadlineOnly bool) func(context.Context, Endpoint) (*bedrockruntime.Client, error) {
	return func(_ context.Context, e Endpoint) (*bedrockruntime.Client, error) {
		cfg := awsConfig(e)
		o := keel.Options{Endpoint: e.URL, Routes: []keel.Route{{Name: "outage", Models: []string{e.Model},
			Targets: []keel.Target{{Model: e.Model, Region: e.Region}, {Model: e.Model, Region: e.Fallback}}}}}
		if deadlineOnly {
			// A fixed timeout as long as the caller's deadline: the deadline
			// ends a hung attempt first.
			o.Retry.AttemptTimeout = e.Deadline
		}
		k, err := keel.New(cfg, o)
		if err != nil {
			return nil, err
		}
		return bedrockruntime.NewFromConfig(cfg, k.ClientOptions, func(o *bedrockruntime.Options) { o.BaseEndpoint = aws.String(e.URL) }), nil
	}
}

// OutageConfig configures an outage bench. The zero value of each field but
// Scenario means its default.
type OutageConfig struct {
	// Scenario makes the emulator misbehave; its outage windows for Primary
	// make the phases the result is split into. Required.
	Scenario *scenario.Scenario
	// ScenarioName names it in the result (its file). Empty: "scenario".
	ScenarioName string
	// Duration is how long calls arrive for. Zero: 100 s.
	Duration time.Duration
	// Rate is the mean arrival rate, calls per second, of a Poisson
	// stream. Zero: 4.
	Rate float64
	// Deadline bounds each call from its arrival. Zero: 30 s.
	Deadline time.Duration
	// MaxTokens is every call's max tokens. Zero: 200.
	MaxTokens int
	// Speed scales the emulated model's latency (1 is real time); it does
	// not scale the scenario's windows or its added latency. Zero: 1.
	Speed float64
	// Seed draws the arrivals, the prompts, the emulator's replies and the
	// scenario's random faults.
	Seed int64
	// Model is the model every call names. Empty: DefaultOutageModel.
	Model string
	// Contenders names the contenders to compare. Empty:
	// DefaultOutageContenders.
	Contenders []string
	// Progress, when set, is called about once a second while the bench
	// runs and once at the end, from one goroutine. Nil: not called.
	Progress func(Progress)
}

// Limits on an OutageConfig.
const MaxRate = 100.0

func (c OutageConfig) withDefaults() OutageConfig {
	c.ScenarioName = cmp.Or(c.ScenarioName, "scenario")
	c.Duration = cmp.Or(c.Duration, 100*time.Second)
	c.Rate = cmp.Or(c.Rate, 4)
	c.Deadline = cmp.Or(c.Deadline, 30*time.Second)
	c.MaxTokens = cmp.Or(c.MaxTokens, 200)
	c.Speed = cmp.Or(c.Speed, 1)
	c.Model = cmp.Or(c.Model, DefaultOutageModel)
	if len(c.Contenders) == 0 {
		c.Contenders = DefaultOutageContenders
	}
	return c
}

// CheckOutage reports what is wrong with cfg, as RunOutage would, without
// running anything; it does not need the scenario.
func CheckOutage(cfg OutageConfig) error {
	_, _, _, err := checkOutage(cfg)
	return err
}

func checkOutage(cfg OutageConfig) (OutageConfig, []Contender, Model, error) {
	cfg = cfg.withDefaults()
	cs, err := pickContenders(outageContenders, DefaultOutageContenders, cfg.Contenders)
	if err != nil {
		return cfg, nil, Model{}, err
	}
	m, err := checkArrivals(cfg)
	if err != nil {
		return cfg, nil, Model{}, err
	}
	if m.Region != Primary {
		return cfg, nil, Model{}, fmt.Errorf("bench: model %s is not called in %s; the outage bench routes %s to %s", m.ID, Primary, Primary, Fallback)
	}
	return cfg, cs, m, nil
}

// checkArrivals checks what an open-loop bench's calls are made of: their
// stream (duration, rate), each call (deadline, max tokens) and the model,
// which it resolves.
func checkArrivals(cfg OutageConfig) (Model, error) {
	switch {
	case cfg.Duration < time.Second || cfg.Duration > MaxDuration:
		return Model{}, fmt.Errorf("bench: duration %s: want from 1s to %s", cfg.Duration, MaxDuration)
	case math.IsNaN(cfg.Rate) || cfg.Rate <= 0 || cfg.Rate > MaxRate:
		return Model{}, fmt.Errorf("bench: rate %v: want more than 0 and at most %v calls a second", cfg.Rate, MaxRate)
	case cfg.Deadline < 100*time.Millisecond || cfg.Deadline > MaxDeadline:
		return Model{}, fmt.Errorf("bench: deadline %s: want from 100ms to %s", cfg.Deadline, MaxDeadline)
	case math.IsNaN(cfg.Speed) || math.IsInf(cfg.Speed, 0) || cfg.Speed <= 0 || cfg.Speed > 10:
		return Model{}, fmt.Errorf("bench: speed %v: want more than 0 (1 is real time) and at most 10", cfg.Speed)
	}
	m, err := ResolveModel(cfg.Model)
	if err != nil {
		return Model{}, err
	}
	if cfg.MaxTokens < 1 || cfg.MaxTokens > m.Base.MaxOutputTokens {
		return Model{}, fmt.Errorf("bench: max tokens %d: want from 1 to %d, the most %s writes", cfg.MaxTokens, m.Base.MaxOutputTokens, m.ID)
	}
	if n := cfg.Rate * cfg.Duration.Seconds(); n > maxCalls {
		return Model{}, fmt.Errorf("bench: %.0f calls expected (%.1f a second for %s); at most %d: lower the rate or the duration", n, cfg.Rate, cfg.Duration, maxCalls)
	}
	return m, nil
}

// A Phase is a stretch of the run in which Primary behaves one way: before
// its first outage window (healthy), in each window (named for its answer:
// 503, refused, hang, or a catalog code), between two windows (up), after
// the last (recovered).
type Phase struct {
	Name string
	From time.Duration
	To   time.Duration
}

// Phases splits [0, d) by s's outage windows for region, in arrival time.
func Phases(s *scenario.Scenario, region string, d time.Duration) []Phase {
	type window struct {
		from, to time.Duration
		name     string
	}
	var ws []window
	for _, r := range s.Rules {
		if !glob.Match(cmp.Or(r.Region, "*"), region) {
			continue
		}
		ruleTo := cmp.Or(r.To, d)
		for _, o := range r.Outages {
			from, to := max(o.From, r.From), min(cmp.Or(o.To, d), ruleTo, d)
			if from < to {
				ws = append(ws, window{from, to, answerName(o.Answer)})
			}
		}
	}
	slices.SortFunc(ws, func(a, b window) int { return cmp.Compare(a.from, b.from) })
	var out []Phase
	at := time.Duration(0)
	add := func(name string, to time.Duration) {
		if to > at {
			out = append(out, Phase{Name: name, From: at, To: to})
			at = to
		}
	}
	for i, w := range ws {
		gap := "up"
		if i == 0 {
			gap = "healthy"
		}
		add(gap, w.from)
		add(w.name, w.to) // an overlapping window starts where the last ended
	}
	if len(ws) == 0 {
		add("healthy", d)
	}
	add("recovered", d)
	return out
}

// answerName names an outage's answer: its HTTP status for a catalog code
// that has one (503), refused, hang.
func answerName(a string) string {
	switch a {
	case scenario.AnswerRefuse:
		return "refused"
	case scenario.AnswerHang:
		return "hang"
	}
	if e, ok := catalog.Lookup(a); ok && e.Status > 0 {
		return fmt.Sprint(e.Status)
	}
	return a
}

// OutageResult is what an outage bench measured.
type OutageResult struct {
	Scenario  string  `json:"scenario"`
	Model     string  `json:"model"`
	Primary   string  `json:"primaryRegion"`
	Fallback  string  `json:"fallbackRegion"`
	Rate      float64 `json:"ratePerSecond"`
	Calls     int     `json:"calls"`
	MaxTokens int     `json:"maxTokens"`
	Seed      int64   `json:"seed"`
	Speed     float64 `json:"speed"`
	// Duration and Deadline as run; Wall is how long the run took.
	Duration   time.Duration     `json:"-"`
	Deadline   time.Duration     `json:"-"`
	Wall       time.Duration     `json:"-"`
	Phases     []Phase           `json:"-"`
	Contenders []OutageContender `json:"contenders"`
}

// OutageContender is one contender's measures, per phase.
type OutageContender struct {
	Name   string         `json:"name"`
	Phases []PhaseOutcome `json:"phases"`

	calls []outageCall
}

// PhaseOutcome is what happened to the calls that arrived in one phase.
type PhaseOutcome struct {
	Phase     string `json:"phase"`
	Calls     int    `json:"calls"`
	Completed int    `json:"completed"`
	Failed    int    `json:"failed"`
	// Failures counts failed calls by what they failed with (a catalog
	// code, or "deadline").
	Failures map[string]int `json:"failures"`
	// ViaFallback is the share of completed calls that Fallback answered.
	ViaFallback float64 `json:"servedByFallback"`
	// P50, P99 and Max are the latency of completed calls, arrival to
	// reply.
	P50, P99, Max time.Duration `json:"-"`
	// Added is Max less the healthy phase's P50: the most the outage added
	// to a completed call. Meaningless (HasAdded false) when no healthy
	// call completed.
	Added    time.Duration `json:"-"`
	HasAdded bool          `json:"-"`
	// PrimaryAttempts are the attempts sent to Primary (not the skipped
	// ones); PrimaryPerCall is that per call.
	PrimaryAttempts int     `json:"primaryAttempts"`
	PrimaryPerCall  float64 `json:"primaryAttemptsPerCall"`
	// BreakerSkips counts the calls that skipped Primary, at first or on a
	// retry, because its circuit breaker was open (or half-open with every
	// probe out).
	BreakerSkips int `json:"breakerSkips"`
	// AttemptTimeouts counts attempts ended by keel's per-attempt timeout;
	// LongestTimeout is the longest of them, from sending to giving up.
	AttemptTimeouts int           `json:"attemptTimeouts"`
	LongestTimeout  time.Duration `json:"-"`
}

// outageCall is what happened to one call.
type outageCall struct {
	at       time.Duration // arrival, after the start
	done, ok bool
	latency  time.Duration // arrival to reply or error
	failure  string
	region   string // that answered
	// From keel's report: attempts sent to Primary, whether its breaker
	// made the call skip it, timed-out attempts and the longest of them.
	primarySent int
	skipped     bool
	timeouts    int
	longest     time.Duration
}

// RunOutage runs an outage bench: every contender at once, each against its
// own emulator playing the scenario from the same start, all offered the
// same calls at the same moments. It returns when every call has completed
// or failed (at most Duration + Deadline), or with ctx's error.
func RunOutage(ctx context.Context, cfg OutageConfig) (*OutageResult, error) {
	cfg, cs, m, err := checkOutage(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Scenario == nil {
		return nil, errors.New("bench: an outage bench needs a scenario")
	}
	calls := outageCalls(cfg)
	arenas, err := startArenas[outageCall](ctx, cfg.Scenario, cs, cfg.Seed, cfg.Speed,
		Endpoint{Model: m.ID, Region: Primary, Fallback: Fallback, Deadline: cfg.Deadline}, len(calls))
	defer closeArenas(arenas)
	if err != nil {
		return nil, err
	}
	start := arenas[0].in.Start()
	var finished atomic.Int64
	stopProgress := reportProgress(cfg.Progress, Progress{Arrivals: cfg.Duration, Limit: cfg.Duration + cfg.Deadline,
		Calls: len(calls) * len(arenas)}, start, func() int { return int(finished.Load()) })
	playArenas(ctx, arenas, calls, func(a *scenarioArena[outageCall], c Call, arrived time.Time) outageCall {
		defer finished.Add(1)
		return outageSend(ctx, a.client, arrived, c, m.ID, cfg.Deadline)
	})
	stopProgress()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &OutageResult{Scenario: cfg.ScenarioName, Model: m.ID, Primary: Primary, Fallback: Fallback, Rate: cfg.Rate,
		Calls: len(calls), MaxTokens: cfg.MaxTokens, Seed: cfg.Seed, Speed: cfg.Speed, Duration: cfg.Duration,
		Deadline: cfg.Deadline, Wall: time.Since(start), Phases: Phases(cfg.Scenario, Primary, cfg.Duration)}
	for _, a := range arenas {
		res.Contenders = append(res.Contenders, OutageContender{Name: a.c.Name, calls: a.results,
			Phases: phaseOutcomes(res.Phases, a.results)})
	}
	return res, nil
}

// scenarioArena is one contender of an outage or tiers bench, against its own
// emulator playing a scenario, and the results of the calls it was offered.
type scenarioArena[R any] struct {
	c       Contender
	in      *scenario.Injector
	rn      *emulator.Running
	client  *bedrockruntime.Client
	results []R
}

// startArenas starts an arena per contender for n calls: an emulator
// playing sc from its own injector's start (the injectors are made
// together, microseconds apart, so each contender's start is its
// emulator's), in ep.Region, and the contender's client for ep at it. The
// caller closes the arenas returned, an error's included.
func startArenas[R any](ctx context.Context, sc *scenario.Scenario, cs []Contender, seed int64, speed float64, ep Endpoint, n int) ([]*scenarioArena[R], error) {
	var arenas []*scenarioArena[R]
	for _, c := range cs {
		in := scenario.NewInjector(sc, seed, nil)
		rn, err := emulator.Start(emulator.Options{Seed: seed, Speed: speed, DefaultRegion: ep.Region, Planner: in.Plan})
		if err != nil {
			return arenas, err
		}
		a := &scenarioArena[R]{c: c, in: in, rn: rn, results: make([]R, n)}
		arenas = append(arenas, a)
		ep.URL = rn.URL
		if a.client, err = c.client(ctx, ep); err != nil {
			return arenas, fmt.Errorf("bench: contender %s: %w", c.Name, err)
		}
	}
	return arenas, nil
}

// closeArenas stops the arenas' emulators.
func closeArenas[R any](arenas []*scenarioArena[R]) {
	for _, a := range arenas {
		a.rn.Close()
	}
}

// playArenas offers the calls to every arena at once, each at its time
// from the arena's start, and records what send returns for each. It
// returns when every call has ended, or ctx is done.
func playArenas[R any](ctx context.Context, arenas []*scenarioArena[R], calls []Call, send func(a *scenarioArena[R], c Call, arrived time.Time) R) {
	var wg sync.WaitGroup
	for _, a := range arenas {
		wg.Go(func() {
			openLoop(ctx, a.in.Start(), calls, func(c Call) {
				a.results[c.Index] = send(a, c, a.in.Start().Add(c.At))
			})
		})
	}
	wg.Wait()
}

// outageCalls draws the calls: a Poisson stream of cfg.Rate a second over
// cfg.Duration, each with a prompt of 100 to 1,000 tokens and cfg.MaxTokens.
// The same seed gives the same calls.
func outageCalls(cfg OutageConfig) []Call {
	times := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x0a7a))
	contents := rand.New(rand.NewPCG(uint64(cfg.Seed), 0xc0de))
	var calls []Call
	for at := time.Duration(0); ; {
		at += time.Duration(times.ExpFloat64() / cfg.Rate * float64(time.Second))
		if at >= cfg.Duration {
			return calls
		}
		n := 100 + contents.IntN(901)
		calls = append(calls, Call{Index: len(calls), At: at, InputTokens: n, MaxTokens: cfg.MaxTokens, Prompt: prompt(contents, n)})
	}
}

// outageSend sends one call and reads keel's report of it.
func outageSend(ctx context.Context, client *bedrockruntime.Client, arrived time.Time, c Call, model string, deadline time.Duration) outageCall {
	ctx, cancel := context.WithDeadline(ctx, arrived.Add(deadline))
	defer cancel()
	out, err := client.Converse(ctx, &bedrockruntime.ConverseInput{
		ModelId:         aws.String(model),
		Messages:        []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: c.Prompt}}}},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(int32(c.MaxTokens))},
	})
	r := outageCall{at: c.At, done: true, latency: time.Since(arrived)}
	var rep *keel.Report
	if err == nil {
		r.ok = true
		rep = keel.ReportOf(out.ResultMetadata)
	} else {
		r.failure = failureOf(ctx, err)
		_, rep, _ = keel.Details(err)
		// Say when keel stopped for a reason of its own, not the entry's
		// verdict: the retry budget spent, say, before the fallback.
		var ke *keel.Error
		if errors.As(err, &ke) && ke.Failure() != nil && ke.Failure().GaveUpDetail != "" && r.failure != "deadline" {
			r.failure += " (" + ke.Failure().GaveUpDetail + ")"
		}
	}
	if rep == nil {
		return r
	}
	r.region = rep.Target.Region
	for _, a := range rep.Attempts {
		if a.Target.Region == Primary {
			switch {
			case a.Skipped && a.Code == "CircuitOpen":
				r.skipped = true
			case !a.Skipped:
				r.primarySent++
			}
		}
		if a.Code == catalog.CodeAttemptTimeout {
			r.timeouts++
			r.longest = max(r.longest, a.Duration)
		}
	}
	return r
}

// phaseOutcomes sums the calls by the phase they arrived in.
func phaseOutcomes(phases []Phase, calls []outageCall) []PhaseOutcome {
	out := make([]PhaseOutcome, len(phases))
	lat := make([][]time.Duration, len(phases))
	for i, p := range phases {
		out[i] = PhaseOutcome{Phase: p.Name, Failures: map[string]int{}}
	}
	for _, c := range calls {
		i := slices.IndexFunc(phases, func(p Phase) bool { return c.at >= p.From && c.at < p.To })
		if i < 0 {
			continue
		}
		o := &out[i]
		o.Calls++
		switch {
		case c.ok:
			o.Completed++
			lat[i] = append(lat[i], c.latency)
			if c.region == Fallback {
				o.ViaFallback++
			}
		case c.done:
			o.Failed++
			o.Failures[c.failure]++
		default: // never sent: the run was cut short
			o.Failed++
			o.Failures["not sent"]++
		}
		o.PrimaryAttempts += c.primarySent
		if c.skipped {
			o.BreakerSkips++
		}
		o.AttemptTimeouts += c.timeouts
		o.LongestTimeout = max(o.LongestTimeout, c.longest)
	}
	var healthy time.Duration
	hasHealthy := false
	for i := range out {
		o := &out[i]
		slices.Sort(lat[i])
		o.P50, o.P99 = percentile(lat[i], 50), percentile(lat[i], 99)
		if n := len(lat[i]); n > 0 {
			o.Max = lat[i][n-1]
			o.ViaFallback /= float64(n)
		}
		if o.Calls > 0 {
			o.PrimaryPerCall = float64(o.PrimaryAttempts) / float64(o.Calls)
		}
		if o.Phase == "healthy" && !hasHealthy && o.Completed > 0 {
			healthy, hasHealthy = o.P50, true
		}
	}
	for i := range out {
		if o := &out[i]; hasHealthy && o.Completed > 0 {
			o.Added, o.HasAdded = o.Max-healthy, true
		}
	}
	return out
}
