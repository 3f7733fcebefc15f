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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keel-run/keel/internal/bench"
	"github.com/keel-run/keel/internal/emulator/scenario"
)

func init() {
	register(command{name: "bench", summary: "measure keel: a tokens-per-minute quota against the AWS SDK's retryers, or a region outage", run: runBench})
}

const benchUsage = `Usage: keel bench quota [--quota TPM] [--duration D] [--load 2.0] [--seed N] [--model ID]
                        [--contenders keel,standard,adaptive] [--deadline D] [--speed F] [--warmup D] [--json]
                        [--calls FILE] [--progress auto|on|off]

Starts one emulator per contender in-process, each with a tokens-per-minute
quota of its own, and offers every contender the same seeded open-loop
workload (Converse calls with a mix of prompt sizes and max tokens, arriving
as a Poisson stream worth --load x the quota, each with a deadline) in real
time. Prints per contender: goodput (tokens settled per minute by the quota
meter / quota), completed and failed calls, 429s per 100 attempts, p50/p99
latency, and the share of the largest and smallest quarter of calls served.
On a terminal, a line on stderr shows how far the run has got. See
docs/bench.md.

The other benchmark, keel bench outage, shows what keel does when a region
fails (keel bench outage -h).

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
	}
	fmt.Fprintf(stderr, "keel bench: unknown benchmark %q; the benchmarks are `keel bench quota` and `keel bench outage`\n", args[0])
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
	}
	var err error
	if cfg.Contenders, err = contenderNames(contenders); err != nil {
		return a, err
	}
	if err := bench.Check(*cfg); err != nil {
		return a, err
	}
	return a, nil
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
