package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/batch"
	"github.com/keel-run/keel/internal/emulator/scenario"
)

// quickstartQuota is batch-quickstart.yaml's tokens-per-minute quota.
const quickstartQuota = 200_000

// quickstartScenario is examples/scenarios/batch-quickstart.yaml's quota
// and rules, the README's quick start: Sonnet 4.5 at 200,000 tokens a
// minute, 3 % random throttles, 2 % 503s, 1 % ModelNotReady, 150 ms + up to
// 350 ms of latency.
const quickstartScenario = `
quotas:
  - model: "*anthropic.claude-sonnet-*"
    tokens_per_minute: 200000
rules:
  - name: flaky
    model: "*claude*"
    errors:
      - code: ThrottlingException
        probability: 0.03
      - code: ServiceUnavailableException
        probability: 0.02
      - code: ModelNotReadyException
        probability: 0.01
    latency:
      fixed: 150ms
      jitter: 350ms
`

// noiseRecordsPerSecond is how many records the noise case writes per
// second of Duration, so the traffic lasts the whole Duration: the quick
// start finishes at most 15 a second, but records that fail at once (an
// open circuit breaker) have been seen to use up 100 a second.
const noiseRecordsPerSecond = 200

// noiseSeriesEvery is the spacing of NoiseResult.Series.
const noiseSeriesEvery = 10 * time.Second

// noiseMarks are the moments NoiseResult.At reports the ratio at, besides
// the end.
var noiseMarks = []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute}

// noise runs the noise case: steady batch traffic on the quick start's
// scenario for Duration, with a learning keel, sampling its limit every
// second.
func (l *learner) noise(ctx context.Context) (*NoiseResult, error) {
	emu, k, err := l.startScenario(quickstartScenario)
	if err != nil {
		return nil, err
	}
	defer emu.close()
	in, err := l.input(int(l.cfg.Duration.Seconds()*noiseRecordsPerSecond) + len(l.prompts))
	if err != nil {
		return nil, err
	}
	stop, ended := make(chan struct{}), make(chan struct{})
	var samples []limitSample
	sampled := make(chan struct{})
	start := time.Now()
	go func() {
		// Sample every second while traffic is offered, then stop starting
		// records.
		defer close(sampled)
		defer close(stop)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ended: // the run ended first (it failed)
				return
			case now := <-t.C:
				at := now.Sub(start)
				_, _, throttled, _ := emu.counts()
				samples = append(samples, limitSample{at: at, limit: learnedLimit(k), throttled: throttled})
				if at >= l.cfg.Duration {
					return
				}
			}
		}
	}()
	o, err := l.run(ctx, CaseNoise, batchRun{k: k, in: in, out: filepath.Join(l.dir, "noise.jsonl"), stop: stop,
		cap: l.cfg.Duration + l.cfg.sizes.noiseDrain})
	close(ended)
	<-sampled
	if err != nil {
		return nil, err
	}
	attempts, injected, throttled, _ := emu.counts()
	return noiseResult(quickstartQuota, l.cfg.Duration, samples, attempts, injected, throttled, o), nil
}

// resume runs the resume case: the quick start unbroken, then, for each
// kill point, on a fresh emulator killed there and resumed by a new keel
// and runner.
func (l *learner) resume(ctx context.Context) (*ResumeResult, error) {
	sz := l.cfg.sizes
	in, err := l.input(min(sz.resumeRecords, len(l.prompts)))
	if err != nil {
		return nil, err
	}
	sc, err := scenario.Parse([]byte(quickstartScenario))
	if err != nil {
		return nil, err
	}
	emu, k, err := l.startLearning(sc)
	if err != nil {
		return nil, err
	}
	defer emu.close()
	all, err := l.run(ctx, CaseResume, batchRun{k: k, in: in, out: filepath.Join(l.dir, "unbroken.jsonl"), cap: sz.runCap, label: "unbroken"})
	if err != nil {
		return nil, err
	}
	res := &ResumeResult{Quota: quickstartQuota, Records: all.sum.Total, AllSeconds: all.wall.Seconds(), UnbrokenStalled: all.stalled}
	kills := []resumeKill{{name: "at " + sz.resumeKill.String(), at: sz.resumeKill}, {name: fmt.Sprintf("after %d records", sz.resumeAfter), records: sz.resumeAfter}}
	for _, kill := range kills {
		r, err := l.killAndResume(ctx, sc, in, kill, all)
		if err != nil {
			return nil, err
		}
		res.Kills = append(res.Kills, r)
	}
	return res, nil
}

