package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/admission/redisstore"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/gateway"
	"github.com/keel-run/keel/internal/keelx"
)

func init() {
	register(command{name: "serve", summary: "serve the Bedrock Runtime API through keel's engine, for any SDK", run: runServe})
}

const serveUsage = `Usage: keel serve [--listen ADDR] [--endpoint URL | --emulator [--scenario FILE]] [--config FILE]
                  [--tls-cert FILE --tls-key FILE] [--insecure-open] [--drain D]

Serves the Bedrock Runtime API (Converse, ConverseStream, InvokeModel,
InvokeModelWithResponseStream, CountTokens) through keel's engine: point any
AWS SDK's endpoint at it. Upstream credentials come from the default AWS
chain, or a Bedrock API key in AWS_BEARER_TOKEN_BEDROCK; --emulator starts
the emulator in-process as the upstream, with fake credentials. With no
callers configured (gateway.callers) the gateway is open, which it allows
only on a loopback address unless --insecure-open. Drains on SIGINT or
SIGTERM. See docs/gateway.md.

Flags:`

// Defaults of keel serve's flags.
const (
	// defaultServeListen is loopback: an open gateway must not be
	// reachable from elsewhere by accident.
	defaultServeListen = "127.0.0.1:4000"
	// defaultDrain is how long a stopping gateway lets calls in flight
	// finish: long enough for most streamed replies, short enough for an
	// orchestrator's usual 30-60 s termination grace.
	defaultDrain = 30 * time.Second
)

// bearerEnv is the environment variable of a Bedrock API key, as the AWS
// SDKs read it.
const bearerEnv = "AWS_BEARER_TOKEN_BEDROCK"

type serveFlags struct {
	listen, endpoint, scenario, configFile, tlsCert, tlsKey string
	emulated, insecureOpen, logs                            bool
	drain                                                   time.Duration
	seed                                                    int64
	speed                                                   float64
	set                                                     map[string]bool // flags given on the command line
}

func runServe(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, args, stdout, stderr)
}

func parseServeFlags(args []string, stdout, stderr io.Writer) (serveFlags, error) {
	f := serveFlags{set: map[string]bool{}}
	fs := flag.NewFlagSet("keel serve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.listen, "listen", defaultServeListen, "address to serve on, `host:port` (port 0 picks a free one; default: gateway.listen, else "+defaultServeListen+")")
	fs.StringVar(&f.endpoint, "endpoint", "", "a Bedrock-compatible upstream base `URL` (default: AWS's endpoint of each region)")
	fs.BoolVar(&f.emulated, "emulator", false, "start keel emulate in-process as the upstream (fake credentials; a one-command demo)")
	fs.StringVar(&f.scenario, "scenario", "", "with --emulator: a scenario `FILE` that makes the emulator misbehave")
	fs.Int64Var(&f.seed, "seed", 1, "with --emulator: the emulator's seed `N`")
	fs.Float64Var(&f.speed, "speed", 0, "with --emulator: its latency scale `F`: 0 none, 1 real time, 0.01 a hundred times faster")
	fs.StringVar(&f.configFile, "config", "", "a keel YAML configuration `FILE` (its gateway: section configures the gateway)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate `FILE` (with --tls-key)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "the PEM private key `FILE` of --tls-cert")
	fs.BoolVar(&f.insecureOpen, "insecure-open", false, "serve without callers on a non-loopback address: anyone who reaches it spends your quota")
	fs.DurationVar(&f.drain, "drain", defaultDrain, "on SIGINT or SIGTERM, let calls in flight finish for up to `D`, then cut them (default: gateway.drain, else 30s)")
	fs.BoolVar(&f.logs, "log", false, "also write the engine's JSON logs (one line per attempt and outcome) to stderr")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, err
		}
		return f, errReported
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	switch {
	case fs.NArg() > 0:
		return f, fmt.Errorf("unexpected argument %q; see keel serve -h", fs.Arg(0))
	case f.emulated && f.endpoint != "":
		return f, errors.New("--emulator and --endpoint both name the upstream; choose one")
	case f.scenario != "" && !f.emulated:
		return f, errors.New("--scenario needs --emulator")
	case f.speed != 0 && !f.emulated:
		return f, errors.New("--speed needs --emulator")
	case f.speed < 0 || math.IsNaN(f.speed) || math.IsInf(f.speed, 0):
		return f, fmt.Errorf("--speed must be 0 or more, got %v", f.speed)
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return f, errors.New("--tls-cert and --tls-key go together")
	case f.drain < 0:
		return f, fmt.Errorf("--drain must not be negative, got %v", f.drain)
	}
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		return f, fmt.Errorf("--listen: %q is not host:port, such as 127.0.0.1:4000", f.listen)
	}
	if f.endpoint != "" {
		if _, err := parseUpstream(f.endpoint); err != nil {
			return f, err
		}
	}
	return f, nil
}

