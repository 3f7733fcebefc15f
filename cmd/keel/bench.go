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
)

func init() {
	register(command{name: "bench", summary: "measure how well keel and the AWS SDK's retryers use a tokens-per-minute quota", run: runBench})
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
	if args[0] != "quota" {
		fmt.Fprintf(stderr, "keel bench: unknown benchmark %q; the one benchmark is `keel bench quota`\n", args[0])
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return benchQuota(ctx, args[1:], stdout, stderr)
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
	if a.progress == "on" || (a.progress == "auto" && isTerminal(stderr)) {
		// One line, redrawn every second, then left standing.
		a.cfg.Progress = func(p bench.Progress) { fmt.Fprintf(stderr, "\rkeel bench quota: %s\033[K", p) }
	}
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
	if a.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "keel bench quota: writing JSON: %v\n", err)
			return 1
		}
		return 0
	}
	if err := res.WriteTable(stdout); err != nil {
		fmt.Fprintf(stderr, "keel bench quota: %v\n", err)
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
	switch a.progress {
	case "auto", "on", "off":
	default:
		return a, fmt.Errorf("--progress %q: want auto, on or off", a.progress)
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
	cfg.Contenders = nil
	for _, n := range strings.Split(contenders, ",") {
		if n = strings.TrimSpace(n); n != "" {
			cfg.Contenders = append(cfg.Contenders, n)
		}
	}
	if len(cfg.Contenders) == 0 {
		return a, errors.New("--contenders names no contender")
	}
	if err := bench.Check(*cfg); err != nil {
		return a, err
	}
	return a, nil
}
