package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	smithy "github.com/aws/smithy-go"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/quota"
)

// DefaultModel is Claude Sonnet 4.6 through its US inference profile:
// burndown 5, so a reply's output costs five times its tokens. Its 64,000
// token output limit is the one the workload's mix was sized for (a call
// that sets no maximum reserves it); Sonnet 5 and later reserve twice that.
const DefaultModel = "us.anthropic.claude-sonnet-4-6"

// Config configures a quota bench. The zero value of each field but Quota
// and Duration means its default.
type Config struct {
	// Quota is the tokens-per-minute quota of every contender's emulator.
	Quota int64
	// Duration is how long calls arrive for.
	Duration time.Duration
	// Warmup is the start of the arrival window left out of the goodput
	// measure, while reservations in flight build up from none. Zero: a
	// quarter of Duration, but at least the latency of the longest reply and
	// at most half of Duration.
	Warmup time.Duration
	// Load is the offered load: settled tokens per minute, were every call
	// served, ÷ Quota. Zero: 2.
	Load float64
	// Seed draws the workload and the emulator's replies.
	Seed int64
	// Model is the model id every call names. Empty: DefaultModel.
	Model string
	// Deadline bounds each call from its arrival; a call not done by then
	// failed. Zero: 15 s.
	Deadline time.Duration
	// Speed scales the emulated model's latency (time to first token and
	// tokens per second): 1 is real time. Zero: 1.
	Speed float64
	// Contenders names the contenders to compare. Empty: DefaultContenders,
	// or DefaultReplicaContenders when Replicas is above 1.
	Contenders []string
	// Replicas is how many keel instances keel-redis and keel-local each
	// run against their one emulator, calls dealt to them in turn as a
	// load balancer deals them; the other contenders run one. Zero: 1.
	Replicas int
	// Redis is the Redis keel-redis's replicas share: "local" (a
	// redis-server started for the run on a free loopback port, stopped at
	// its end) or a redis:// or rediss:// URL. Each run and contender has
	// keys of its own under it. Empty: local when keel-redis runs; it must
	// be empty when keel-redis does not run.
	Redis string
	// RedisOutage, when above zero, kills the local redis-server for that
	// long in the middle of the arrivals, then starts it again, empty: the
	// result then has each contender's measures before, during and after.
	// It needs keel-redis and a local Redis, and at most half the
	// Duration.
	RedisOutage time.Duration
	// FullStart starts every contender's quota full, as when the load
	// before the run was under the quota; false starts it spent, as after
	// a minute of overload (the default: a short run measures the steady
	// state, not the burst a full bucket gives).
	FullStart bool
	// Progress, when set, is called about once a second while the bench
	// runs and once when every call has ended, from one goroutine, so a
	// run of minutes is not silent. Nil: not called.
	Progress func(Progress)
}

// Progress is how far a running bench has got.
type Progress struct {
	Elapsed  time.Duration // since the run started
	Arrivals time.Duration // how long calls arrive for: Config.Duration
	Limit    time.Duration // the run ends by Arrivals + Config.Deadline
	Calls    int           // calls offered, all contenders together
	Done     int           // calls that completed or failed, all contenders together
}

// progressEvery is how often Config.Progress is called.
const progressEvery = time.Second

// Limits on a Config, so a slip cannot run for an hour.
const (
	MaxDuration = 10 * time.Minute
	MaxDeadline = 5 * time.Minute
	MaxLoad     = 20.0
	// MaxReplicas bounds Config.Replicas: four is the figure issue 19
	// asks for, and each replica holds its own connections and goroutines
	// on a machine that also runs every emulator.
	MaxReplicas = 16
)