// parseUpstream checks an --endpoint URL.
func parseUpstream(s string) (string, error) {
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") || len(s) <= len("https://") {
		return "", fmt.Errorf("--endpoint: %q is not an http(s) URL such as http://127.0.0.1:4566", s)
	}
	return s, nil
}

// serve runs the gateway until ctx ends, then drains it.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseServeFlags(args, stdout, stderr)
	if code, done := flagsDone(err, "keel serve", stderr); done {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "keel serve: %v\n", err)
		return 1
	}
	c := &config.Config{}
	if f.configFile != "" {
		if c, err = config.Load(f.configFile); err != nil {
			return fail(err)
		}
	}
	g := c.Gateway
	if g.Listen != "" && !f.set["listen"] {
		f.listen = g.Listen
	}
	if g.Drain != 0 && !f.set["drain"] {
		f.drain = g.Drain.D()
	}
	if f.tlsCert == "" {
		f.tlsCert, f.tlsKey = g.TLS.Cert, g.TLS.Key
	}
	open := len(g.Callers) == 0
	if open && !isLoopback(f.listen) && !f.insecureOpen {
		fmt.Fprintf(stderr, "keel serve: no callers are configured (gateway.callers), so the gateway would be open to anyone who reaches %s; "+
			"listen on a loopback address such as 127.0.0.1:4000, configure callers, or pass --insecure-open\n", f.listen)
		return 2
	}
	if f.tlsCert == "" {
		if names := bearerCallers(g.Callers); len(names) > 0 {
			fmt.Fprintf(stderr, "keel serve: caller(s) %s have a bearer token, which the gateway accepts over HTTPS only "+
				"(a token sent over plain HTTP can be read on the way); serve TLS with --tls-cert and --tls-key (or gateway.tls), "+
				"or give those callers sigv4 keys instead\n", strings.Join(names, ", "))
			return 2
		}
	}
	var tlsConfig *tls.Config
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return fail(fmt.Errorf("loading the TLS certificate: %w", err))
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	opts := gateway.Options{Timeout: g.Timeout.D(), BodyLimit: g.BodyLimit, Logger: newJSONLogger(stderr), InsecureOpen: f.insecureOpen}
	upstream := f.endpoint
	if upstream == "" && !f.emulated {
		upstream = c.Endpoint // the file's endpoint: a Bedrock-compatible upstream
	}
	if f.emulated {
		s, err := buildEmulator(emulateConfig{scenario: f.scenario, seed: f.seed, speed: f.speed, region: "us-east-1"})
		if err != nil {
			return fail(fmt.Errorf("starting the emulator: %w", err))
		}
		rn, err := s.Listen("127.0.0.1:0")
		if err != nil {
			return fail(fmt.Errorf("starting the emulator: %w", err))
		}
		defer rn.Close()
		upstream = rn.URL
	}
	var engineLog *slog.Logger
	if f.logs {
		engineLog = newJSONLogger(stderr)
	}
	reg := prometheus.NewRegistry()
	k, what, err := upstreamKeel(ctx, f, upstream, reg, engineLog, &opts)
	if err != nil {
		return fail(err)
	}
	defer k.Close() // the Redis connection, if redis: names one
	opts.Engine = keelx.Engine(k)
	defer opts.Engine.HTTPClient().CloseIdleConnections()
	opts.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if !open {
		var store admission.Store // the callers' budgets: shared when redis: names a Redis
		if rc := keelx.Shared(k); rc != nil {
			store = redisstore.NewFailover(rc, redisstore.Options{})
		}
		if err := gatewayCallers(g.Callers, store, &opts); err != nil {
			return fail(err)
		}
	}
	if err := gatewayStatus(k, c.Cache.Store, reg, &opts); err != nil {
		return fail(err)
	}
	if g.DLQ.Path != "" {
		store, err := dlq.OpenSQLite(g.DLQ.Path)
		if err != nil {
			return fail(err)
		}
		defer store.Close()
		opts.DLQ = &dlq.Recorder{Store: store, Redact: g.DLQ.Redact}
	}
	gw, err := gateway.New(opts)
	if err != nil {
		return fail(err)
	}
	if f.emulated {
		gw.SetReady()
	} else {
		// /readyz turns 200 once the upstream answers a probe: a load
		// balancer gated on it then starts sending.
		pctx, stopProbe := context.WithCancel(ctx)
		probed := make(chan struct{})
		go func() {
			defer close(probed)
			gw.ProbeUpstream(pctx)
		}()
		defer func() {
			stopProbe()
			<-probed
		}()
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fail(err)
	}
	scheme, protos := "http", "HTTP/1.1 and h2c"
	if tlsConfig != nil {
		scheme, protos = "https", "HTTP/1.1 and h2 over TLS"
	}
	fmt.Fprintf(stdout, "keel serve: Bedrock Runtime gateway on %s://%s (%s; upstream %s)\n", scheme, ln.Addr(), protos, what)
	if open {
		fmt.Fprintf(stdout, "keel serve: open: no callers configured; anyone who reaches %s may call\n", ln.Addr())
	} else {
		fmt.Fprintf(stdout, "keel serve: %d caller(s) configured\n", len(g.Callers))
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ln, tlsConfig) }()
	select {
	case err := <-served:
		return fail(err)
	case <-ctx.Done():
	}
	fmt.Fprintf(stdout, "keel serve: draining (up to %v)\n", f.drain)
	dctx, cancel := context.WithTimeout(context.Background(), f.drain)
	defer cancel()
	derr := gw.Shutdown(dctx)
	if err := <-served; err != nil {
		return fail(err)
	}
	if derr != nil {
		fmt.Fprintf(stdout, "keel serve: stopped; calls still running after %v were cut\n", f.drain)
		return 0
	}
	fmt.Fprintln(stdout, "keel serve: stopped")
	return 0
}

