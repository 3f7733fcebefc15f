package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/batch"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/keelx"
)

// DefaultCacheModel is the model of the cache bench: any model does, the
// emulator answers each alike.
const DefaultCacheModel = "anthropic.claude-3-haiku-20240307-v1:0"

// Defaults of CacheConfig: a run of a few seconds.
const (
	// defaultCoalesceCalls is the "100 identical concurrent calls".
	defaultCoalesceCalls = 100
	// defaultCoalesceLatency holds the upstream's reply long enough that
	// every call has arrived before it, on a loaded machine too.
	defaultCoalesceLatency = time.Second
	// defaultRecords and defaultDistinct are the batch rerun: 1,000
	// records, each prompt repeated.
	defaultRecords, defaultDistinct = 1000, 10
	// defaultHitCalls is enough calls for a stable p99 of the hit path.
	defaultHitCalls = 2000
	// maxCacheCalls bounds every count: the bench runs in one process.
	maxCacheCalls = 100_000
	// cacheMaxTokens is every call's max tokens: short replies, so the
	// hit path's figures are keel's and the SDK's work, not the reply's.
	cacheMaxTokens = 64
)

// CacheConfig configures a cache bench. The zero value of each field means
// its default.
type CacheConfig struct {
	// Calls is the identical concurrent calls of the coalescing case.
	// Zero: 100.
	Calls int
	// Latency is what the emulator adds to each reply in the coalescing
	// case. Zero: 1 s.
	Latency time.Duration
	// Records and Distinct are the batch rerun's records and the distinct
	// prompts among them. Zero: 1,000 and 10.
	Records, Distinct int
	// Hits is the sequential calls of each kind the hit path case times.
	// Zero: 2,000.
	Hits int
	// Model is the model every call names. Empty: DefaultCacheModel.
	Model string
	// Seed varies the emulator's replies.
	Seed int64
}

func (c CacheConfig) withDefaults() CacheConfig {
	c.Calls = cmp.Or(c.Calls, defaultCoalesceCalls)
	c.Latency = cmp.Or(c.Latency, defaultCoalesceLatency)
	c.Records = cmp.Or(c.Records, defaultRecords)
	c.Distinct = cmp.Or(c.Distinct, defaultDistinct)
	c.Hits = cmp.Or(c.Hits, defaultHitCalls)
	c.Model = cmp.Or(c.Model, DefaultCacheModel)
	return c
}

// CheckCache reports what is wrong with cfg, as RunCache would, without
// running anything.
func CheckCache(cfg CacheConfig) error {
	_, _, err := checkCache(cfg)
	return err
}

func checkCache(cfg CacheConfig) (CacheConfig, Model, error) {
	cfg = cfg.withDefaults()
	for _, n := range []struct {
		name string
		v    int
	}{{"calls", cfg.Calls}, {"records", cfg.Records}, {"distinct prompts", cfg.Distinct}, {"hit calls", cfg.Hits}} {
		if n.v < 1 || n.v > maxCacheCalls {
			return cfg, Model{}, fmt.Errorf("bench: %s %d: want from 1 to %d", n.name, n.v, maxCacheCalls)
		}
	}
	switch {
	case cfg.Distinct > cfg.Records:
		return cfg, Model{}, fmt.Errorf("bench: distinct prompts %d: want at most the records (%d)", cfg.Distinct, cfg.Records)
	case cfg.Latency < 0 || cfg.Latency > MaxDeadline:
		return cfg, Model{}, fmt.Errorf("bench: latency %s: want from 0 to %s", cfg.Latency, MaxDeadline)
	}
	m, err := ResolveModel(cfg.Model)
	return cfg, m, err
}

// CacheResult is what a cache bench measured.
type CacheResult struct {
	Model      string           `json:"model"`
	Seed       int64            `json:"seed"`
	Coalescing CoalesceOutcome  `json:"coalescing"`
	Batch      BatchRerun       `json:"batchRerun"`
	HitPath    HitPathLatencies `json:"hitPath"`
}

