package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/batch"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/quota"
	"github.com/keel-run/keel/internal/emulator/scenario"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/keelx"
)

// The learn bench's cases, in the order they run and print.
const (
	CaseNoise  = "noise"
	CaseResume = "resume"
	CaseTight  = "tight"
	CaseShapes = "shapes"
)

// LearnCases are the learn bench's cases in run order.
var LearnCases = []string{CaseNoise, CaseResume, CaseTight, CaseShapes}

// DefaultPrompts is the quick start's input file, read from the working
// directory (the repository's root).
const DefaultPrompts = "examples/prompts.jsonl"

// learnRegion is the region every learn case calls, as `keel batch run
// --emulator` does by default.
const learnRegion = "us-east-1"

// learnModel is the model every learn case names: Claude Sonnet 4.5
// (burndown 5), the model the learner's figures in docs/bench.md were
// measured on, kept so they stay comparable across the learner's rewrites.
const learnModel = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

// LearnConfig configures a learn bench. The zero value of each field means
// its default.
type LearnConfig struct {
	// Cases names the cases to run, in any order (they run in LearnCases'
	// order). Empty: all.
	Cases []string
	// Duration is how long the noise case sends traffic. Zero: 3 min.
	Duration time.Duration
	// Seed seeds the emulators (replies and the scenarios' random faults)
	// and the shapes case's prompts.
	Seed int64
	// Prompts is the quick start's input, simple-format JSONL records.
	// Empty: DefaultPrompts.
	Prompts string
	// Shapes names the shapes case's bucket shapes by Key (BucketShapes),
	// in any order (they run in table order). Empty: all.
	Shapes []string
	// Keels names the shapes case's keels (ShapeKeels: told, learning).
	// Empty: both.
	Keels []string
	// Progress, when set, is called about once a second while a case
	// runs, from one goroutine. Nil: not called.
	Progress func(LearnProgress)

	// sizes scales the cases down for tests; zero: defaultLearnSizes.
	sizes learnSizes
}

// learnSizes are the sizes, times and caps of the cases other than the noise
// case's duration. Tests shrink them.
type learnSizes struct {
	noiseDrain    time.Duration // after Duration, how long records in flight may take before they are abandoned
	resumeKill    time.Duration // when the resume case's first killed run is abandoned
	resumeAfter   int           // after how many records its second killed run is abandoned
	resumeRecords int           // records of the resume case (the first of the prompts)
	tightRecords  int           // records of the tight case
	shapeRecords  int           // records of each shapes run
	shapeSpeed    float64       // the emulator's model latency scale in the shapes case
	runCap        time.Duration // the longest any one batch run may take before it is abandoned as stalled
}

var defaultLearnSizes = learnSizes{
	// Records in flight when the noise case stops starting them take a
	// few latencies, plus quota waits; 30 s ends even a stuck one.
	noiseDrain: 30 * time.Second,
	// Issue 16's reproduction: the quick start killed 2 s in.
	resumeKill: 2 * time.Second,
	// Issue 16's resumed run had 249 of 300 records left; today 2 s
	// finishes most of the quick start, so a kill after 50 records leaves
	// what the issue measured.
	resumeAfter: 50,
	// The quick start's whole input.
	resumeRecords: 300,
	// Issue 16's 50,000-token reproduction sent 200 records.
	tightRecords: 200,
	// Issue 16's bucket-shape measure sent 150 records.
	shapeRecords: 150,
	// Replies take real time, so a reservation is held for the reply as
	// Bedrock holds it.
	shapeSpeed: 1,
	// A stalled run (issue 16: ETA 24 min for 92 records) is cut off here:
	// every healthy run of these sizes ends in under two minutes.
	runCap: 5 * time.Minute,
}

// LearnProgress is how far a running learn bench has got.
type LearnProgress struct {
	Case    string        // the case running
	Run     string        // the run within it ("killed", "told, 10s burst empty"), or ""
	Elapsed time.Duration // since the run started
	Done    int           // records finished by this run
	Limit   int64         // the learned limit now, tokens per minute; 0: none yet
}