// bearerCallers returns the names of the callers that have a bearer token.
func bearerCallers(callers []config.Caller) []string {
	var names []string
	for _, c := range callers {
		if c.Bearer != "" {
			names = append(names, c.Name)
		}
	}
	return names
}

// isLoopback reports whether a listen address is on a loopback interface
// only (not the unspecified address, which listens everywhere).
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// upstreamKeel builds the engine's keel with the gateway's upstream
// credentials: fake ones for a Bedrock-compatible endpoint (an emulator)
// when the environment has none, a Bedrock API key from
// AWS_BEARER_TOKEN_BEDROCK (sent as a bearer token; opts.UpstreamBearer),
// else the default AWS chain, which must find credentials before the
// gateway starts. what describes the upstream for the start line.
func upstreamKeel(ctx context.Context, f serveFlags, endpoint string, reg prometheus.Registerer, logger *slog.Logger, opts *gateway.Options) (*keel.Keel, string, error) {
	loadOpts := []func(*awsconfig.LoadOptions) error{awsconfig.WithLogger(sdkLogger(logger))}
	fake := credentials.NewStaticCredentialsProvider("KEELFAKEACCESSKEY", "keel-fake-secret", "")
	if f.emulated {
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(fake))
	}
	if endpoint != "" {
		loadOpts = append(loadOpts, awsconfig.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	cfg, err := loadAWSConfig(ctx, loadOpts...)
	if err != nil {
		return nil, "", fmt.Errorf("loading AWS configuration: %w", err)
	}
	what := "AWS Bedrock Runtime"
	if endpoint != "" {
		what = endpoint
	}
	switch key := os.Getenv(bearerEnv); {
	case f.emulated:
		what = "the in-process emulator at " + endpoint
	case key != "":
		// A Bedrock API key: the engine sends it as it is, unsigned.
		cfg.Credentials = nil
		opts.UpstreamBearer = key
		what += ", with the Bedrock API key of " + bearerEnv
	case endpoint != "":
		if retrieveCredentials(ctx, cfg.Credentials) != nil {
			cfg.Credentials = fake
		}
	default:
		if err := retrieveCredentials(ctx, cfg.Credentials); err != nil {
			if ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
			return nil, "", credentialsUnavailable(err)
		}
		what += ", with the default AWS credential chain"
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegionName
	}
	k, err := keel.New(cfg, keel.Options{ConfigFile: f.configFile, Endpoint: endpoint, Logger: logger, Registerer: reg})
	if err != nil {
		return nil, "", err
	}
	return k, what, nil
}

// defaultRegionName is the upstream region when nothing names one.
const defaultRegionName = "us-east-1"