// resumeKill is when the resume case abandons a run: at a time, or after a
// number of records.
type resumeKill struct {
	name    string
	at      time.Duration
	records int
}

// killAndResume runs the batch on a fresh emulator, abandons it at kill (as
// kill -9 would), and resumes it with a new keel and runner on the same
// files and the same emulator, whose bucket the first run spent. all is the
// unbroken run, whose time after the same point the resumed run is
// compared with.
func (l *learner) killAndResume(ctx context.Context, sc *scenario.Scenario, in string, kill resumeKill, all batchOutcome) (ResumeKill, error) {
	sz := l.cfg.sizes
	emu, k, err := l.startLearning(sc)
	if err != nil {
		return ResumeKill{}, err
	}
	defer emu.close()
	out := filepath.Join(l.dir, fmt.Sprintf("killed%d.jsonl", l.files.Add(1)))
	br := batchRun{k: k, in: in, out: out, cap: sz.runCap, abandonAfter: kill.records, label: "killed " + kill.name}
	if kill.at > 0 {
		br.cap = kill.at
	}
	killed, err := l.run(ctx, CaseResume, br)
	if err != nil {
		return ResumeKill{}, err
	}
	if err := ctx.Err(); err != nil {
		return ResumeKill{}, err
	}
	r := ResumeKill{Kill: kill.name, KillSeconds: killed.wall.Seconds()}
	// The unbroken run's time after the same point.
	from, ok := kill.at, true
	if kill.records > 0 {
		from, ok = nthEnd(all.start, all.ends, kill.records)
	}
	if ok && !all.stalled {
		r.TailSeconds = max(all.wall-from, 0).Seconds()
	}
	// A new process: a new keel and runner, the same files and emulator,
	// once the killed run's calls still in flight have ended (a process
	// takes longer to start again), so that what the bucket holds then is
	// all the resumed run has. The runner hints the limits the killed run
	// kept in its state file.
	idle := time.NewTimer(resumeIdleWait)
	select {
	case <-emu.rn.Server.Idle():
	case <-idle.C:
	}
	idle.Stop()
	if r.HintedLimit, err = keptLimit(out + ".state"); err != nil {
		return ResumeKill{}, err
	}
	if k, err = newKeel(emu.rn.URL, 0); err != nil {
		return ResumeKill{}, err
	}
	r.BucketAtResume = emu.available()
	attempts0, _, throttled0, settled0 := emu.counts()
	resumed, err := l.run(ctx, CaseResume, batchRun{k: k, in: in, out: out, cap: sz.runCap, label: "resumed " + kill.name})
	if err != nil {
		return ResumeKill{}, err
	}
	attempts, _, throttled, settled := emu.counts()
	r.Attempts, r.QuotaThrottles = attempts-attempts0, throttled-throttled0
	r.BoundSeconds = idealTime(settled-settled0-r.BucketAtResume, quickstartQuota, 0).Seconds() // a debt is repaid first
	r.Remaining = resumed.sum.Total - resumed.sum.Before
	r.ResumedSeconds = resumed.wall.Seconds()
	r.Stalled = resumed.stalled
	r.Ratio = ratio(r.ResumedSeconds, r.TailSeconds)
	r.BoundRatio = ratio(r.ResumedSeconds, r.BoundSeconds)
	r.FinalLimit = learnedLimit(k)
	return r, nil
}

// resumeIdleWait bounds the wait for a killed run's calls to end: the
// quick start's latency is at most 500 ms.
const resumeIdleWait = 5 * time.Second

