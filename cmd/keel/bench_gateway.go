package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/bench"
)

const gatewayUsage = `Usage: keel bench gateway [--concurrency N] [--duration D] [--op converse|converse-stream]
                          [--contenders emulator,proxy,keel] [--model ID] [--seed N] [--json]
                          [--cpuprofile FILE] [--memprofile FILE]

Measures what keel's gateway (keel serve) costs in front of Bedrock. Starts,
in-process and per contender, an emulator with no simulated latency and no
faults, the contender's server in front of it on its own listener, and a
closed loop of --concurrency workers that each send the same call (--op) and
read its reply to the end, then send the next. The contenders take turns
(a warm-up each, then five turns each of --duration/5). Prints per
contender calls per second, latency p50/p99/p99.9, and allocations per
call; and keel's added p50 over the bare proxy and its share of the proxy's
calls per second, against the goals (at most 200 µs, at least 80 %%). The
CPU profile's samples carry the labels contender and role (load, middle,
emulator): go tool pprof -tagfocus role=middle. See docs/bench.md.

Contenders:
%s
Flags:`

// gatewayArgs is what the command line of `keel bench gateway` asks for.
type gatewayArgs struct {
	cfg        bench.GatewayConfig
	json       bool
	cpuprofile string
	memprofile string
}

// parseGatewayFlags reads the flags of `keel bench gateway` and checks
// them, so that a bad value is a usage error (exit 2) naming the flag.
func parseGatewayFlags(args []string, stdout, stderr io.Writer) (gatewayArgs, error) {
	var (
		a          gatewayArgs
		cfg        = &a.cfg
		contenders string
	)
	fs := flag.NewFlagSet("keel bench gateway", flag.ContinueOnError)
	fs.Usage = func() {
		var b strings.Builder
		for _, c := range bench.GatewayContenders() {
			fmt.Fprintf(&b, "  %-9s %s\n", c.Name, c.Description)
		}
		fmt.Fprintf(fs.Output(), gatewayUsage+"\n", b.String())
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.Concurrency, "concurrency", 16, "workers, each sending its next call when its last one ended")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time per contender, after its warm-up")
	fs.StringVar(&cfg.Op, "op", bench.OpConverse, "operation every call sends: converse or converse-stream")
	fs.StringVar(&contenders, "contenders", strings.Join(bench.DefaultGatewayContenders, ","), "comma-separated `LIST` of contenders")
	fs.StringVar(&cfg.Model, "model", bench.DefaultOutageModel, "model `ID` every call names")
	fs.Int64Var(&cfg.Seed, "seed", 1, "seed of the emulators' replies")
	fs.BoolVar(&a.json, "json", false, "print the result as JSON")
	fs.StringVar(&a.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to `FILE`")
	fs.StringVar(&a.memprofile, "memprofile", "", "write an allocation profile of the whole run to `FILE` (go tool pprof -sample_index=alloc_space)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return a, err
		}
		return a, errReported
	}
	if fs.NArg() > 0 {
		return a, fmt.Errorf("unexpected argument %q; see keel bench gateway -h", fs.Arg(0))
	}
	// In bench.GatewayConfig a zero means "the default"; on the command
	// line the defaults are written out, so a zero is a mistake.
	switch {
	case cfg.Concurrency <= 0:
		return a, fmt.Errorf("--concurrency %d: want more than 0", cfg.Concurrency)
	case cfg.Duration <= 0:
		return a, fmt.Errorf("--duration %s: want more than 0", cfg.Duration)
	case cfg.Op == "":
		return a, errors.New("--op: want converse or converse-stream")
	}
	var err error
	if cfg.Contenders, err = contenderNames(contenders); err != nil {
		return a, err
	}
	return a, bench.CheckGateway(*cfg)
}

// benchGateway runs `keel bench gateway` until it ends or ctx is cancelled.
func benchGateway(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a, err := parseGatewayFlags(args, stdout, stderr)
	if code, done := flagsDone(err, "keel bench gateway", stderr); done {
		return code
	}
	// The profiles' files are created before the run, so a path that
	// cannot be written fails now rather than after the run.
	var cpu, mem *os.File
	for _, p := range []struct {
		flag, path string
		f          **os.File
	}{{"--cpuprofile", a.cpuprofile, &cpu}, {"--memprofile", a.memprofile, &mem}} {
		if p.path == "" {
			continue
		}
		if *p.f, err = os.Create(p.path); err != nil {
			fmt.Fprintf(stderr, "keel bench gateway: %s: %v\n", p.flag, err)
			return 2
		}
		defer (*p.f).Close()
	}
	if cpu != nil {
		if err := pprof.StartCPUProfile(cpu); err != nil {
			fmt.Fprintf(stderr, "keel bench gateway: --cpuprofile: %v\n", err)
			return 1
		}
	}
	if !a.json {
		n := max(len(a.cfg.Contenders), 1)
		fmt.Fprintf(stderr, "keel bench gateway: running for about %s (%d contenders, %s each and a warm-up)...\n",
			time.Duration(n)*(a.cfg.Duration+min(time.Second, a.cfg.Duration/5)), n, a.cfg.Duration)
	}
	res, err := bench.RunGateway(ctx, a.cfg)
	if cpu != nil {
		pprof.StopCPUProfile()
	}
	if mem != nil {
		if werr := pprof.Lookup("allocs").WriteTo(mem, 0); werr != nil && err == nil {
			err = fmt.Errorf("--memprofile: %w", werr)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "keel bench gateway: %v\n", err)
		return 1
	}
	for _, f := range []*os.File{cpu, mem} {
		if f != nil {
			if err := f.Close(); err != nil {
				fmt.Fprintf(stderr, "keel bench gateway: %v\n", err)
				return 1
			}
		}
	}
	return printBench("keel bench gateway", res, a.json, stdout, stderr)
}
