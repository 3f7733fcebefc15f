package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/admin"
	"github.com/keel-run/keel/internal/emulator/quota"
	"github.com/keel-run/keel/internal/emulator/reply"
	"github.com/keel-run/keel/internal/emulator/scenario"
	"github.com/keel-run/keel/internal/sigv4verify"
)

func init() {
	register(command{name: "emulate", summary: "run a Bedrock Runtime emulator that misbehaves on demand", run: runEmulate})
}

const emulateUsage = `Usage: keel emulate [flags]

Serves an emulated Amazon Bedrock Runtime (Converse, ConverseStream,
InvokeModel, InvokeModelWithResponseStream, CountTokens), the Bedrock
foundation-model and inference-profile calls, STS GetCallerIdentity and
Service Quotas for bedrock (the scenario's quotas), with deterministic
replies and the faults, quotas, clock skew and denied models of a scenario
file. Point any AWS SDK at it with
its endpoint URL and any credentials. The admin API is under /_emulator/;
with --admin-token (or KEEL_EMULATOR_ADMIN_TOKEN) or --access-key it wants
that token as a bearer token or a SigV4 signature by one of the keys.
Stops cleanly on SIGINT or SIGTERM.

Flags:`

// shutdownGrace bounds how long a stopping emulator lets responses being
// written finish.
const shutdownGrace = 5 * time.Second

// emulateConfig is what the flags say.
type emulateConfig struct {
	listen   string
	scenario string
	seed     int64
	speed    float64
	region   string
	keys     map[string]string // SigV4 access key id -> secret
	length   reply.Range
	maxBody  int64 // request body limit; 0 is the emulator's default
	buffered int64 // bound on request bodies held at once; 0 is the default
	// adminToken, when set, is what the admin API wants as a bearer token.
	// It is a secret: never printed.
	adminToken string
}

// adminTokenEnv names the environment variable an admin token may come
// from; unlike a flag, it does not show in the process list.
const adminTokenEnv = "KEEL_EMULATOR_ADMIN_TOKEN"

func runEmulate(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return emulate(ctx, args, stdout, stderr)
}

// emulate runs the emulator until ctx ends.
func emulate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseEmulateFlags(args, stdout, stderr)
	if code, done := flagsDone(err, "keel emulate", stderr); done {
		return code
	}
	s, err := buildEmulator(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "keel emulate: %v\n", err)
		return 1
	}
	rn, err := s.Listen(cfg.listen)
	if err != nil {
		fmt.Fprintf(stderr, "keel emulate: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "keel emulate: Bedrock Runtime on %s (default region %s, seed %d, speed %g, %d models, SigV4 checks %s)\n",
		rn.URL, cfg.region, cfg.seed, cfg.speed, len(s.Models()), onOff(len(cfg.keys) > 0))
	if cfg.scenario != "" {
		fmt.Fprintf(stdout, "keel emulate: scenario %s\n", cfg.scenario)
	}
	fmt.Fprintf(stdout, "keel emulate: admin API on %s%s (%s)\n", rn.URL, admin.Prefix, adminAccess(cfg))

	<-ctx.Done()
	fmt.Fprintln(stdout, "keel emulate: stopping")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := rn.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(stderr, "keel emulate: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "keel emulate: stopped")
	return 0
}

// errReported is a usage error already printed.
var errReported = errors.New("usage error reported")

// flagsDone turns what parsing a command's flags returned into its exit
// code: 0 after -h, 2 for a usage error (printed here unless already
// printed, prefixed by cmd); done is false when the command should run.
func flagsDone(err error, cmd string, stderr io.Writer) (code int, done bool) {
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, flag.ErrHelp):
		return 0, true
	case !errors.Is(err, errReported):
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
	}
	return 2, true
}