// keptLimit is the largest limit a batch's state file keeps (see
// batch.State.Limits); 0 when it keeps none.
func keptLimit(path string) (int64, error) {
	st, err := batch.OpenState(path)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	limits, err := st.Limits()
	var n int64
	for _, l := range limits {
		n = max(n, l.TokensPerMinute)
	}
	return n, err
}

// tightQuota and tightScenario are issue 16's stall: 50,000 tokens a
// minute, 100 to 300 ms of latency, no faults.
const tightQuota = 50_000

const tightScenario = `
quotas:
  - model: "*anthropic.claude-sonnet-4-5*"
    tokens_per_minute: 50000
rules:
  - name: latency
    latency:
      fixed: 100ms
      jitter: 200ms
`

// tight runs the tight case: tightRecords of the quick start's prompts
// against a 50,000-token quota, with a learning keel.
func (l *learner) tight(ctx context.Context) (*TightResult, error) {
	emu, k, err := l.startScenario(tightScenario)
	if err != nil {
		return nil, err
	}
	defer emu.close()
	in, err := l.input(l.cfg.sizes.tightRecords)
	if err != nil {
		return nil, err
	}
	levels := emu.sampleLevels()
	o, err := l.run(ctx, CaseTight, batchRun{k: k, in: in, out: filepath.Join(l.dir, "tight.jsonl"), cap: l.cfg.sizes.runCap})
	samples := levels()
	if err != nil {
		return nil, err
	}
	emu.mu.Lock()
	idle := idleWithRoom(samples, emu.arrivals)
	emu.mu.Unlock()
	_, _, _, settled := emu.counts()
	ideal := idealTime(settled, tightQuota, tightQuota) // the bucket starts full: a minute of quota
	return &TightResult{Quota: tightQuota, Records: o.sum.Total, Succeeded: o.sum.Succeeded, Failed: o.sum.Failed,
		SettledTokens: settled, WallSeconds: o.wall.Seconds(), IdealSeconds: ideal.Seconds(),
		Ratio:               ratio(o.wall.Seconds(), ideal.Seconds()),
		LongestGapSeconds:   longestGap(o.start, o.ends, o.start.Add(o.wall)).Seconds(),
		IdleWithRoomSeconds: idle.Seconds(),
		FinalLimit:          learnedLimit(k), Stalled: o.stalled}, nil
}

// shapesQuota is issue 16's bucket-shape measure: 300,000 tokens a minute.
const shapesQuota = 300_000

// Shape prompts and max tokens, as issue 16 measured them.
const (
	shapeMinWords = 50
	shapeMaxWords = 2000
	shapeMaxToken = 1024
)

// A BucketShape is how the emulator's token bucket holds and refills its
// quota: the scenario's quota-entry settings (burst, start_level,
// refill_every), written as YAML lines; none is the emulator's default, a
// minute's burst starting full, refilled continuously.
type BucketShape struct {
	Key      string // names the shape on the command line (--shapes)
	Name     string
	Settings string
}

// BucketShapes are the shapes case's shapes, in table order.
var BucketShapes = []BucketShape{
	{Key: "full", Name: "1m burst, full", Settings: ""},
	{Key: "10s-empty", Name: "10s burst, empty", Settings: "burst: 10s\n    start_level: 0\n"},
	{Key: "1s", Name: "1s burst", Settings: "burst: 1s\n"},
	{Key: "minute-refill", Name: "refill each minute", Settings: "refill_every: 1m\n"},
}

// The shapes case's keels: told the quota, or learning it.
const (
	KeelTold     = "told"
	KeelLearning = "learning"
)

// ShapeKeels are the shapes case's keels, in table order.
var ShapeKeels = []string{KeelTold, KeelLearning}

func keelName(told bool) string {
	if told {
		return KeelTold
	}
	return KeelLearning
}