// String describes p in one line, as keel bench learn shows it on a
// terminal.
func (p LearnProgress) String() string {
	what := p.Case
	if p.Run != "" {
		what += " (" + p.Run + ")"
	}
	limit := "none yet"
	if p.Limit > 0 {
		limit = thousands(p.Limit) + " tokens/min"
	}
	return fmt.Sprintf("%s: %s, %s records done, limit %s", what, p.Elapsed.Round(time.Second), thousands(int64(p.Done)), limit)
}

// Limits on a LearnConfig.
const (
	MinLearnDuration = 10 * time.Second // the smallest noise run that samples a learned limit more than a few times
	MaxLearnDuration = 30 * time.Minute // long enough to watch a learner settle; bounded so a typo is not an afternoon
)

func (c LearnConfig) withDefaults() LearnConfig {
	c.Duration = cmp.Or(c.Duration, 3*time.Minute)
	c.Prompts = cmp.Or(c.Prompts, DefaultPrompts)
	if len(c.Cases) == 0 {
		c.Cases = LearnCases
	}
	if len(c.Shapes) == 0 {
		c.Shapes = ShapeKeys()
	}
	if len(c.Keels) == 0 {
		c.Keels = ShapeKeels
	}
	if c.sizes == (learnSizes{}) {
		c.sizes = defaultLearnSizes
	}
	return c
}

// CheckLearn reports what is wrong with cfg, as RunLearn would, without
// running anything or reading files.
func CheckLearn(cfg LearnConfig) error {
	cfg = cfg.withDefaults()
	for _, n := range cfg.Cases {
		if !slices.Contains(LearnCases, n) {
			return fmt.Errorf("bench: unknown case %q; choose from %s", n, strings.Join(LearnCases, ", "))
		}
	}
	keys := ShapeKeys()
	for _, n := range cfg.Shapes {
		if !slices.Contains(keys, n) {
			return fmt.Errorf("bench: unknown bucket shape %q; choose from %s", n, strings.Join(keys, ", "))
		}
	}
	for _, n := range cfg.Keels {
		if !slices.Contains(ShapeKeels, n) {
			return fmt.Errorf("bench: unknown keel %q; choose from %s", n, strings.Join(ShapeKeels, ", "))
		}
	}
	if cfg.Duration < MinLearnDuration || cfg.Duration > MaxLearnDuration {
		return fmt.Errorf("bench: duration %s: want from %s to %s", cfg.Duration, MinLearnDuration, MaxLearnDuration)
	}
	return nil
}

// LearnResult is what a learn bench measured; a case not run is nil.
type LearnResult struct {
	Seed   int64         `json:"seed"`
	Noise  *NoiseResult  `json:"noise,omitempty"`
	Resume *ResumeResult `json:"resume,omitempty"`
	Tight  *TightResult  `json:"tight,omitempty"`
	Shapes *ShapesResult `json:"shapes,omitempty"`
}

// RunLearn runs the cases cfg names, one after the other, each against
// emulators of its own, in real time. A case that cannot be set up (a
// scenario the emulator refuses) is an error; a run that stalls ends at its
// cap and is reported as stalled.
func RunLearn(ctx context.Context, cfg LearnConfig) (*LearnResult, error) {
	if err := CheckLearn(cfg); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	prompts, err := readPrompts(cfg.Prompts)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keel-bench-learn-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	l := &learner{cfg: cfg, prompts: prompts, dir: dir}
	res := &LearnResult{Seed: cfg.Seed}
	for _, c := range LearnCases {
		if !slices.Contains(cfg.Cases, c) {
			continue
		}
		switch c {
		case CaseNoise:
			res.Noise, err = l.noise(ctx)
		case CaseResume:
			res.Resume, err = l.resume(ctx)
		case CaseTight:
			res.Tight, err = l.tight(ctx)
		case CaseShapes:
			res.Shapes, err = l.shapes(ctx)
		}
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return nil, fmt.Errorf("bench: case %s: %w", c, err)
		}
	}
	return res, nil
}

