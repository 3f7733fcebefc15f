package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/bench"
	"github.com/keel-run/keel/internal/emulator/scenario"
)

func init() {
	register(command{name: "bench", summary: "measure keel: a tokens-per-minute quota against the AWS SDK's retryers, a region outage, the quota learner, a fallback across service tiers, the gateway's cost, or the response cache", run: runBench})
}

const benchUsage = `Usage: keel bench quota [--quota TPM] [--duration D] [--load 2.0] [--seed N] [--model ID]
                        [--contenders keel,standard,adaptive] [--deadline D] [--speed F] [--warmup D] [--json]
                        [--calls FILE] [--progress auto|on|off] [--start spent|full]
       keel bench quota --replicas N [--contenders keel-redis,keel-local] [--redis local|URL]
                        [--redis-outage D] [flags above]

Starts one emulator per contender in-process, each with a tokens-per-minute
quota of its own, and offers every contender the same seeded open-loop
workload (Converse calls with a mix of prompt sizes and max tokens, arriving
as a Poisson stream worth --load x the quota, each with a deadline) in real
time. Prints per contender: goodput (tokens settled per minute by the quota
meter / quota), completed and failed calls, 429s per 100 attempts, p50/p99
latency, and the share of the largest and smallest quarter of calls served.
Each quota starts spent, as after a minute of overload (--start full: full,
as after load under the quota). On a terminal, a line on stderr shows how far the run has got. See
docs/bench.md.

Many replicas, one quota: with --replicas N, the contenders keel-redis and
keel-local each run N keel instances against their one emulator, calls dealt
to them in turn as a load balancer deals them; keel-redis's instances share
state through a Redis (by default a redis-server started for the run, from
Debian's package redis-server), keel-local's share nothing. --redis-outage D
kills that redis-server for D in the middle of the arrivals, then starts it
again, and shows each contender before, during and after.

The other benchmarks: keel bench outage shows what keel does when a region
fails (keel bench outage -h); keel bench learn measures the quota learner
(keel bench learn -h); keel bench tiers shows what a fallback to the flex
service tier buys under a throttle storm (keel bench tiers -h); keel bench
gateway measures what keel serve costs in front of Bedrock (keel bench
gateway -h); keel bench cache measures the response cache: coalescing, a
batch rerun and the hit path (keel bench cache -h).

Contenders:
%s
Flags:`

func runBench(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		// The one benchmark's usage and flags, as a usage error.
		parseBenchFlags([]string{"-h"}, stderr, stderr)
		return 2
	case args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help":
		parseBenchFlags([]string{"-h"}, stdout, stderr)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "quota":
		return benchQuota(ctx, args[1:], stdout, stderr)
	case "outage":
		return benchOutage(ctx, args[1:], stdout, stderr)
	case "learn":
		return benchLearn(ctx, args[1:], stdout, stderr)
	case "tiers":
		return benchTiers(ctx, args[1:], stdout, stderr)
	case "gateway":
		return benchGateway(ctx, args[1:], stdout, stderr)
	case "cache":
		return benchCache(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "keel bench: unknown benchmark %q; the benchmarks are `keel bench quota`, `keel bench outage`, `keel bench learn`, `keel bench tiers`, `keel bench gateway` and `keel bench cache`\n", args[0])
	return 2
}

// checkBenchArgs checks the arguments of a keel bench command (the
// benchmark's name and its flags) as the command would, without running
// it: TestDocCommands reads the runs the docs show but no test makes.
func checkBenchArgs(args []string) error {
	if len(args) == 0 {
		return errors.New("no benchmark named")
	}
	switch args[0] {
	case "quota":
		_, err := parseBenchFlags(args[1:], io.Discard, io.Discard)
		return err
	case "outage":
		_, err := parseOutageFlags(args[1:], io.Discard, io.Discard)
		return err
	case "learn":
		_, err := parseLearnFlags(args[1:], io.Discard, io.Discard)
		return err
	case "tiers":
		_, err := parseTiersFlags(args[1:], io.Discard, io.Discard)
		return err
	case "gateway":
		_, err := parseGatewayFlags(args[1:], io.Discard, io.Discard)
		return err
	case "cache":
		_, err := parseCacheBenchFlags(args[1:], io.Discard, io.Discard)
		return err
	}
	return fmt.Errorf("unknown benchmark %q", args[0])
}