// CoalesceOutcome is the coalescing case: Calls identical calls at once to
// an upstream that holds each reply Latency, with the cache and without.
type CoalesceOutcome struct {
	Calls   int           `json:"calls"`
	Latency time.Duration `json:"-"`
	// Upstream is the requests the emulator received with the cache on;
	// UpstreamWithout without it.
	Upstream        int `json:"upstreamRequests"`
	UpstreamWithout int `json:"upstreamRequestsWithoutCache"`
	// Calls by Report.Cache, and those that failed.
	Misses    int `json:"misses"`
	Coalesced int `json:"coalesced"`
	Hits      int `json:"hits"`
	Failed    int `json:"failed"`
	// Wall and WallWithout are from the first call's start to the last's
	// end.
	Wall, WallWithout time.Duration `json:"-"`
}

// BatchRerun is the batch case: a file of Records records of Distinct
// prompts at temperature 0, run by keel's batch runner with the cache, then
// run again.
type BatchRerun struct {
	Records  int `json:"records"`
	Distinct int `json:"distinctPrompts"`
	// Upstream requests and records that succeeded, first run and rerun.
	Upstream  [2]int `json:"upstreamRequests"`
	Succeeded [2]int `json:"succeeded"`
	// Took is each run's duration.
	Took [2]time.Duration `json:"-"`
}

// HitPathLatencies is the hit path case: Calls sequential calls through
// the SDK with keel to an emulator that answers at once, each kind timed.
type HitPathLatencies struct {
	Calls int `json:"calls"`
	// Off: the cache off, every call upstream. Miss: the cache on, every
	// prompt new (the key, a lookup and a store added). Hit: the cache on,
	// one prompt asked again (no upstream request).
	Off, Miss, Hit Latencies `json:"-"`
}

// Latencies are the p50 and p99 of a set of calls.
type Latencies struct{ P50, P99 time.Duration }

func (l Latencies) json() map[string]float64 {
	return map[string]float64{"p50Us": float64(l.P50.Nanoseconds()) / 1e3, "p99Us": float64(l.P99.Nanoseconds()) / 1e3}
}

// MarshalJSON writes durations in milliseconds.
func (o CoalesceOutcome) MarshalJSON() ([]byte, error) {
	type plain CoalesceOutcome
	return json.Marshal(struct {
		plain
		Latency     int64 `json:"latencyMs"`
		Wall        int64 `json:"wallMs"`
		WallWithout int64 `json:"wallWithoutCacheMs"`
	}{plain(o), o.Latency.Milliseconds(), o.Wall.Milliseconds(), o.WallWithout.Milliseconds()})
}

// MarshalJSON writes durations in milliseconds.
func (b BatchRerun) MarshalJSON() ([]byte, error) {
	type plain BatchRerun
	return json.Marshal(struct {
		plain
		Took [2]int64 `json:"tookMs"`
	}{plain(b), [2]int64{b.Took[0].Milliseconds(), b.Took[1].Milliseconds()}})
}

// MarshalJSON writes latencies in microseconds.
func (h HitPathLatencies) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"calls": h.Calls, "cacheOff": h.Off.json(), "miss": h.Miss.json(), "hit": h.Hit.json()})
}

// RunCache runs a cache bench: the coalescing case, the batch rerun and the
// hit path, one after the other, each against emulators of its own in this
// process.
func RunCache(ctx context.Context, cfg CacheConfig) (*CacheResult, error) {
	cfg, m, err := checkCache(cfg)
	if err != nil {
		return nil, err
	}
	res := &CacheResult{Model: m.ID, Seed: cfg.Seed}
	if res.Coalescing, err = runCoalesce(ctx, cfg, m); err != nil {
		return nil, err
	}
	if res.Batch, err = runBatchRerun(ctx, cfg, m); err != nil {
		return nil, err
	}
	if res.HitPath, err = runHitPath(ctx, cfg, m); err != nil {
		return nil, err
	}
	return res, nil
}

// cacheUpstream is an emulator that holds every reply latency and counts
// the inference requests it receives.
type cacheUpstream struct {
	*emulator.Running
	requests atomic.Int64
}

func startCacheUpstream(seed int64, latency time.Duration) (*cacheUpstream, error) {
	u := &cacheUpstream{}
	opts := emulator.Options{Seed: seed, Observe: func(emulator.Outcome) { u.requests.Add(1) }}
	if latency > 0 {
		opts.Planner = func(fault.Request) fault.Plan { return fault.Plan{Latency: latency} }
	}
	var err error
	u.Running, err = emulator.Start(opts)
	return u, err
}