// learner runs the cases of one learn bench.
type learner struct {
	cfg     LearnConfig
	prompts [][]byte // the prompts file's lines, each a JSON object
	dir     string   // scratch: inputs, results, state files
	files   atomic.Int64
}

// readPrompts reads a simple-format JSONL file's lines, each a JSON object.
func readPrompts(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: the quick start's prompts: %w (run from the repository's root, or name the file)", err)
	}
	var lines [][]byte
	for i, ln := range bytes.Split(b, []byte("\n")) {
		if ln = bytes.TrimSpace(ln); len(ln) == 0 {
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(ln, &obj); err != nil {
			return nil, fmt.Errorf("bench: %s:%d: %w", path, i+1, err)
		}
		lines = append(lines, ln)
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("bench: %s holds no records", path)
	}
	return lines, nil
}

// input writes n records to a new file in the scratch directory, cycling
// through the prompts, each with a fresh id (r000000, ...), and returns its
// path.
func (l *learner) input(n int) (string, error) {
	var b bytes.Buffer
	for i := range n {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(l.prompts[i%len(l.prompts)], &obj); err != nil {
			return "", err
		}
		obj["id"] = json.RawMessage(fmt.Sprintf("%q", fmt.Sprintf("r%06d", i)))
		line, err := json.Marshal(obj)
		if err != nil {
			return "", err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return l.write(b.Bytes())
}

// write puts b in a new file in the scratch directory.
func (l *learner) write(b []byte) (string, error) {
	path := filepath.Join(l.dir, fmt.Sprintf("in%d.jsonl", l.files.Add(1)))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return path, nil
}

// learnEmulator is an in-process emulator with a scenario's quota meter
// and counters of what it answered.
type learnEmulator struct {
	rn       *emulator.Running
	meter    *quota.Meter
	attempts atomic.Int64 // inference requests answered, however
	mu       sync.Mutex
	injected map[string]int64 // errors the scenario's rules injected, by code
	arrivals []arrival        // every request that reached the quota check, in order
}

// An arrival is a request reaching the emulator's quota check: when, and
// what it asked the bucket to hold (input + max tokens).
type arrival struct {
	at   time.Time
	hold int64
}

// startEmulator serves sc (its rules and quotas) on 127.0.0.1 with model
// latency scaled by speed (0: none, as `keel batch run --emulator`).
func startEmulator(sc *scenario.Scenario, seed int64, speed float64) (*learnEmulator, error) {
	in := scenario.NewInjector(sc, seed, nil)
	e := &learnEmulator{meter: quota.NewMeter(nil, sc.Quotas), injected: map[string]int64{}}
	s, err := emulator.New(emulator.Options{
		Seed:          seed,
		Speed:         speed,
		DefaultRegion: learnRegion,
		Planner: func(r fault.Request) fault.Plan {
			p := in.Plan(r)
			if p.Error != "" {
				e.mu.Lock()
				e.injected[p.Error]++
				e.mu.Unlock()
			}
			return p
		},
		Admit: func(r emulator.AdmitRequest) *emulator.Rejection {
			e.mu.Lock()
			e.arrivals = append(e.arrivals, arrival{at: time.Now(), hold: int64(max(r.InputTokens, 0)) + int64(max(r.MaxTokens, 0))})
			e.mu.Unlock()
			return (*emulator.Rejection)(e.meter.Admit(quota.AdmitRequest{Model: r.Model, Region: r.Region,
				Operation: r.Operation, InputTokens: r.InputTokens, MaxTokens: r.MaxTokens}))
		},
		Settle: func(r emulator.SettleRequest) {
			e.meter.Settle(quota.SettleRequest{Model: r.Model, Region: r.Region, Operation: r.Operation,
				InputTokens: r.InputTokens, CacheWriteTokens: r.CacheWriteTokens, OutputTokens: r.OutputTokens,
				Burndown: r.Burndown, MaxTokens: r.MaxTokens})
		},
		Observe: func(emulator.Outcome) { e.attempts.Add(1) },
	})
	if err != nil {
		return nil, err
	}
	if e.rn, err = s.Listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *learnEmulator) close() { e.rn.Close() }

// counts returns the attempts, the injected throttles, the quota meter's
// throttles and the tokens it settled, summed over its (model, region)
// pairs.
func (e *learnEmulator) counts() (attempts, injected, quotaThrottles, settled int64) {
	e.mu.Lock()
	injected = e.injected["ThrottlingException"]
	e.mu.Unlock()
	for _, u := range e.meter.Snapshot() {
		quotaThrottles += u.Throttled
		settled += u.TokensSettled
	}
	return e.attempts.Load(), injected, quotaThrottles, settled
}

// available is what the emulator's token buckets hold now, summed over its
// (model, region) pairs (the cases call one).
func (e *learnEmulator) available() int64 {
	var n int64
	for _, u := range e.meter.Snapshot() {
		if u.TokensAvailable != nil {
			n += *u.TokensAvailable
		}
	}
	return n
}

// startScenario parses the scenario text and starts it with startLearning.
func (l *learner) startScenario(text string) (*learnEmulator, *keel.Keel, error) {
	sc, err := scenario.Parse([]byte(text))
	if err != nil {
		return nil, nil, err
	}
	return l.startLearning(sc)
}

// startLearning starts an emulator playing sc and a keel with its defaults
// (learning the quota) against it; the caller closes the emulator.
func (l *learner) startLearning(sc *scenario.Scenario) (*learnEmulator, *keel.Keel, error) {
	emu, err := startEmulator(sc, l.cfg.Seed, 0)
	if err != nil {
		return nil, nil, err
	}
	k, err := newKeel(emu.rn.URL, 0)
	if err != nil {
		emu.close()
		return nil, nil, err
	}
	return emu, k, nil
}

// newKeel returns keel with its defaults against the emulator at url; told,
// when above zero, is the tokens-per-minute quota written in its quotas:
// section (else the governor learns one).
func newKeel(url string, told int64) (*keel.Keel, error) {
	o := keel.Options{Endpoint: url}
	if told > 0 {
		tellQuota(&o, learnModel, learnRegion, told)
	}
	return keel.New(awsConfig(Endpoint{Region: learnRegion}), o)
}

// learnedLimit is the limit k's governor holds for the bench's model now,
// tokens per minute; 0 while it has none.
func learnedLimit(k *keel.Keel) int64 {
	var limit int64
	for _, q := range k.Quotas() {
		limit = max(limit, q.Limit) // every case calls one target
	}
	return limit
}

// timedDoer is keel, recording when each call that succeeded returned, and
// calling cancel (when set) once cancelAt have.
type timedDoer struct {
	*keel.Keel
	cancelAt int
	cancel   func()
	mu       sync.Mutex
	ends     []time.Time
}

func (d *timedDoer) Do(ctx context.Context, call *engine.Call) (*http.Response, *engine.Report, error) {
	resp, rep, err := keelx.Engine(d.Keel).Do(ctx, call)
	if err == nil {
		d.mu.Lock()
		d.ends = append(d.ends, time.Now())
		if d.cancel != nil && len(d.ends) >= d.cancelAt {
			d.cancel()
		}
		d.mu.Unlock()
	}
	return resp, rep, err
}

// Governor is keel's quota governor, which the batch runner hints the
// limits a killed run learned to when it resumes.
func (d *timedDoer) Governor() *admission.Governor { return keelx.Engine(d.Keel).Governor() }

func (d *timedDoer) done() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ends)
}