func contenderList() string {
	var b strings.Builder
	for _, c := range bench.Contenders() {
		fmt.Fprintf(&b, "  %-11s %s\n", c.Name, c.Description)
	}
	return b.String()
}

// benchQuota runs `keel bench quota` until it ends or ctx is cancelled.
func benchQuota(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a, err := parseBenchFlags(args, stdout, stderr)
	if code, done := flagsDone(err, "keel bench quota", stderr); done {
		return code
	}
	// The calls file is created before the run, so a path that cannot be
	// written fails now rather than after minutes of running.
	var calls *os.File
	if a.calls != "" {
		if calls, err = os.Create(a.calls); err != nil {
			fmt.Fprintf(stderr, "keel bench quota: --calls: %v\n", err)
			return 2
		}
		defer calls.Close()
	}
	if !a.json {
		fmt.Fprintf(stderr, "keel bench quota: running for about %s (arrivals) + up to %s (the last calls' deadline)...\n",
			a.cfg.Duration, a.cfg.Deadline)
	}
	a.cfg.Progress = progressLine("keel bench quota", a.progress, stderr)
	// go-redis prints every failed dial to stderr; a Redis outage would
	// fill the terminal, and the table reports it per phase.
	redis.SetLogger(quietRedis{})
	res, err := bench.Run(ctx, a.cfg)
	if a.cfg.Progress != nil {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keel bench quota: %v\n", err)
		if calls != nil {
			calls.Close()
			os.Remove(a.calls) // nothing to write in it
		}
		return 1
	}
	if calls != nil {
		err := res.WriteCalls(calls)
		if cerr := calls.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintf(stderr, "keel bench quota: --calls %s: %v\n", a.calls, err)
			return 1
		}
	}
	return printBench("keel bench quota", res, a.json, stdout, stderr)
}

// quietRedis is a go-redis logger that writes nothing.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// printBench prints a bench's result on stdout: its table, or JSON.
func printBench(cmd string, res interface{ WriteTable(io.Writer) error }, asJSON bool, stdout, stderr io.Writer) int {
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "%s: writing JSON: %v\n", cmd, err)
			return 1
		}
		return 0
	}
	if err := res.WriteTable(stdout); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// benchArgs is what the command line of `keel bench quota` asks for.
type benchArgs struct {
	cfg   bench.Config
	json  bool   // print JSON, not the table
	calls string // a file for WriteCalls; empty: none
	// progress is auto (a line redrawn every second when stderr is a
	// terminal), on or off.
	progress string
}