// cacheClient is an SDK client with keel, its response cache in memory
// caching every request (mode all) when on, sending to u.
func cacheClient(u *cacheUpstream, m Model, on bool) (*bedrockruntime.Client, *keel.Keel, error) {
	cfg := awsConfig(Endpoint{Region: m.Region})
	o := keel.Options{Endpoint: u.URL}
	if on {
		o.Cache = keel.CacheOptions{Mode: "all"}
	}
	k, err := keel.New(cfg, o)
	if err != nil {
		return nil, nil, err
	}
	return bedrockruntime.NewFromConfig(cfg, k.ClientOptions, func(o *bedrockruntime.Options) { o.BaseEndpoint = aws.String(u.URL) }), k, nil
}

// cachePrompt is the i-th distinct prompt of the bench.
func cachePrompt(i int) string { return fmt.Sprintf("Question %d: why do ships have keels?", i) }

func converseOnce(ctx context.Context, c *bedrockruntime.Client, model, prompt string) (*keel.Report, error) {
	out, err := c.Converse(ctx, &bedrockruntime.ConverseInput{
		ModelId:         aws.String(model),
		Messages:        []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: prompt}}}},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(cacheMaxTokens), Temperature: aws.Float32(0)},
	})
	if err != nil {
		return nil, err
	}
	return keel.ReportOf(out.ResultMetadata), nil
}

func runCoalesce(ctx context.Context, cfg CacheConfig, m Model) (CoalesceOutcome, error) {
	o := CoalesceOutcome{Calls: cfg.Calls, Latency: cfg.Latency}
	for _, on := range []bool{true, false} {
		u, err := startCacheUpstream(cfg.Seed, cfg.Latency)
		if err != nil {
			return o, err
		}
		client, k, err := cacheClient(u, m, on)
		if err != nil {
			u.Close()
			return o, err
		}
		var mu sync.Mutex
		outcomes := map[string]int{}
		var wg sync.WaitGroup
		start := time.Now()
		for range cfg.Calls {
			wg.Go(func() {
				rep, err := converseOnce(ctx, client, m.ID, cachePrompt(0))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					outcomes["failed"]++
					return
				}
				outcomes[rep.Cache]++
			})
		}
		wg.Wait()
		wall := time.Since(start)
		k.Close()
		u.Close()
		if on {
			o.Upstream, o.Wall = int(u.requests.Load()), wall
			o.Misses, o.Coalesced, o.Hits, o.Failed = outcomes[keel.CacheMiss], outcomes[keel.CacheCoalesced], outcomes[keel.CacheHit], outcomes["failed"]
		} else {
			o.UpstreamWithout, o.WallWithout = int(u.requests.Load()), wall
			o.Failed += outcomes["failed"]
		}
	}
	return o, ctx.Err()
}

func runBatchRerun(ctx context.Context, cfg CacheConfig, m Model) (BatchRerun, error) {
	b := BatchRerun{Records: cfg.Records, Distinct: cfg.Distinct}
	dir, err := os.MkdirTemp("", "keel-bench-cache-")
	if err != nil {
		return b, err
	}
	defer os.RemoveAll(dir)
	var in strings.Builder
	for i := range cfg.Records {
		line, _ := json.Marshal(map[string]any{"id": i, "prompt": cachePrompt(i % cfg.Distinct), "maxTokens": cacheMaxTokens, "temperature": 0})
		in.Write(line)
		in.WriteByte('\n')
	}
	inPath := filepath.Join(dir, "records.jsonl")
	if err := os.WriteFile(inPath, []byte(in.String()), 0o600); err != nil {
		return b, err
	}
	u, err := startCacheUpstream(cfg.Seed, 0)
	if err != nil {
		return b, err
	}
	defer u.Close()
	_, k, err := cacheClient(u, m, true)
	if err != nil {
		return b, err
	}
	defer k.Close()
	for run := range 2 {
		before := u.requests.Load()
		start := time.Now()
		// The rerun starts over (Restart): every record is sent again, as a
		// rerun of an evaluation would.
		sum, err := batch.Run(ctx, batch.Options{In: inPath, Out: filepath.Join(dir, "results.jsonl"), Model: m.ID, Region: m.Region,
			Doer: keelx.Engine(k), Restart: run > 0})
		if err != nil {
			return b, fmt.Errorf("bench: the batch run: %w", err)
		}
		b.Took[run] = time.Since(start)
		b.Upstream[run] = int(u.requests.Load() - before)
		b.Succeeded[run] = sum.Succeeded
	}
	return b, nil
}

