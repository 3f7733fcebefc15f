package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/keel-run/keel/internal/bench"
)

const tiersUsage = `Usage: keel bench tiers [--duration D] [--rate R] [--deadline D] [--max-tokens N] [--throttle F]
                        [--flex-latency D] [--speed F] [--seed N] [--model ID] [--json]

Shows what a fallback across service tiers buys under a throttle storm.
Starts two emulators in-process whose default tier throttles a share of
calls (--throttle) while the flex tier serves them, a little slower
(--flex-latency), and sends each the same seeded Poisson stream of Converse
calls of Batch priority, through keel without a tier fallback, with a
route step to the flex tier for Batch calls, and without the step or the
quota governor (retries alone), in real time. Prints per
contender: calls completed and failed, goodput, the share served on flex,
attempts and throttles, p50/p99/max latency. See docs/bench.md.

Flags:`

// tiersArgs is what the command line of `keel bench tiers` asks for.
type tiersArgs struct {
	cfg  bench.TiersConfig
	json bool
}

// parseTiersFlags reads the flags of `keel bench tiers` and checks them, so
// that a bad value is a usage error (exit 2) naming the flag.
func parseTiersFlags(args []string, stdout, stderr io.Writer) (tiersArgs, error) {
	var a tiersArgs
	cfg := &a.cfg
	fs := benchFlags("keel bench tiers", tiersUsage)
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "how long calls arrive for")
	fs.Float64Var(&cfg.Rate, "rate", 4, "mean arrival rate, calls a second (a seeded Poisson stream)")
	fs.DurationVar(&cfg.Deadline, "deadline", 15*time.Second, "each call's deadline from its arrival")
	fs.IntVar(&cfg.MaxTokens, "max-tokens", 200, "every call's max tokens")
	fs.Float64Var(&cfg.Throttle, "throttle", 0.9, "share of default-tier calls the emulators throttle, from 0 to below 1")
	fs.DurationVar(&cfg.FlexLatency, "flex-latency", 500*time.Millisecond, "latency the emulators add to a flex-tier call")
	fs.Float64Var(&cfg.Speed, "speed", 0.1, "model latency scale: 1 real time, 0.1 ten times faster")
	fs.Int64Var(&cfg.Seed, "seed", 1, "seed of the arrivals, the prompts, the replies and the throttles")
	fs.StringVar(&cfg.Model, "model", bench.DefaultTiersModel, "model `ID` every call names; it must offer the flex tier")
	fs.BoolVar(&a.json, "json", false, "print the result as JSON")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return a, err
		}
		return a, errReported
	}
	if fs.NArg() > 0 {
		return a, fmt.Errorf("unexpected argument %q; see keel bench tiers -h", fs.Arg(0))
	}
	// In bench.TiersConfig a zero means "the default"; on the command line
	// the defaults are written out, so a zero is a mistake (a throttle or
	// flex latency of zero excepted: the storm can be calm).
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
	case cfg.Throttle < 0 || cfg.Throttle >= 1:
		return a, fmt.Errorf("--throttle %v: want a share from 0 to below 1", cfg.Throttle)
	case cfg.FlexLatency < 0:
		return a, fmt.Errorf("--flex-latency %s: want 0 or more", cfg.FlexLatency)
	}
	if err := bench.CheckTiers(*cfg); err != nil {
		return a, err
	}
	return a, nil
}

// benchTiers runs `keel bench tiers` until it ends or ctx is cancelled.
func benchTiers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a, err := parseTiersFlags(args, stdout, stderr)
	if code, done := flagsDone(err, "keel bench tiers", stderr); done {
		return code
	}
	if !a.json {
		fmt.Fprintf(stderr, "keel bench tiers: running for about %s (arrivals) + up to %s (the last calls' deadline)...\n",
			a.cfg.Duration, a.cfg.Deadline)
	}
	res, err := bench.RunTiers(ctx, a.cfg)
	if err != nil {
		fmt.Fprintf(stderr, "keel bench tiers: %v\n", err)
		return 1
	}
	return printBench("keel bench tiers", res, a.json, stdout, stderr)
}