// batchRun is one run of the batch runner in a learn case.
type batchRun struct {
	k    *keel.Keel
	in   string // input file
	out  string // results file; its state file is out + ".state"
	stop <-chan struct{}
	cap  time.Duration // the run is abandoned after this long
	// abandonAfter, when above zero, abandons the run once that many calls
	// have succeeded.
	abandonAfter int
	label        string // LearnProgress.Run
}

// batchOutcome is what a batchRun did.
type batchOutcome struct {
	sum     *batch.Summary
	start   time.Time
	wall    time.Duration
	ends    []time.Time // of the calls that succeeded
	stalled bool        // abandoned at the cap (or, with abandonAfter, as asked)
}

// run runs r through the batch runner as `keel batch run --emulator` does
// (the governor paces it), reporting progress under name, and abandons it
// at its cap or when ctx ends.
func (l *learner) run(ctx context.Context, name string, r batchRun) (batchOutcome, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cap)
	defer cancel()
	d := &timedDoer{Keel: r.k}
	if r.abandonAfter > 0 {
		d.cancelAt, d.cancel = r.abandonAfter, cancel
	}
	start := time.Now()
	stop := l.progress(name, r.label, start, d.done, r.k)
	sum, err := batch.Run(ctx, batch.Options{In: r.in, Out: r.out, Model: learnModel, Region: learnRegion, Doer: d, Stop: r.stop})
	wall := time.Since(start)
	stop()
	o := batchOutcome{sum: sum, start: start, wall: wall, ends: d.ends}
	if err != nil && ctx.Err() != nil {
		o.stalled = true
		err = nil
	}
	if err != nil {
		return o, err
	}
	if sum == nil {
		return o, fmt.Errorf("batch run %s ended without a summary", r.in)
	}
	return o, nil
}