func runHitPath(ctx context.Context, cfg CacheConfig, m Model) (HitPathLatencies, error) {
	h := HitPathLatencies{Calls: cfg.Hits}
	u, err := startCacheUpstream(cfg.Seed, 0)
	if err != nil {
		return h, err
	}
	defer u.Close()
	kinds := []struct {
		into   *Latencies
		cache  bool
		prompt func(i int) string
	}{
		{&h.Off, false, cachePrompt},
		{&h.Miss, true, func(i int) string { return cachePrompt(cfg.Hits + i) }}, // none asked before
		{&h.Hit, true, func(int) string { return cachePrompt(0) }},               // stored by the warm-up call
	}
	for _, kd := range kinds {
		client, k, err := cacheClient(u, m, kd.cache)
		if err != nil {
			return h, err
		}
		// One call first: connections opened, the hit's entry stored.
		if _, err := converseOnce(ctx, client, m.ID, cachePrompt(0)); err != nil {
			k.Close()
			return h, fmt.Errorf("bench: the hit path's first call: %w", err)
		}
		lat := make([]time.Duration, 0, cfg.Hits)
		for i := range cfg.Hits {
			start := time.Now()
			if _, err := converseOnce(ctx, client, m.ID, kd.prompt(i+1)); err != nil {
				k.Close()
				return h, fmt.Errorf("bench: a hit path call: %w", err)
			}
			lat = append(lat, time.Since(start))
		}
		k.Close()
		slices.Sort(lat)
		*kd.into = Latencies{P50: percentile(lat, 50), P99: percentile(lat, 99)}
	}
	return h, ctx.Err()
}

// WriteTable prints the three cases, a few lines each.
func (r *CacheResult) WriteTable(w io.Writer) error {
	c, b, h := r.Coalescing, r.Batch, r.HitPath
	fmt.Fprintf(w, "keel bench cache: %s, the response cache in memory (mode all), seed %d\n\n", r.Model, r.Seed)
	fmt.Fprintf(w, "coalescing: %d identical calls at once, the upstream holding each reply %s\n", c.Calls, c.Latency)
	fmt.Fprintf(w, "  cache on:  %d upstream request(s); calls %d miss, %d coalesced, %d hit; took %s\n",
		c.Upstream, c.Misses, c.Coalesced, c.Hits, c.Wall.Round(time.Millisecond))
	fmt.Fprintf(w, "  cache off: %d upstream request(s); took %s\n", c.UpstreamWithout, c.WallWithout.Round(time.Millisecond))
	if c.Failed > 0 {
		fmt.Fprintf(w, "  %d call(s) failed\n", c.Failed)
	}
	fmt.Fprintf(w, "\nbatch rerun: %d records of %d distinct prompts (temperature 0), keel's batch runner, then again\n", b.Records, b.Distinct)
	for i, name := range []string{"first run", "rerun"} {
		fmt.Fprintf(w, "  %-10s %d upstream request(s), %d record(s) succeeded, took %s\n", name+":", b.Upstream[i], b.Succeeded[i],
			b.Took[i].Round(time.Millisecond))
	}
	fmt.Fprintf(w, "\nhit path: %d sequential calls of each kind through the SDK and keel, to an emulator that answers at once\n", h.Calls)
	for _, k := range []struct {
		name string
		l    Latencies
	}{{"cache off", h.Off}, {"miss", h.Miss}, {"hit", h.Hit}} {
		fmt.Fprintf(w, "  %-10s p50 %s  p99 %s\n", k.name+":", micro(k.l.P50), micro(k.l.P99))
	}
	_, err := fmt.Fprintln(w, "\ncache off: every call upstream. miss: a new prompt with the cache on (its key, a lookup, the store).\n"+
		"hit: the same prompt again, answered from the store with no upstream request.")
	return err
}

func micro(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d.Nanoseconds())/1e3) }