// parseBenchFlags reads the flags of `keel bench quota` and checks them, so
// that a bad value is a usage error (exit 2) naming the flag.
func parseBenchFlags(args []string, stdout, stderr io.Writer) (benchArgs, error) {
	var (
		a          benchArgs
		cfg        = &a.cfg
		contenders string
	)
	fs := flag.NewFlagSet("keel bench quota", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), benchUsage+"\n", contenderList())
		fs.PrintDefaults()
	}
	fs.Func("quota", "tokens-per-minute `TPM` quota of each contender's emulator (_ separators allowed) (default 1_000_000)", func(v string) error {
		n, err := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive whole number of tokens per minute, got %q", v)
		}
		cfg.Quota = n
		return nil
	})
	fs.DurationVar(&cfg.Duration, "duration", 3*time.Minute, "how long calls arrive for (40s runs in under a minute, but its goodput window is noisy)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "leading part of the arrivals left out of goodput; 0: duration/4, at least the longest reply's latency, at most duration/2")
	fs.Float64Var(&cfg.Load, "load", 2, "offered load: settled tokens per minute, were every call served, / quota")
	fs.Int64Var(&cfg.Seed, "seed", 1, "seed of the workload and of the emulator's replies")
	fs.StringVar(&cfg.Model, "model", bench.DefaultModel, "model or inference profile `ID` every call names (its burndown applies)")
	fs.StringVar(&contenders, "contenders", strings.Join(bench.DefaultContenders, ","), "comma-separated `LIST` of contenders")
	fs.DurationVar(&cfg.Deadline, "deadline", 15*time.Second, "each call's deadline from its arrival; a call not done by then failed")
	fs.Float64Var(&cfg.Speed, "speed", 1, "model latency scale: 1 real time, 0.1 ten times faster (the quota and backoffs stay in real time)")
	fs.BoolVar(&a.json, "json", false, "print the result as JSON (docs/json.md)")
	fs.StringVar(&a.progress, "progress", "auto", "show time, arrivals and calls ended on stderr, redrawn every second: auto (when stderr is a terminal), on or off")
	fs.StringVar(&a.calls, "calls", "", "also write what happened to every call with every contender to `FILE`, one JSON object per line")
	fs.IntVar(&cfg.Replicas, "replicas", 1, "keel instances `N` that keel-redis and keel-local each run against their one quota (1 to 16); above 1 the contenders default to keel-redis,keel-local")
	fs.StringVar(&cfg.Redis, "redis", "", "the Redis keel-redis's instances share: local (a redis-server started for the run) or a redis:// `URL` (default local when keel-redis runs)")
	fs.DurationVar(&cfg.RedisOutage, "redis-outage", 0, "kill the local redis-server for `D` in the middle of the arrivals, then start it again (at most half of --duration)")
	fs.Func("start", "how each contender's quota starts: spent (as after a minute of overload; the default) or full (as after load under the quota)", func(v string) error {
		switch v {
		case "spent", "full":
			cfg.FullStart = v == "full"
			return nil
		}
		return fmt.Errorf("want spent or full, got %q", v)
	})
	cfg.Quota = 1_000_000
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return a, err
		}
		return a, errReported // the flag package printed it, with the usage
	}
	if fs.NArg() > 0 {
		return a, fmt.Errorf("unexpected argument %q; see keel bench quota -h", fs.Arg(0))
	}
	if err := checkProgress(a.progress); err != nil {
		return a, err
	}
	// In bench.Config a zero means "the default"; on the command line the
	// defaults are written out, so a zero is a mistake.
	switch {
	case cfg.Load <= 0:
		return a, fmt.Errorf("--load %v: want more than 0 (2 offers twice the quota)", cfg.Load)
	case cfg.Speed <= 0:
		return a, fmt.Errorf("--speed %v: want more than 0 (1 is real time)", cfg.Speed)
	case cfg.Deadline <= 0:
		return a, fmt.Errorf("--deadline %s: want more than 0", cfg.Deadline)
	case cfg.Warmup < 0:
		return a, fmt.Errorf("--warmup %s: want 0 (the default) or more", cfg.Warmup)
	case cfg.Replicas < 1 || cfg.Replicas > bench.MaxReplicas:
		return a, fmt.Errorf("--replicas %d: want from 1 to %d", cfg.Replicas, bench.MaxReplicas)
	}
	var err error
	if cfg.Contenders, err = contenderNames(contenders); err != nil {
		return a, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.Replicas > 1 && !set["contenders"] {
		cfg.Contenders = bench.DefaultReplicaContenders
	}
	if err := bench.Check(*cfg); err != nil {
		return a, err
	}
	return a, nil
}

// benchFlags returns the flag set of a keel bench command whose usage
// message is usage followed by the flags' defaults.
func benchFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// progressLine returns a bench's Progress callback for --progress when
// (auto: when stderr is a terminal, on, off): one line on stderr, redrawn
// every second, then left standing. Nil when off.
func progressLine(cmd, when string, stderr io.Writer) func(bench.Progress) {
	if when == "on" || (when == "auto" && isTerminal(stderr)) {
		return func(p bench.Progress) { fmt.Fprintf(stderr, "\r%s: %s\033[K", cmd, p) }
	}
	return nil
}