// shapes runs the shapes case: for each bucket shape of the config's
// Shapes, a batch with the quota told and one learning it (those of its
// Keels), each against an emulator of its own.
func (l *learner) shapes(ctx context.Context) (*ShapesResult, error) {
	in, err := l.shapeInput()
	if err != nil {
		return nil, err
	}
	res := &ShapesResult{Quota: shapesQuota, Records: l.cfg.sizes.shapeRecords}
	for _, s := range BucketShapes {
		if !slices.Contains(l.cfg.Shapes, s.Key) {
			continue
		}
		sc, err := scenario.Parse([]byte(fmt.Sprintf("quotas:\n  - model: \"*anthropic.claude-sonnet-4-5*\"\n    tokens_per_minute: %d\n    %s", shapesQuota, s.Settings)))
		if err != nil {
			return nil, fmt.Errorf("shape %q: the emulator refuses its settings (%s): %w", s.Name, oneLine(s.Settings), err)
		}
		for _, told := range []bool{true, false} {
			if !slices.Contains(l.cfg.Keels, keelName(told)) {
				continue
			}
			row, err := l.shape(ctx, s, sc, told, in)
			if err != nil {
				return nil, err
			}
			res.Rows = append(res.Rows, row)
		}
	}
	return res, nil
}

func (l *learner) shape(ctx context.Context, s BucketShape, sc *scenario.Scenario, told bool, in string) (ShapeRow, error) {
	emu, err := startEmulator(sc, l.cfg.Seed, l.cfg.sizes.shapeSpeed)
	if err != nil {
		return ShapeRow{}, err
	}
	defer emu.close()
	row := ShapeRow{Shape: s.Name, Keel: keelName(told)}
	var tell int64
	if told {
		tell = shapesQuota
	}
	k, err := newKeel(emu.rn.URL, tell)
	if err != nil {
		return ShapeRow{}, err
	}
	o, err := l.run(ctx, CaseShapes, batchRun{k: k, in: in, out: filepath.Join(l.dir, fmt.Sprintf("shape%d.jsonl", l.files.Add(1))),
		cap: l.cfg.sizes.runCap, label: row.Keel + ", " + s.Name})
	if err != nil {
		return ShapeRow{}, err
	}
	attempts, _, throttled, settled := emu.counts()
	need := idealTime(settled, shapesQuota, 0)
	row.Succeeded, row.Failed, row.Stalled = o.sum.Succeeded, o.sum.Failed, o.stalled
	row.Attempts, row.Throttles, row.ThrottlesPer100 = attempts, throttled, per100(throttled, attempts)
	row.WallSeconds, row.NeedSeconds = o.wall.Seconds(), need.Seconds()
	row.Ratio = ratio(row.WallSeconds, row.NeedSeconds)
	row.FinalLimit = learnedLimit(k)
	return row, nil
}

// shapeInput writes the shapes case's records: prompts of shapeMinWords to
// shapeMaxWords words drawn from the seed, each with shapeMaxToken max
// tokens.
func (l *learner) shapeInput() (string, error) {
	g := rand.New(rand.NewPCG(uint64(l.cfg.Seed), 0x5a9e))
	var b bytes.Buffer
	for i := range l.cfg.sizes.shapeRecords {
		n := shapeMinWords + g.IntN(shapeMaxWords-shapeMinWords+1)
		line, err := json.Marshal(map[string]any{"id": fmt.Sprintf("s%04d", i), "prompt": prompt(g, n), "maxTokens": shapeMaxToken})
		if err != nil {
			return "", err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return l.write(b.Bytes())
}

// oneLine writes a shape's settings on one line: "burst: 10s, start_level:
// 0", or "none" for the emulator's defaults.
func oneLine(settings string) string {
	var parts []string
	for _, ln := range strings.Split(settings, "\n") {
		if ln = strings.TrimSpace(ln); ln != "" {
			parts = append(parts, ln)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// ShapeKeys are the keys of BucketShapes, in table order.
func ShapeKeys() []string {
	var keys []string
	for _, s := range BucketShapes {
		keys = append(keys, s.Key)
	}
	return keys
}