func (c Config) withDefaults() Config {
	if c.Load == 0 {
		c.Load = 2
	}
	if c.Model == "" {
		c.Model = DefaultModel
	}
	if c.Deadline == 0 {
		c.Deadline = 15 * time.Second
	}
	if c.Speed == 0 {
		c.Speed = 1
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if len(c.Contenders) == 0 {
		c.Contenders = DefaultContenders
		if c.Replicas > 1 {
			c.Contenders = DefaultReplicaContenders
		}
	}
	return c
}

// validate checks a Config with its defaults filled in.
func (c Config) validate() error {
	switch {
	case c.Quota <= 0:
		return fmt.Errorf("bench: quota %d: want a positive number of tokens per minute", c.Quota)
	case c.Duration < time.Second || c.Duration > MaxDuration:
		return fmt.Errorf("bench: duration %s: want from 1s to %s", c.Duration, MaxDuration)
	case c.Warmup < 0 || c.Warmup >= c.Duration:
		return fmt.Errorf("bench: warm-up %s: want at least 0 and less than the duration %s", c.Warmup, c.Duration)
	case math.IsNaN(c.Load) || c.Load <= 0 || c.Load > MaxLoad:
		return fmt.Errorf("bench: load %v: want more than 0 and at most %v", c.Load, MaxLoad)
	case c.Deadline < 100*time.Millisecond || c.Deadline > MaxDeadline:
		return fmt.Errorf("bench: deadline %s: want from 100ms to %s", c.Deadline, MaxDeadline)
	case math.IsNaN(c.Speed) || math.IsInf(c.Speed, 0) || c.Speed <= 0 || c.Speed > 10:
		return fmt.Errorf("bench: speed %v: want more than 0 (1 is real time) and at most 10", c.Speed)
	case c.Replicas < 1 || c.Replicas > MaxReplicas:
		return fmt.Errorf("bench: replicas %d: want from 1 to %d", c.Replicas, MaxReplicas)
	}
	return nil
}

// Result is what a quota bench measured.
type Result struct {
	Model    string  `json:"model"`
	Region   string  `json:"region"`
	Burndown float64 `json:"burndown"`
	Quota    int64   `json:"quotaTokensPerMinute"`
	// Load is the load asked for; Offered what the drawn calls would have
	// settled per minute, ÷ Quota.
	Load    float64 `json:"load"`
	Offered float64 `json:"offeredLoad"`
	Calls   int     `json:"calls"`
	Seed    int64   `json:"seed"`
	Speed   float64 `json:"speed"`
	// Duration, Warmup and Deadline as run.
	Duration time.Duration `json:"-"`
	Warmup   time.Duration `json:"-"`
	Deadline time.Duration `json:"-"`
	// Wall is how long the run took, from the first arrival to the last
	// call's end.
	Wall time.Duration `json:"-"`
	// Replicas is the keel instances keel-redis and keel-local each ran;
	// Redis where keel-redis's shared state was: "local" or the host and
	// port of Config.Redis; empty when keel-redis did not run.
	Replicas int    `json:"replicas"`
	Redis    string `json:"redis,omitempty"`
	// RedisOutage is when the Redis was away, with Config.RedisOutage;
	// nil without.
	RedisOutage *OutageWindow `json:"redisOutage,omitempty"`
	// FullStart: the quota started full (Config.FullStart), not spent.
	FullStart  bool      `json:"fullStart"`
	Contenders []Outcome `json:"contenders"`
}

// Outcome is one contender's measures.
type Outcome struct {
	Name string `json:"name"`
	// Replicas is how many instances of the client ran: Config.Replicas
	// for keel-redis and keel-local, 1 for the others.
	Replicas int `json:"replicas"`
	// Goodput is the completed work: what the calls that completed between
	// the end of the warm-up and the end of arrivals (the window) settled
	// on the quota meter, per minute, ÷ the quota. CompletedTokens is that
	// work in tokens.
	Goodput         float64 `json:"goodput"`
	CompletedTokens int64   `json:"completedTokens"`
	// Spent is what the quota meter settled in the window, completed or not
	// (a call cut off at its deadline settles what it was given), per
	// minute, ÷ the quota; SettledTokens is that in tokens. Spent − Goodput
	// is quota spent on calls that failed.
	Spent         float64 `json:"quotaSpent"`
	SettledTokens int64   `json:"settledTokens"`
	// Refill is what the quota refilled in the window: its share of the
	// quota per minute.
	Refill int64 `json:"windowRefillTokens"`
	// InFlight and Bucket are the tokens reserved by admitted requests not
	// yet settled, and the tokens the quota's bucket held, at the window's
	// start and end. What the window settled is its Refill less what these
	// two gained, less what overflowed a full bucket: they tell the noise at
	// the window's edges from quota left unused.
	InFlight [2]int64 `json:"reservedInFlightTokens"`
	Bucket   [2]int64 `json:"bucketTokens"`
	// Completed and Failed split the offered calls: a call completed when
	// it returned a reply before its deadline.
	Offered   int `json:"offered"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	// Failures counts failed calls by what they failed with: a catalog code
	// (ThrottlingException), "deadline", or "retry quota" (the SDK's retry
	// token bucket was empty).
	Failures map[string]int `json:"failures"`
	// Attempts and Throttled are counted by the quota meter: every request
	// that reached it, and those it answered with a 429.
	Attempts  int64 `json:"attempts"`
	Throttled int64 `json:"throttled"`
	// ThrottlesPer100 is Throttled per 100 Attempts.
	ThrottlesPer100 float64 `json:"throttlesPer100Attempts"`
	// P50 and P99 are the latency of completed calls, from arrival to
	// reply; zero when none completed.
	P50 time.Duration `json:"-"`
	P99 time.Duration `json:"-"`
	// FailP50 and FailP99 are the time failed calls took to fail, from
	// arrival to error: what a failure cost its caller. Zero when none
	// failed.
	FailP50 time.Duration `json:"-"`
	FailP99 time.Duration `json:"-"`
	// LargeCompleted and SmallCompleted are the share of the quarter of
	// calls with the largest (smallest) reservations that completed.
	LargeCompleted float64 `json:"largeQuarterCompleted"`
	SmallCompleted float64 `json:"smallQuarterCompleted"`
	// LargeP99 and SmallP99 are the 99th percentile latency of those
	// quarters' completed calls: tails compared like for like. A client
	// that completes mostly small calls has a shorter overall tail because
	// a small call needs fewer tokens and so waits less for them with any
	// client, not because it serves calls sooner.
	LargeP99 time.Duration `json:"-"`
	SmallP99 time.Duration `json:"-"`
	// ReplyP99 is the 99th percentile of the completed calls' reply time:
	// the round trip of the request that brought the reply, with the time
	// spent in the client (waiting for quota, backing off, throttled
	// attempts) left out. It is the tail no client can shorten; P99 − ReplyP99
	// is about what the client added to it.
	ReplyP99 time.Duration `json:"-"`
	// PastDeadline is the most any call ran past its deadline before its
	// client gave it back: how long a hung dependency held a caller
	// beyond what it asked for. Zero when every call ended in time.
	PastDeadline time.Duration `json:"-"`
	// Phases are the measures before, during and after the Redis outage
	// (Config.RedisOutage); nil without one.
	Phases []RedisPhase `json:"redisOutagePhases,omitempty"`
	// Shared is what the instances' connections to Redis went through,
	// read at the end of the run (Keel.Shared); nil for a contender
	// without Redis.
	Shared *SharedHealth `json:"shared,omitempty"`

	calls []CallRecord // by call index, for WriteCalls
}

// A CallRecord is what happened to one call with one contender, as
// WriteCalls writes it.
type CallRecord struct {
	Contender   string        `json:"contender"`
	Index       int           `json:"call"`
	At          time.Duration `json:"-"` // arrival, after the run's start
	InputTokens int           `json:"inputTokens"`
	MaxTokens   int           `json:"maxTokens"` // 0: unset
	Reserve     int           `json:"reserveTokens"`
	Cost        int           `json:"costTokens"` // what it settles if served
	Completed   bool          `json:"completed"`
	Failure     string        `json:"failure,omitempty"`
	// Latency is from arrival to reply or error; nil: never sent (the run
	// was cut short). Reply is the last request's round trip; nil: no
	// request was sent (keel refused it) or its response was not read.
	Latency  *time.Duration `json:"-"`
	Reply    *time.Duration `json:"-"`
	Requests int            `json:"requests"` // HTTP requests sent, throttled ones too
}

// Check reports what is wrong with cfg, as Run would, without running
// anything.
func Check(cfg Config) error {
	_, _, _, err := check(cfg)
	return err
}

func check(cfg Config) (Config, []Contender, Model, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return cfg, nil, Model{}, err
	}
	cs, err := lookupContenders(cfg.Contenders)
	if err != nil {
		return cfg, nil, Model{}, err
	}
	if cfg.Redis, err = checkRedis(cfg, cs); err != nil {
		return cfg, nil, Model{}, err
	}
	m, err := ResolveModel(cfg.Model)
	if err != nil {
		return cfg, nil, Model{}, err
	}
	if need := m.LargestReservation(); cfg.Quota < int64(need) {
		return cfg, nil, Model{}, fmt.Errorf("bench: quota %d tokens per minute is below the largest call of the mix (%d tokens reserved on %s), which could never be served; use at least %d",
			cfg.Quota, need, m.ID, need)
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = min(max(cfg.Duration/4, m.longestReply(cfg.Speed)), cfg.Duration/2).Round(100 * time.Millisecond)
	}
	err = checkCount(cfg.Load*float64(cfg.Quota)/60/meanCost(m), cfg.Duration)
	return cfg, cs, m, err
}

// Run runs a quota bench: every contender at once, each against its own
// emulator, all offered the same calls at the same moments. It returns when
// every call has completed or failed (at most Duration + Deadline), or with
// ctx's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, cs, m, err := check(cfg)
	if err != nil {
		return nil, err
	}
	w, err := NewWorkload(m, cfg.Quota, cfg.Load, cfg.Duration, cfg.Seed)
	if err != nil {
		return nil, err
	}

	// The Redis outlives every Keel that uses it: deferred first, it
	// stops last.
	rs, err := openRedis(ctx, cfg.Redis)
	if err != nil {
		return nil, err
	}
	defer rs.stop()
	arenas := make([]*arena, 0, len(cs))
	defer func() {
		for _, a := range arenas {
			a.close()
		}
	}()
	for _, c := range cs {
		a, err := newArena(ctx, c, w, cfg, rs.options(c))
		if err != nil {
			return nil, err
		}
		arenas = append(arenas, a)
	}

	// Every arena's quota starts spent, as after a minute of overload: a
	// full bucket holds a whole minute of quota, and under 2x load it takes
	// a minute to drain, so a short run would measure the burst instead of
	// the steady state. With FullStart it starts full.
	for _, a := range arenas {
		if err := a.prime(cfg.Quota, !cfg.FullStart); err != nil {
			return nil, err
		}
	}
	start := time.Now().Add(50 * time.Millisecond)
	var wg sync.WaitGroup
	for _, a := range arenas {
		wg.Go(func() { a.offer(ctx, start, w.Calls, cfg.Deadline) })
	}
	var window *OutageWindow
	var outageErr error
	if cfg.RedisOutage > 0 {
		wg.Go(func() { window, outageErr = rs.outage(ctx, start, cfg.Duration, cfg.RedisOutage, arenas) })
	}
	stopProgress := reportProgress(cfg.Progress, Progress{Arrivals: cfg.Duration, Limit: cfg.Duration + cfg.Deadline,
		Calls: len(w.Calls) * len(arenas)}, start, func() int {
		done := 0
		for _, a := range arenas {
			done += int(a.finished.Load())
		}
		return done
	})
	snapErr := snapshots(ctx, start, cfg.Warmup, cfg.Duration, arenas)
	wg.Wait()
	stopProgress()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := errors.Join(snapErr, outageErr); err != nil {
		return nil, err
	}

	res := &Result{Model: m.ID, Region: m.Region, Burndown: burndown(m.Base), Quota: cfg.Quota, Load: cfg.Load,
		Offered: float64(w.OfferedTokens()) / w.Duration.Minutes() / float64(cfg.Quota),
		Calls:   len(w.Calls), Seed: cfg.Seed, Speed: cfg.Speed, Duration: cfg.Duration, Warmup: cfg.Warmup,
		Deadline: cfg.Deadline, Wall: time.Since(start), Replicas: cfg.Replicas, Redis: rs.String(), RedisOutage: window,
		FullStart: cfg.FullStart}
	small, large := w.Quarters()
	for _, a := range arenas {
		o := a.outcome(cfg, w.Calls, small, large)
		if window != nil {
			o.Phases = a.phases(cfg, w.Calls, start, *window)
		}
		res.Contenders = append(res.Contenders, o)
	}
	return res, nil
}

// reportProgress calls progress with p, its Elapsed and Done filled in
// (done counts the calls ended), every progressEvery until the returned
// stop is called, which reports once more, the final count, and returns
// when the reporting goroutine has ended. A nil progress is never called.
func reportProgress(progress func(Progress), p Progress, start time.Time, done func() int) (stop func()) {
	if progress == nil {
		return func() {}
	}
	report := func() {
		p.Elapsed, p.Done = max(time.Since(start), 0), done()
		progress(p)
	}
	quit, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-quit:
				report()
				return
			case <-t.C:
				report()
			}
		}
	}()
	return func() {
		close(quit)
		<-ended
	}
}

// snapshots reads every arena's quota meter when the warm-up ends and when
// arrivals end.
func snapshots(ctx context.Context, start time.Time, warmup, duration time.Duration, arenas []*arena) error {
	for i, at := range []time.Duration{warmup, duration} {
		t := time.NewTimer(time.Until(start.Add(at)))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		for _, a := range arenas {
			m, err := a.mark()
			if err != nil {
				return err
			}
			a.marks[i] = m
		}
	}
	return nil
}

// arena is one contender with its own emulator and quota meter.
type arena struct {
	c     Contender
	model Model
	meter *quota.Meter
	rn    *emulator.Running
	// clients are the contender's instances, a call going to
	// clients[index % len]: in turn, as a load balancer deals them. keels
	// are the Keels behind them that need closing.
	clients []*bedrockruntime.Client
	keels   []*keel.Keel

	// meterMu makes each admission or settlement and its change to
	// inFlight one step, so a mark sees them agree.
	meterMu  sync.Mutex
	inFlight int64 // tokens reserved by admitted requests not yet settled

	base  quota.Usage // after priming
	marks [2]mark     // at the end of the warm-up and of arrivals
	// outageMarks are the meter's counts when Redis was killed and when
	// it was started again (Config.RedisOutage).
	outageMarks [2]quota.Usage

	mu       sync.Mutex
	results  []callResult // by call index
	finished atomic.Int64 // calls that have ended, for Config.Progress
}

type callResult struct {
	end     time.Time
	done    bool
	ok      bool
	latency time.Duration
	failure string
	// reply is the round trip of the call's last request (replied: one was
	// sent and its response read), requests how many it sent.
	reply    time.Duration
	replied  bool
	requests int
}

func newArena(ctx context.Context, c Contender, w *Workload, cfg Config, redis keel.RedisOptions) (*arena, error) {
	m := w.Model
	meter := quota.NewMeter(nil, quota.Table{{Model: m.ID, Region: m.Region,
		Limits: quota.Limits{TokensPerMinute: cfg.Quota}}})
	a := &arena{c: c, model: m, meter: meter, results: make([]callResult, len(w.Calls))}
	s, err := emulator.New(emulator.Options{
		Seed:          cfg.Seed,
		Speed:         cfg.Speed,
		DefaultRegion: m.Region,
		ReplyLength:   ReplyLength,
		Admit: func(r emulator.AdmitRequest) *emulator.Rejection {
			a.meterMu.Lock()
			defer a.meterMu.Unlock()
			rej := meter.Admit(quota.AdmitRequest{Model: r.Model, Region: r.Region,
				Operation: r.Operation, InputTokens: r.InputTokens, MaxTokens: r.MaxTokens})
			if rej == nil {
				a.inFlight += int64(r.InputTokens + r.MaxTokens)
			}
			return (*emulator.Rejection)(rej)
		},
		Settle: func(r emulator.SettleRequest) {
			a.meterMu.Lock()
			defer a.meterMu.Unlock()
			meter.Settle(quota.SettleRequest{Model: r.Model, Region: r.Region, Operation: r.Operation,
				InputTokens: r.InputTokens, CacheWriteTokens: r.CacheWriteTokens, OutputTokens: r.OutputTokens,
				Burndown: r.Burndown, MaxTokens: r.MaxTokens})
			a.inFlight -= int64(r.InputTokens + r.MaxTokens)
		},
	})
	if err != nil {
		return nil, err
	}
	if a.rn, err = s.Listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	e := Endpoint{URL: a.rn.URL, Model: m.ID, Region: m.Region, Quota: cfg.Quota, Redis: redis}
	if c.replica == nil {
		cl, err := c.client(ctx, e)
		if err != nil {
			a.rn.Close()
			return nil, fmt.Errorf("bench: contender %s: %w", c.Name, err)
		}
		a.clients = []*bedrockruntime.Client{cl}
		return a, nil
	}
	for range cfg.Replicas {
		cl, k, err := c.replica(e)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("bench: contender %s: %w", c.Name, err)
		}
		a.clients, a.keels = append(a.clients, cl), append(a.keels, k)
	}
	return a, nil
}

// close closes the arena's Keels, then its emulator.
func (a *arena) close() {
	for _, k := range a.keels {
		k.Close()
	}
	a.rn.Close()
}

// prime makes the arena's meter count its target from here: with spend,
// one request spends the whole quota and settles what it reserved, so the
// bucket starts empty; without, the request holds no tokens and the bucket
// stays full.
func (a *arena) prime(tpm int64, spend bool) error {
	if !spend {
		tpm = 0 // a request of no tokens: the meter counts the target from here, its bucket full
	}
	if rej := a.meter.Admit(quota.AdmitRequest{Model: a.model.ID, Region: a.model.Region, Operation: "converse",
		InputTokens: int(tpm)}); rej != nil {
		return fmt.Errorf("bench: emptying the quota of %s: %s", a.c.Name, rej.Message)
	}
	a.meter.Settle(quota.SettleRequest{Model: a.model.ID, Region: a.model.Region, Operation: "converse",
		InputTokens: int(tpm)})
	var err error
	a.base, err = a.usage()
	return err
}

// mark is what an arena's quota meter holds at one moment.
type mark struct {
	at                        time.Time
	settled, inFlight, bucket int64
}

func (a *arena) mark() (mark, error) {
	a.meterMu.Lock()
	defer a.meterMu.Unlock()
	// One instant for the bucket's level and the refill counted from it.
	now := time.Now()
	u, err := a.usageAt(now)
	if err != nil {
		return mark{}, err
	}
	if u.TokensAvailable == nil {
		return mark{}, fmt.Errorf("bench: the quota meter of %s does not limit tokens per minute", a.c.Name)
	}
	return mark{at: now, settled: u.TokensSettled, inFlight: a.inFlight, bucket: *u.TokensAvailable}, nil
}

func (a *arena) usage() (quota.Usage, error) { return a.usageAt(time.Now()) }

func (a *arena) usageAt(now time.Time) (quota.Usage, error) {
	for _, u := range a.meter.SnapshotAt(now) {
		if u.Model == a.model.ID && u.Region == a.model.Region {
			return u, nil
		}
	}
	return quota.Usage{}, fmt.Errorf("bench: the quota meter of %s has no counters for %s in %s", a.c.Name, a.model.ID, a.model.Region)
}

// offer sends each call at its arrival time, whatever happened to the
// earlier ones (open loop), and waits for all of them.
func (a *arena) offer(ctx context.Context, start time.Time, calls []Call, deadline time.Duration) {
	openLoop(ctx, start, calls, func(c Call) {
		r := a.call(ctx, start.Add(c.At), c, deadline)
		a.mu.Lock()
		a.results[c.Index] = r
		a.mu.Unlock()
		a.finished.Add(1)
	})
}

// openLoop calls send for each call, on a goroutine of its own, at
// start + its arrival time, whatever happened to the earlier ones (an
// open loop), until ctx ends; it returns when every send has returned.
func openLoop(ctx context.Context, start time.Time, calls []Call, send func(Call)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for _, c := range calls {
		t.Reset(time.Until(start.Add(c.At)))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wg.Go(func() { send(c) })
	}
}

func (a *arena) call(ctx context.Context, arrived time.Time, c Call, deadline time.Duration) callResult {
	ctx, cancel := context.WithDeadline(ctx, arrived.Add(deadline))
	defer cancel()
	in := &bedrockruntime.ConverseInput{
		ModelId:  aws.String(a.model.ID),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: c.Prompt}}}},
	}
	if c.MaxTokens > 0 {
		in.InferenceConfig = &types.InferenceConfiguration{MaxTokens: aws.Int32(int32(c.MaxTokens))}
	}
	tr := &trace{}
	_, err := a.clients[c.Index%len(a.clients)].Converse(withTrace(ctx, tr), in)
	now := time.Now()
	r := callResult{end: now, done: true, latency: now.Sub(arrived)}
	r.reply, r.requests, r.replied = tr.reply()
	if err == nil {
		r.ok = true
		return r
	}
	r.failure = failureOf(ctx, err)
	return r
}

// failureOf names what a call failed with.
func failureOf(ctx context.Context, err error) string {
	var quotaErr ratelimit.QuotaExceededError
	var api smithy.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return "deadline"
	case errors.As(err, &quotaErr):
		return "retry quota"
	case errors.As(err, &api) && api.ErrorCode() != "":
		return api.ErrorCode()
	}
	if e := keel.Explain(err); e != nil && e.Code != "" {
		return e.Code
	}
	return "other"
}

func (a *arena) outcome(cfg Config, calls []Call, small, large []int) Outcome {
	tpm := cfg.Quota
	o := Outcome{Name: a.c.Name, Replicas: len(a.clients), Offered: len(a.results), Failures: map[string]int{}, Shared: a.shared()}
	final, _ := a.usage()
	start, end := a.marks[0], a.marks[1]
	o.SettledTokens = end.settled - start.settled
	// The marks are a few microseconds off the window's edges: count the
	// refill between them.
	refill := end.at.Sub(start.at).Minutes() * float64(tpm)
	o.Refill = int64(refill)
	o.Spent = float64(o.SettledTokens) / refill
	o.InFlight = [2]int64{start.inFlight, end.inFlight}
	o.Bucket = [2]int64{start.bucket, end.bucket}
	o.Attempts = final.Requests - a.base.Requests
	o.Throttled = final.Throttled - a.base.Throttled
	if o.Attempts > 0 {
		o.ThrottlesPer100 = 100 * float64(o.Throttled) / float64(o.Attempts)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var lat, failLat, replies []time.Duration
	for i, r := range a.results {
		if r.done {
			o.PastDeadline = max(o.PastDeadline, r.latency-cfg.Deadline)
		}
		switch {
		case r.ok:
			o.Completed++
			lat = append(lat, r.latency)
			if r.replied {
				replies = append(replies, r.reply)
			}
			if !r.end.Before(start.at) && !r.end.After(end.at) {
				o.CompletedTokens += int64(calls[i].Cost)
			}
		case r.done:
			o.Failed++
			o.Failures[r.failure]++
			failLat = append(failLat, r.latency)
		default: // never sent: the run was cut short
			o.Failed++
			o.Failures["not sent"]++
		}
	}
	o.Goodput = float64(o.CompletedTokens) / refill
	slices.Sort(lat)
	o.P50, o.P99 = percentile(lat, 50), percentile(lat, 99)
	slices.Sort(replies)
	o.ReplyP99 = percentile(replies, 99)
	slices.Sort(failLat)
	o.FailP50, o.FailP99 = percentile(failLat, 50), percentile(failLat, 99)
	o.SmallCompleted, o.SmallP99 = a.quarter(small)
	o.LargeCompleted, o.LargeP99 = a.quarter(large)
	o.calls = a.records(calls)
	return o
}

// records returns what happened to each call. a.mu must be held.
func (a *arena) records(calls []Call) []CallRecord {
	out := make([]CallRecord, len(a.results))
	for i, r := range a.results {
		c := calls[i]
		out[i] = CallRecord{Contender: a.c.Name, Index: i, At: c.At, InputTokens: c.InputTokens, MaxTokens: c.MaxTokens,
			Reserve: c.Reserve, Cost: c.Cost, Completed: r.ok, Failure: r.failure, Requests: r.requests}
		if r.done {
			out[i].Latency = &r.latency
		} else {
			out[i].Failure = "not sent" // the run was cut short
		}
		if r.replied {
			out[i].Reply = &r.reply
		}
	}
	return out
}

// quarter returns the share of the calls idx that completed and the 99th
// percentile latency of those that did. a.mu must be held.
func (a *arena) quarter(idx []int) (float64, time.Duration) {
	if len(idx) == 0 {
		return 0, 0
	}
	var lat []time.Duration
	for _, i := range idx {
		if a.results[i].ok {
			lat = append(lat, a.results[i].latency)
		}
	}
	slices.Sort(lat)
	return float64(len(lat)) / float64(len(idx)), percentile(lat, 99)
}

// percentile is the nearest-rank percentile of sorted durations; 0 for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}