// checkProgress checks a --progress value.
func checkProgress(when string) error {
	switch when {
	case "auto", "on", "off":
		return nil
	}
	return fmt.Errorf("--progress %q: want auto, on or off", when)
}

const outageUsage = `Usage: keel bench outage [--scenario FILE] [--duration D] [--rate R] [--deadline D] [--max-tokens N]
                         [--speed F] [--seed N] [--model ID] [--contenders keel,no-attempt-timeout] [--json]
                         [--progress auto|on|off]

Shows what keel does when a region fails. Starts an emulator in-process per
contender, playing a scenario (by default examples/scenarios/region-outage.yaml:
us-east-1 answers 503 from 10 s to 40 s, refuses connections until 70 s,
hangs until 90 s, then recovers), and sends each the same seeded Poisson
stream of Converse calls, each with a deadline, through keel with a route
MODEL@us-east-1 -> MODEL@us-west-2, in real time. Prints per phase of the
scenario (healthy, 503, refused, hang, recovered): calls completed and
failed, the share served by us-west-2, p50/p99/max latency and the most the
outage added to it, attempts sent to us-east-1 per call, the calls that
skipped it because its circuit breaker was open, and keel's attempt
timeouts. On a terminal, a line on stderr shows how far the run has got.
See docs/bench.md.

Contenders:
%s
Flags:`

// outageArgs is what the command line of `keel bench outage` asks for.
type outageArgs struct {
	cfg      bench.OutageConfig
	json     bool
	progress string // auto, on or off
}

// parseOutageFlags reads the flags of `keel bench outage` and checks them,
// so that a bad value is a usage error (exit 2) naming the flag. The
// scenario file is read by benchOutage.
func parseOutageFlags(args []string, stdout, stderr io.Writer) (outageArgs, error) {
	var (
		a          outageArgs
		cfg        = &a.cfg
		path       string
		contenders string
	)
	fs := flag.NewFlagSet("keel bench outage", flag.ContinueOnError)
	fs.Usage = func() {
		var b strings.Builder
		for _, c := range bench.OutageContenders() {
			fmt.Fprintf(&b, "  %-19s %s\n", c.Name, c.Description)
		}
		fmt.Fprintf(fs.Output(), outageUsage+"\n", b.String())
		fs.PrintDefaults()
	}
	fs.StringVar(&path, "scenario", "examples/scenarios/region-outage.yaml", "scenario `FILE` the emulators play; its outage windows for us-east-1 make the phases")
	fs.DurationVar(&cfg.Duration, "duration", 100*time.Second, "how long calls arrive for")
	fs.Float64Var(&cfg.Rate, "rate", 4, "mean arrival rate, calls a second (a seeded Poisson stream)")
	fs.DurationVar(&cfg.Deadline, "deadline", 30*time.Second, "each call's deadline from its arrival")
	fs.IntVar(&cfg.MaxTokens, "max-tokens", 200, "every call's max tokens")
	fs.Float64Var(&cfg.Speed, "speed", 1, "model latency scale: 1 real time, 0.1 ten times faster (the scenario's windows stay in real time)")
	fs.Int64Var(&cfg.Seed, "seed", 1, "seed of the arrivals, the prompts, the replies and the scenario's random faults")
	fs.StringVar(&cfg.Model, "model", bench.DefaultOutageModel, "model `ID` every call names, served on demand in us-east-1 and us-west-2")
	fs.StringVar(&contenders, "contenders", strings.Join(bench.DefaultOutageContenders, ","), "comma-separated `LIST` of contenders")
	fs.BoolVar(&a.json, "json", false, "print the result as JSON (docs/json.md)")
	fs.StringVar(&a.progress, "progress", "auto", "show time, arrivals and calls ended on stderr, redrawn every second: auto (when stderr is a terminal), on or off")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return a, err
		}
		return a, errReported // the flag package printed it, with the usage
	}
	if fs.NArg() > 0 {
		return a, fmt.Errorf("unexpected argument %q; see keel bench outage -h", fs.Arg(0))
	}
	if err := checkProgress(a.progress); err != nil {
		return a, err
	}
	// In bench.OutageConfig a zero means "the default"; on the command line
	// the defaults are written out, so a zero is a mistake.
	switch {
	case cfg.Duration <= 0:
		return a, fmt.Errorf("--duration %s: want more than 0", cfg.Duration)
	case cfg.Rate <= 0:
		return a, fmt.Errorf("--rate %v: want more than 0 calls a second", cfg.Rate)
	case cfg.Deadline <= 0:
		return a, fmt.Errorf("--deadline %s: want more than 0", cfg.Deadline)
	case cfg.MaxTokens <= 0:
		return a, fmt.Errorf("--max-tokens %d: want more than 0", cfg.MaxTokens)
	case cfg.Speed <= 0:
		return a, fmt.Errorf("--speed %v: want more than 0 (1 is real time)", cfg.Speed)
	}
	var err error
	if cfg.Contenders, err = contenderNames(contenders); err != nil {
		return a, err
	}
	cfg.ScenarioName = path // loaded by benchOutage: the flags are checked without reading files
	if err := bench.CheckOutage(*cfg); err != nil {
		return a, err
	}
	return a, nil
}