// adminAccess says who may use the admin API, without the token.
func adminAccess(cfg emulateConfig) string {
	switch {
	case cfg.adminToken != "" && len(cfg.keys) > 0:
		return "needs the admin token or a SigV4 signature by an --access-key"
	case cfg.adminToken != "":
		return "needs the admin token"
	case len(cfg.keys) > 0:
		return "needs a SigV4 signature by an --access-key"
	}
	return "open: anyone who can reach the address may read the counters and replace the scenario; see --admin-token"
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func parseEmulateFlags(args []string, stdout, stderr io.Writer) (emulateConfig, error) {
	cfg := emulateConfig{keys: map[string]string{}}
	fs := flag.NewFlagSet("keel emulate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), emulateUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:4566", "address to listen on, as host:port (port 0 picks a free one)")
	fs.StringVar(&cfg.scenario, "scenario", "", "scenario file (YAML) of faults and quotas; see docs/emulator-faults.md")
	fs.Int64Var(&cfg.seed, "seed", 1, "seed of the replies and of the scenario's random draws")
	fs.Float64Var(&cfg.speed, "speed", 0, "latency scale: 0 none, 1 real time, 0.01 a hundred times faster")
	fs.StringVar(&cfg.region, "region", "us-east-1", "region of requests that name none (unsigned, no /region/ prefix)")
	fs.Func("access-key", "access key to verify SigV4 signatures against, as ID=SECRET (repeat for more keys); none: accept any credentials",
		func(v string) error {
			id, secret, ok := strings.Cut(v, "=")
			if !ok || id == "" || secret == "" {
				return fmt.Errorf("want ID=SECRET, got %q", v)
			}
			cfg.keys[id] = secret
			return nil
		})
	fs.Func("reply-tokens", "length in tokens of replies that end on their own, as MIN-MAX (default 20-320)",
		func(v string) error {
			lo, hi, ok := strings.Cut(v, "-")
			min, err1 := strconv.Atoi(lo)
			max, err2 := strconv.Atoi(hi)
			if !ok || err1 != nil || err2 != nil || min < 1 || max < min {
				return fmt.Errorf("want MIN-MAX with 1 <= MIN <= MAX, got %q", v)
			}
			cfg.length = reply.Range{Min: min, Max: max}
			return nil
		})
	fs.StringVar(&cfg.adminToken, "admin-token", "", "secret the admin API wants as Authorization: Bearer; "+
		"without it or --access-key the admin API is open (prefer the environment variable "+adminTokenEnv+", which ps does not show)")
	fs.Func("max-body", fmt.Sprintf("largest request body served, in bytes or with KiB, MiB or GiB; a larger one gets 400 ValidationException (default %s)",
		formatSize(emulator.DefaultMaxBodyBytes)), sizeFlag(&cfg.maxBody))
	fs.Func("max-buffered", fmt.Sprintf("most request-body bytes held at once by requests being served; a request past it gets 503 (default %s)",
		formatSize(emulator.DefaultMaxBufferedBytes)), sizeFlag(&cfg.buffered))
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err // help went to stdout
		}
		return cfg, errReported // the flag package printed it, with the usage
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q; see keel emulate -h", fs.Arg(0))
	}
	if cfg.adminToken == "" {
		cfg.adminToken = os.Getenv(adminTokenEnv)
	}
	return cfg, nil
}

// sizeFlag parses a size flag into *n: a number of bytes, or a number
// followed by KiB, MiB or GiB.
func sizeFlag(n *int64) func(string) error {
	return func(v string) error {
		num, unit := v, int64(1)
		for _, u := range []struct {
			suffix string
			bytes  int64
		}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
			if s, ok := strings.CutSuffix(v, u.suffix); ok {
				num, unit = s, u.bytes
				break
			}
		}
		x, err := strconv.ParseInt(num, 10, 64)
		switch {
		case err != nil || x > math.MaxInt64/unit:
			return fmt.Errorf("want a size in bytes such as 32MiB or 1048576, got %q", v)
		case x <= 0:
			return fmt.Errorf("want a size above zero, got %q", v)
		}
		*n = x * unit
		return nil
	}
}

