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

const cacheBenchUsage = `Usage: keel bench cache [--calls N] [--latency D] [--records N] [--distinct N] [--hits N]
                        [--model ID] [--seed N] [--json]

Measures keel's response cache (docs/cache.md), in memory, caching every
request, against emulators started in-process:
  coalescing   --calls identical Converse calls at once to an upstream that
               holds each reply --latency: the upstream requests with the
               cache and without it;
  batch rerun  --records records of --distinct prompts at temperature 0 run
               by keel's batch runner, then run again: the upstream requests
               of each run;
  hit path     --hits sequential calls through the SDK and keel of each kind
               (cache off, a miss, a hit) to an emulator that answers at
               once: p50 and p99.
See docs/bench.md.

Flags:`

// cacheBenchArgs is what the command line of `keel bench cache` asks for.
type cacheBenchArgs struct {
	cfg  bench.CacheConfig
	json bool
}

// parseCacheBenchFlags reads the flags of `keel bench cache` and checks
// them, so that a bad value is a usage error (exit 2) naming the flag.
func parseCacheBenchFlags(args []string, stdout, stderr io.Writer) (cacheBenchArgs, error) {
	var a cacheBenchArgs
	cfg := &a.cfg
	fs := benchFlags("keel bench cache", cacheBenchUsage)
	fs.IntVar(&cfg.Calls, "calls", 100, "identical calls at once in the coalescing case")
	fs.DurationVar(&cfg.Latency, "latency", time.Second, "how long the upstream holds each reply in the coalescing case")
	fs.IntVar(&cfg.Records, "records", 1000, "records of the batch rerun")
	fs.IntVar(&cfg.Distinct, "distinct", 10, "distinct prompts among the records")
	fs.IntVar(&cfg.Hits, "hits", 2000, "sequential calls of each kind the hit path case times")
	fs.StringVar(&cfg.Model, "model", bench.DefaultCacheModel, "model `ID` every call names")
	fs.Int64Var(&cfg.Seed, "seed", 1, "seed of the emulators' replies")
	fs.BoolVar(&a.json, "json", false, "print the result as JSON")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return a, err
		}
		return a, errReported
	}
	if fs.NArg() > 0 {
		return a, fmt.Errorf("unexpected argument %q; see keel bench cache -h", fs.Arg(0))
	}
	// In bench.CacheConfig a zero means "the default"; on the command line
	// the defaults are written out, so a zero is a mistake.
	for _, n := range []struct {
		flag string
		v    int
	}{{"calls", cfg.Calls}, {"records", cfg.Records}, {"distinct", cfg.Distinct}, {"hits", cfg.Hits}} {
		if n.v <= 0 {
			return a, fmt.Errorf("--%s %d: want more than 0", n.flag, n.v)
		}
	}
	if cfg.Latency <= 0 {
		return a, fmt.Errorf("--latency %s: want more than 0 (the followers wait on a slow upstream)", cfg.Latency)
	}
	return a, bench.CheckCache(*cfg)
}

// benchCache runs `keel bench cache` until it ends or ctx is cancelled.
func benchCache(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a, err := parseCacheBenchFlags(args, stdout, stderr)
	if code, done := flagsDone(err, "keel bench cache", stderr); done {
		return code
	}
	if !a.json {
		fmt.Fprintln(stderr, "keel bench cache: running the coalescing case, the batch rerun and the hit path...")
	}
	res, err := bench.RunCache(ctx, a.cfg)
	if err != nil {
		fmt.Fprintf(stderr, "keel bench cache: %v\n", err)
		return 1
	}
	return printBench("keel bench cache", res, a.json, stdout, stderr)
}