// benchOutage runs `keel bench outage` until it ends or ctx is cancelled.
func benchOutage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a, err := parseOutageFlags(args, stdout, stderr)
	if code, done := flagsDone(err, "keel bench outage", stderr); done {
		return code
	}
	if a.cfg.Scenario, err = scenario.Load(a.cfg.ScenarioName); err != nil {
		fmt.Fprintf(stderr, "keel bench outage: --scenario: %v\n", err)
		return 2
	}
	if !a.json {
		fmt.Fprintf(stderr, "keel bench outage: running for about %s (arrivals) + up to %s (the last calls' deadline)...\n",
			a.cfg.Duration, a.cfg.Deadline)
	}
	a.cfg.Progress = progressLine("keel bench outage", a.progress, stderr)
	res, err := bench.RunOutage(ctx, a.cfg)
	if a.cfg.Progress != nil {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keel bench outage: %v\n", err)
		return 1
	}
	return printBench("keel bench outage", res, a.json, stdout, stderr)
}

// contenderNames splits a --contenders list.
func contenderNames(list string) ([]string, error) {
	var names []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, errors.New("--contenders names no contender")
	}
	return names, nil
}

const learnUsage = `Usage: keel bench learn [--case noise,resume,tight,shapes] [--duration D] [--seed N] [--prompts FILE]
                        [--shapes full,10s-empty,1s,minute-refill] [--keel told,learning]
                        [--json] [--progress auto|on|off]

Measures keel's quota learner (issue 16's goals) against in-process
emulators, through the batch runner as keel batch run --emulator uses it,
in real time. Cases, run one after the other:

  noise   the quick start's scenario (200,000 tokens/min, 3 % injected
          throttles, 2 % 503, 1 % ModelNotReady) with a learning keel and
          batch traffic for --duration: the learned limit ÷ the quota
          over time, throttles per 100 attempts, injected and quota's
  resume  the quick start's 300 records unbroken, then killed (at 2 s;
          after 50 records) and resumed by a new keel on the same emulator:
          resumed time ÷ the unbroken run's time after the same point
  tight   200 records against 50,000 tokens/min, 100-300 ms latency: wall
          time ÷ ideal, longest time with no record finishing
  shapes  150 records (50-2,000 words, max tokens 1024) against 300,000
          tokens/min in four bucket shapes, keel told the quota and
          learning it: throttles per 100 attempts, wall ÷ need (--shapes
          and --keel choose rows)

A stalled run ends at a cap (5 min) and is reported as stalled. The whole
bench takes about 12 minutes. See docs/bench.md.

Flags:`

// learnArgs is what the command line of `keel bench learn` asks for.
type learnArgs struct {
	cfg      bench.LearnConfig
	json     bool
	progress string // auto, on or off
}