// formatSize writes n in the largest unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		bytes  int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.bytes == 0 {
			return strconv.FormatInt(n/u.bytes, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// buildEmulator wires the emulator's parts together: the scenario (fault
// plans and quotas), the quota meter, SigV4 verification, and the admin API
// mounted at /_emulator/. It is the one place the CLI connects them.
func buildEmulator(cfg emulateConfig) (*emulator.Server, error) {
	var sc *scenario.Scenario
	if cfg.scenario != "" {
		var err error
		if sc, err = scenario.Load(cfg.scenario); err != nil {
			return nil, err
		}
	}
	injector := scenario.NewInjector(sc, cfg.seed, nil)
	var table quota.Table
	if sc != nil {
		table = sc.Quotas
	}
	meter := quota.NewMeter(nil, table)
	outcomes := &admin.Outcomes{}
	opts := emulator.Options{
		Seed:             cfg.seed,
		Speed:            cfg.speed,
		DefaultRegion:    cfg.region,
		ReplyLength:      cfg.length,
		MaxBodyBytes:     cfg.maxBody,
		MaxBufferedBytes: cfg.buffered,
		Planner:          injector.Plan,
		JobPlanner:       injector.JobPlan,
		Admit: func(r emulator.AdmitRequest) *emulator.Rejection {
			return (*emulator.Rejection)(meter.Admit(quota.AdmitRequest{Model: r.Model, Region: r.Region,
				Operation: r.Operation, InputTokens: r.InputTokens, MaxTokens: r.MaxTokens}))
		},
		Settle: func(r emulator.SettleRequest) {
			meter.Settle(quota.SettleRequest{Model: r.Model, Region: r.Region, Operation: r.Operation,
				InputTokens: r.InputTokens, CacheWriteTokens: r.CacheWriteTokens, OutputTokens: r.OutputTokens,
				Burndown: r.Burndown, MaxTokens: r.MaxTokens})
		},
		Observe: func(o emulator.Outcome) { outcomes.Add(o.Model, o.Region, o.Code) },
		// The scenario in force (the admin API may replace it) sets the
		// clock's skew; Service Quotas reports the meter's table.
		ClockSkew: injector.ClockSkew,
		Quota: func(model, region string) (int64, int64) {
			l, _ := meter.Table().Lookup(model, region)
			return l.TokensPerMinute, l.TokensPerDay
		},
	}
	// One verifier per signing name the emulator answers, each judging
	// request dates by the emulator's (possibly skewed) clock.
	clk := skewedClock{injector.ClockSkew}
	verifier := sigv4verify.New(sigv4verify.Options{Keys: cfg.keys, Clock: clk})
	others := map[string]*sigv4verify.Verifier{}
	for _, name := range []string{emulator.SigningSTS, emulator.SigningServiceQuotas, emulator.SigningS3} {
		others[name] = sigv4verify.New(sigv4verify.Options{Keys: cfg.keys, Clock: clk, Service: name})
	}
	if verifier.Enabled() {
		opts.Verify = func(r *http.Request, body []byte) *emulator.Rejection {
			v := verifier
			if o, ok := others[emulator.SigningName(r)]; ok {
				v = o
			}
			return (*emulator.Rejection)(v.Verify(r, body))
		}
	}
	s, err := emulator.New(opts)
	if err != nil {
		return nil, err
	}
	s.Mount(admin.Prefix, admin.New(admin.Options{Injector: injector, Meter: meter, Outcomes: outcomes,
		Token: cfg.adminToken, Verifier: verifier}))
	return s, nil
}

// skewedClock is the wall clock plus the scenario's skew: the time the
// emulator's Date headers tell (Server.Now), for its SigV4 verifiers.
type skewedClock struct{ skew func() time.Duration }

func (c skewedClock) Now() time.Time { return time.Now().Add(c.skew()) }

func (skewedClock) NewTimer(d time.Duration) clock.Timer { return clock.Real{}.NewTimer(d) }