// progress reports a run's progress about once a second until the
// returned stop is called.
func (l *learner) progress(name, run string, start time.Time, done func() int, k *keel.Keel) (stop func()) {
	if l.cfg.Progress == nil {
		return func() {}
	}
	// reportProgress's ticker, reporting a LearnProgress instead of its own.
	return reportProgress(func(Progress) {
		l.cfg.Progress(LearnProgress{Case: name, Run: run, Elapsed: time.Since(start), Done: done(), Limit: learnedLimit(k)})
	}, Progress{}, start, func() int { return 0 })
}

// levelSample is what the emulator's token buckets held at one moment.
type levelSample struct {
	at    time.Time
	level int64
}

// sampleLevels records what e's buckets hold every sampleEvery until the
// returned stop is called, which returns the samples.
func (e *learnEmulator) sampleLevels() (stop func() []levelSample) {
	var samples []levelSample
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			samples = append(samples, levelSample{at: time.Now(), level: e.available()})
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() []levelSample {
		close(quit)
		<-done
		return samples
	}
}

// sampleEvery is how often the tight case reads the emulator's bucket: a
// tenth of the shortest stall worth reporting (a second).
const sampleEvery = 100 * time.Millisecond

// idleWithRoom is the longest time, before the last request arrived, in
// which no request reached the quota check while the bucket (as sampled)
// held at least the largest hold any request of the run asked for: keel
// idle while Bedrock could have served any of its calls, the stall issue 16
// reports (a learned limit of 3,824 tokens/min while the bucket held 48,908
// of 50,000). Time the bucket spends repaying a debt is not idle time: no
// client could send then.
func idleWithRoom(samples []levelSample, arrivals []arrival) time.Duration {
	if len(arrivals) == 0 {
		return 0
	}
	var big int64
	for _, a := range arrivals {
		big = max(big, a.hold)
	}
	last := arrivals[len(arrivals)-1].at
	var longest time.Duration
	var since time.Time // start of the current stretch with room and no arrival
	next := 0           // the first arrival after the previous sample
	for _, s := range samples {
		if s.at.After(last) {
			break
		}
		arrived := false
		for next < len(arrivals) && !arrivals[next].at.After(s.at) {
			arrived = true
			next++
		}
		switch {
		case s.level < big:
			since = time.Time{}
		case arrived || since.IsZero():
			since = s.at
		default:
			longest = max(longest, s.at.Sub(since))
		}
	}
	return longest
}