// parseLearnFlags reads the flags of `keel bench learn` and checks them, so
// that a bad value is a usage error (exit 2) naming the flag. The prompts
// file is read when the bench runs.
func parseLearnFlags(args []string, stdout, stderr io.Writer) (learnArgs, error) {
	var (
		a                   learnArgs
		cfg                 = &a.cfg
		cases, shapes, keel string
	)
	fs := benchFlags("keel bench learn", learnUsage)
	fs.StringVar(&cases, "case", strings.Join(bench.LearnCases, ","), "comma-separated `LIST` of cases to run")
	fs.DurationVar(&cfg.Duration, "duration", 3*time.Minute, "how long the noise case sends batch traffic")
	fs.Int64Var(&cfg.Seed, "seed", 1, "seed of the emulators' replies and faults and of the shapes case's prompts")
	fs.StringVar(&cfg.Prompts, "prompts", bench.DefaultPrompts, "the quick start's records, a simple-format JSONL `FILE`, that the noise, resume and tight cases send")
	fs.StringVar(&shapes, "shapes", "full,10s-empty,1s,minute-refill", "comma-separated `LIST` of the shapes case's bucket shapes")
	fs.StringVar(&keel, "keel", "told,learning", "comma-separated `LIST` of the shapes case's keels: told (the quota in its quotas:), learning")
	fs.BoolVar(&a.json, "json", false, "print the result as JSON")
	fs.StringVar(&a.progress, "progress", "auto", "show the case, time, records done and learned limit on stderr, redrawn every second: auto (when stderr is a terminal), on or off")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return a, err
		}
		return a, errReported // the flag package printed it, with the usage
	}
	if fs.NArg() > 0 {
		return a, fmt.Errorf("unexpected argument %q; see keel bench learn -h", fs.Arg(0))
	}
	if err := checkProgress(a.progress); err != nil {
		return a, err
	}
	if cfg.Duration < bench.MinLearnDuration || cfg.Duration > bench.MaxLearnDuration {
		return a, fmt.Errorf("--duration %s: want from %s to %s", cfg.Duration, bench.MinLearnDuration, bench.MaxLearnDuration)
	}
	var err error
	if cfg.Cases, err = listFlag("--case", "case", cases, bench.LearnCases); err != nil {
		return a, err
	}
	if cfg.Shapes, err = listFlag("--shapes", "shape", shapes, bench.ShapeKeys()); err != nil {
		return a, err
	}
	if cfg.Keels, err = listFlag("--keel", "keel", keel, bench.ShapeKeels); err != nil {
		return a, err
	}
	return a, bench.CheckLearn(*cfg)
}

// listFlag splits a comma-separated flag value into names, each one of
// choices (what names one); an unknown name or an empty list is an error
// naming the flag.
func listFlag(flag, what, value string, choices []string) ([]string, error) {
	var names []string
	for _, n := range strings.Split(value, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if !slices.Contains(choices, n) {
			return nil, fmt.Errorf("%s %s: unknown %s; choose from %s", flag, n, what, strings.Join(choices, ", "))
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s names no %s", flag, what)
	}
	return names, nil
}

// benchLearn runs `keel bench learn` until it ends or ctx is cancelled.
func benchLearn(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a, err := parseLearnFlags(args, stdout, stderr)
	if code, done := flagsDone(err, "keel bench learn", stderr); done {
		return code
	}
	if _, err := os.Stat(a.cfg.Prompts); err != nil {
		fmt.Fprintf(stderr, "keel bench learn: --prompts: %v (run from the repository's root, or name the file)\n", err)
		return 2
	}
	if !a.json {
		fmt.Fprintf(stderr, "keel bench learn: running %s...\n", strings.Join(a.cfg.Cases, ", "))
	}
	if progressLine("keel bench learn", a.progress, stderr) != nil {
		a.cfg.Progress = func(lp bench.LearnProgress) { fmt.Fprintf(stderr, "\rkeel bench learn: %s\033[K", lp) }
	}
	res, err := bench.RunLearn(ctx, a.cfg)
	if a.cfg.Progress != nil {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keel bench learn: %v\n", err)
		return 1
	}
	return printBench("keel bench learn", res, a.json, stdout, stderr)
}
