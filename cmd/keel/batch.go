package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/batch"
	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/keelx"
	"github.com/keel-run/keel/internal/lockfile"
)

func init() {
	register(command{name: "batch", summary: "run a JSONL file of requests through keel, resumably (run, status)", run: runBatch})
}

const batchUsage = `Usage:
  keel batch run --in FILE --out FILE [--model ID] [--state FILE] [--restart] [--format auto|bedrock|simple]
                 [--endpoint URL | --emulator [--scenario FILE] [--seed N] [--speed F]] [flags]
  keel batch status --state FILE [--json]

keel batch run sends every record of a JSONL file through keel's engine and
writes one result line per record to --out. Input lines are Bedrock batch
records {"recordId": ..., "modelInput": {...}} (sent with InvokeModel to
--model) or {"id": ..., "prompt": ...} (sent with Converse). Progress is
checkpointed in --state (default: OUT.state): after a crash, kill -9 or
Ctrl-C, run the same command again to resume; no record is lost or written
twice. --restart starts over. A run locks its results and state files
(OUT.lock, STATE.lock): a second run on either is refused while the first
is under way. Records that fail for good go to the dead-letter queue (--dlq).
keel's quota governor paces the run: a record is sent when the target's
tokens-per-minute quota has room for it (quotas: in --config says the
quota; otherwise keel learns it from throttles), behind interactive calls.

A run stops, leaving its records pending, when five in a row fail with the
same error about the model rather than the record (no such model, no access).

The first Ctrl-C (or SIGTERM) stops a run at once: calls waiting for quota
or to retry are given up and their records stay pending (never failed);
calls on the wire may finish, and their results are kept. A second Ctrl-C
abandons those too. Either way, run the same command again to resume.

Exit status: 0 every record succeeded; 1 some records failed (see --out and
keel dlq list), or the run failed or stopped; 2 bad flags or input; 130
interrupted with records left (run again to resume).`

func runBatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, batchUsage)
		return 0
	}
	switch args[0] {
	case "run":
		ctx, stop, cancel := interruptsSaying(stderr,
			"keel batch: stopping: calls waiting for quota or to retry are given up, and their records stay pending; "+
				"calls on the wire may finish (interrupt again to abandon them too)",
			"keel batch: abandoning the calls on the wire; they run again on resume")
		defer cancel()
		return batchRun(ctx, stop, args[1:], stdout, stderr)
	case "status":
		return batchStatus(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "keel batch: unknown subcommand %q; want run or status\n", args[0])
	return 2
}

// interrupts turns the first SIGINT/SIGTERM into a graceful stop (closing
// the returned channel) and the second into cancelling the context.
func interrupts(stderr io.Writer) (context.Context, <-chan struct{}, func()) {
	return interruptsSaying(stderr, "keel: stopping: letting the calls in flight finish (interrupt again to abandon them)",
		"keel: abandoning the calls in flight; they run again on resume")
}

// interruptsSaying is interrupts, saying first on stderr at the first
// interrupt and second at the second.
func interruptsSaying(stderr io.Writer, first, second string) (context.Context, <-chan struct{}, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	stop := make(chan struct{})
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-sig:
		case <-ctx.Done():
			return
		}
		fmt.Fprintln(stderr, "\n"+first)
		close(stop)
		select {
		case <-sig:
			fmt.Fprintln(stderr, second)
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, stop, func() {
		signal.Stop(sig)
		cancel()
	}
}

// targetFlags say where calls go: real Bedrock, an endpoint, or the
// in-process emulator. batch run and dlq redrive share them.
type targetFlags struct {
	region, endpoint, configFile, scenario string
	emulated, logs                         bool
	seed                                   int64
	speed                                  float64
}

func (t *targetFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.region, "region", "", "region to call (default: the config file's, else AWS_REGION, else us-east-1)")
	fs.StringVar(&t.endpoint, "endpoint", "", "a Bedrock-compatible base `URL`, such as the address keel emulate listens on")
	fs.BoolVar(&t.emulated, "emulator", false, "start keel emulate in-process and send there (no AWS account needed)")
	fs.StringVar(&t.scenario, "scenario", "", "with --emulator: a scenario file (faults, quotas)")
	fs.Int64Var(&t.seed, "seed", 1, "with --emulator: the emulator's seed")
	fs.Float64Var(&t.speed, "speed", 0, "with --emulator: model latency scale (0 none, 1 real time)")
	fs.StringVar(&t.configFile, "config", "", "a keel YAML configuration file (retries, routes, breakers)")
	fs.BoolVar(&t.logs, "log", false, "write keel's JSON logs (one line per attempt and outcome) to stderr")
}

func (t *targetFlags) check() error {
	if t.emulated && t.endpoint != "" {
		return errors.New("--emulator and --endpoint both name where to send; choose one")
	}
	if (t.scenario != "" || t.speed != 0) && !t.emulated {
		return errors.New("--scenario and --speed need --emulator")
	}
	if t.speed < 0 {
		return fmt.Errorf("--speed must be zero or more, got %g", t.speed)
	}
	return nil
}

// open builds keel (the engine the official SDK client would use), starting
// the emulator first when asked; close stops it.
func (t *targetFlags) open(ctx context.Context, stderr io.Writer) (k *keel.Keel, close func(), err error) {
	close = func() {}
	f := converseFlags{region: t.region, endpoint: t.endpoint, configFile: t.configFile, emulated: t.emulated, logs: t.logs}
	if t.emulated {
		s, err := buildEmulator(emulateConfig{scenario: t.scenario, seed: t.seed, speed: t.speed, region: "us-east-1"})
		if err != nil {
			return nil, close, fmt.Errorf("starting the emulator: %w", err)
		}
		rn, err := s.Listen("127.0.0.1:0")
		if err != nil {
			return nil, close, fmt.Errorf("starting the emulator: %w", err)
		}
		close = func() { rn.Close() }
		f.endpoint = rn.URL
	}
	_, k, err = converseClient(ctx, &f, stderr)
	if err != nil {
		close()
		return nil, func() {}, err
	}
	return k, close, nil
}

// isTerminal reports whether w is a terminal (a character device), without
// a dependency on golang.org/x/term.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func batchRun(ctx context.Context, stop <-chan struct{}, args []string, stdout, stderr io.Writer) int {
	var (
		tf                                                targetFlags
		in, out, state, model, format, dbPath, prog, tier string
		maxTokens, maxRequeues                            int
		timeout, every                                    time.Duration
		redact, noDLQ, jsonOut, restart                   bool
	)
	fs := flag.NewFlagSet("keel batch run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&in, "in", "", "input JSONL file (required)")
	fs.StringVar(&out, "out", "", "results JSONL file (required)")
	fs.StringVar(&state, "state", "", "checkpoint file (default: OUT.state); the same one resumes the run")
	fs.StringVar(&model, "model", "", "model id for records that name none (required for Bedrock-format records)")
	fs.StringVar(&format, "format", "auto", "input format: auto, bedrock or simple")
	fs.StringVar(&tier, "service-tier", "", "service tier every record asks for: priority, default, flex or reserved (default: the config's batch.service_tier, else each record's own)")
	fs.IntVar(&maxTokens, "max-tokens", 0, "maxTokens of simple records that set none (default: the model's; set it, or Bedrock reserves the model's maximum against your quota)")
	fs.StringVar(&dbPath, "dlq", "keel-dlq.db", "dead-letter database for records that fail for good")
	fs.BoolVar(&noDLQ, "no-dlq", false, "do not park failures (they are still in --out)")
	fs.BoolVar(&redact, "redact", false, "replace message text in parked bodies with \"[redacted N chars]\" (parked records then cannot be redriven)")
	fs.IntVar(&maxRequeues, "max-requeues", 8, "times a throttled or transiently failing record goes back into the queue before it fails (0: never)")
	fs.DurationVar(&timeout, "timeout", 10*time.Minute, "per record, retries included (0: none)")
	fs.StringVar(&prog, "progress", "auto", "progress display on stderr: auto (a bar on a terminal, else lines), bar, lines or off")
	fs.DurationVar(&every, "progress-every", 10*time.Second, "time between progress lines when not on a terminal")
	fs.BoolVar(&jsonOut, "json", false, "print the summary as JSON")
	fs.BoolVar(&restart, "restart", false, "start over: forget the state file's run and rewrite --out (refused while another run uses them)")
	tf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), batchUsage+"\n\nFlags of keel batch run:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "keel batch run: "+format+"\n", a...)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q", fs.Arg(0))
	case in == "" || out == "":
		return bad("--in and --out are required")
	case maxTokens < 0:
		return bad("--max-tokens must be positive, got %d", maxTokens)
	case maxRequeues < 0:
		return bad("--max-requeues must be zero or more, got %d", maxRequeues)
	case timeout < 0:
		return bad("--timeout must not be negative, got %s", timeout)
	case every <= 0:
		return bad("--progress-every must be positive, got %s", every)
	case redact && noDLQ:
		return bad("--redact applies to the dead-letter queue, which --no-dlq turns off")
	}
	fmtv, err := batch.ParseFormat(format)
	if err != nil {
		return bad("--format: %v", err)
	}
	if err := tf.check(); err != nil {
		return bad("%v", err)
	}
	if tier != "" && !bedrock.ValidTier(tier) {
		return bad("--service-tier: %q is not a service tier; want one of %s", tier, strings.Join(bedrock.Tiers(), ", "))
	}
	var tty bool
	switch prog {
	case "auto":
		tty = isTerminal(stderr)
	case "bar":
		tty = true
	case "lines", "off":
	default:
		return bad("--progress: unknown mode %q; want auto, bar, lines or off", prog)
	}
	// Check the input before starting anything: bad lines are exit 2.
	input, err := batch.ReadInput(in, batch.InputOptions{Format: fmtv, Model: model})
	if err != nil {
		fmt.Fprintf(stderr, "keel batch run: %v\n", err)
		return 2
	}
	k, closeTarget, err := tf.open(ctx, stderr)
	if err != nil {
		return bad("%v", err)
	}
	defer closeTarget()
	o := batch.Options{In: in, Input: input, Out: out, State: state, Format: fmtv, Model: model, Region: tf.region, MaxTokens: maxTokens, Tier: tier,
		Doer: keelx.Engine(k), RecordTimeout: timeout, Stop: stop, MaxRequeues: maxRequeues, Restart: restart}
	if maxRequeues == 0 {
		o.MaxRequeues = -1
	}
	if prog != "off" {
		o.Progress = batch.NewProgress(stderr, batch.ProgressOptions{TTY: tty, Every: every})
	}
	if !noDLQ {
		store, err := dlq.OpenSQLite(dbPath)
		if err != nil {
			fmt.Fprintf(stderr, "keel batch run: %v\n", err)
			return 1
		}
		defer store.Close()
		o.DLQ = &dlq.Recorder{Store: store, Redact: redact, Source: "batch"}
	}
	warnNoLocks(stderr, "keel batch run", "a second run on the same --state or --out is not refused: run one at a time")
	sum, runErr := batch.Run(ctx, o)
	if sum != nil {
		printBatchSummary(stdout, stderr, sum, o, k.Quotas(), dbPath, noDLQ, jsonOut, runErr)
	}
	switch {
	case runErr != nil && errors.Is(runErr, context.Canceled):
		return 130
	case runErr != nil:
		if sum == nil {
			if jsonOut {
				writeJSON(stdout, stderr, map[string]any{"error": runErr.Error()}, 0)
			}
			fmt.Fprintf(stderr, "keel batch run: %v\n", runErr)
		}
		return 1
	case sum.Pending > 0:
		return 130
	case sum.Failed > 0:
		return 1
	}
	return 0
}

// locksSupported is lockfile.Supported; a test sets it to see the warning.
var locksSupported = lockfile.Supported

// warnNoLocks says on stderr, where the system has no file locks keel can
// use (Windows), that cmd's lock guards nothing, and what that means.
func warnNoLocks(stderr io.Writer, cmd, means string) {
	if !locksSupported {
		fmt.Fprintf(stderr, "%s: warning: this system has no file locks keel can use (%s): %s\n", cmd, runtime.GOOS, means)
	}
}

// batchQuotaJSON is the quota governor's account of a run's target.
type batchQuotaJSON struct {
	Target               string `json:"target"`
	LimitTokensPerMinute int64  `json:"limitTokensPerMinute"` // 0: unknown, nothing limited
	Learning             bool   `json:"learning"`
	Throttles            int64  `json:"throttles"`
	Noise                int64  `json:"noise"`    // of them, those taken for noise (calls after them got through)
	Admitted             int64  `json:"admitted"` // Batch calls
	Waited               int64  `json:"waited"`   // of them, those that waited for quota
	WaitTotalMs          int64  `json:"waitTotalMs"`
	WaitMaxMs            int64  `json:"waitMaxMs"`
	Refused              int64  `json:"refused"` // no quota before the deadline
}

func printBatchSummary(stdout, stderr io.Writer, s *batch.Summary, o batch.Options, quotas []keel.QuotaStats, dbPath string, noDLQ, jsonOut bool, runErr error) {
	var qs []batchQuotaJSON
	for _, q := range quotas {
		b := q.Classes[keel.Batch]
		if b.Admitted+b.Expired == 0 {
			continue
		}
		qs = append(qs, batchQuotaJSON{Target: q.Target.String(), LimitTokensPerMinute: q.Limit, Learning: q.Learning, Throttles: q.Throttles, Noise: q.Noise,
			Admitted: b.Admitted, Waited: b.Waited, WaitTotalMs: b.WaitTotal.Milliseconds(), WaitMaxMs: b.WaitMax.Milliseconds(), Refused: b.Expired})
	}
	sort.Slice(qs, func(i, j int) bool { return qs[i].Target < qs[j].Target })
	state := o.State
	if state == "" {
		state = o.Out + ".state"
	}
	if jsonOut {
		res := map[string]any{"runId": s.RunID, "resumed": s.Resumed, "total": s.Total, "before": s.Before, "succeeded": s.Succeeded,
			"failed": s.Failed, "pending": s.Pending, "sent": s.Sent, "requeued": s.Requeued, "cutBytes": s.Cut,
			"inputTokens": s.InputTokens, "outputTokens": s.OutputTokens, "elapsedMs": s.Elapsed.Milliseconds(),
			"failedByCode": s.FailedByCode, "out": o.Out, "state": state}
		if qs != nil {
			res["quota"] = qs
		}
		if !noDLQ {
			res["dlq"] = dbPath
		}
		if runErr != nil {
			res["error"] = runErr.Error()
		}
		writeJSON(stdout, stderr, res, 0)
		return
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "keel batch run: %v\n", runErr)
	}
	if s.Resumed {
		fmt.Fprintf(stdout, "resumed run %s: %d of %d records were already finished", s.RunID, s.Before, s.Total)
		if s.Cut > 0 {
			fmt.Fprintf(stdout, "; cut %d bytes written after the last checkpoint off %s", s.Cut, o.Out)
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "%d/%d records succeeded, %d failed, %d pending; %d calls sent, %d requeued, %s; %d input and %d output tokens\n",
		s.Succeeded, s.Total, s.Failed, s.Pending, s.Sent, s.Requeued, s.Elapsed.Round(time.Millisecond), s.InputTokens, s.OutputTokens)
	for _, q := range qs {
		limit := "not known (no throttle yet)"
		if q.LimitTokensPerMinute > 0 {
			limit = fmt.Sprintf("%d tokens/min", q.LimitTokensPerMinute)
			if q.Learning {
				limit += fmt.Sprintf(" (learned from %d throttles, %d of them taken for noise)", q.Throttles, q.Noise)
			}
		}
		fmt.Fprintf(stdout, "quota %s: limit %s; %d of %d calls waited for quota (longest %s)\n",
			q.Target, limit, q.Waited, q.Admitted, (time.Duration(q.WaitMaxMs) * time.Millisecond).String())
	}
	if s.Failed > 0 {
		fmt.Fprintf(stdout, "failed by code: %s\n", codesText(s.FailedByCode))
		if !noDLQ {
			fmt.Fprintf(stdout, "failed records are parked in %s: keel dlq list --db %s\n", dbPath, dbPath)
		}
	}
	fmt.Fprintf(stdout, "results: %s  state: %s\n", o.Out, state)
	if s.Pending > 0 && runErr == nil {
		fmt.Fprintln(stdout, "stopped with records left: run the same command again to resume")
	}
}

// codesText renders counts by code, sorted: "ThrottlingException 2, ValidationException 5".
func codesText(byCode map[string]int) string {
	codes := make([]string, 0, len(byCode))
	for c, n := range byCode {
		codes = append(codes, fmt.Sprintf("%s %d", c, n))
	}
	sort.Strings(codes)
	return strings.Join(codes, ", ")
}

func batchStatus(args []string, stdout, stderr io.Writer) int {
	var (
		state   string
		jsonOut bool
	)
	fs := flag.NewFlagSet("keel batch status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&state, "state", "", "the run's checkpoint file (required)")
	fs.BoolVar(&jsonOut, "json", false, "print as JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), batchUsage+"\n\nFlags of keel batch status:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keel batch status: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if state == "" {
		fmt.Fprintln(stderr, "keel batch status: --state is required")
		return 2
	}
	if _, err := os.Stat(state); err != nil {
		fmt.Fprintf(stderr, "keel batch status: %v\n", err)
		return 1
	}
	st, err := batch.OpenState(state)
	if err != nil {
		fmt.Fprintf(stderr, "keel batch status: %v\n", err)
		return 1
	}
	defer st.Close()
	s, err := st.Status(context.Background())
	if err != nil {
		fmt.Fprintf(stderr, "keel batch status: %v\n", err)
		return 1
	}
	// The learned limits only spare a resumed run some learning: a state
	// file that cannot give them is still read.
	limits, limitsErr := st.Limits()
	learned := make([]map[string]any, 0, len(limits))
	for _, l := range limits {
		m := map[string]any{"model": l.Model, "region": l.Region, "tokensPerMinute": l.TokensPerMinute}
		if l.Tier != "" {
			m["tier"] = l.Tier
		}
		learned = append(learned, m)
	}
	done := s.Succeeded + s.Failed
	if jsonOut {
		res := map[string]any{"runId": s.Meta.RunID, "input": s.Meta.Input, "inputSha256": s.Meta.InputHash, "out": s.Meta.Out,
			"model": s.Meta.Model, "total": s.Meta.Total, "succeeded": s.Succeeded, "failed": s.Failed, "pending": s.Pending,
			"failedByCode": s.FailedByCode, "inputTokens": s.InputTokens, "outputTokens": s.OutputTokens,
			"checkpointedBytes": s.OutLen, "startedAt": s.Meta.CreatedAt, "complete": s.Pending == 0,
			"learnedLimits": learned}
		if limitsErr != nil {
			res["learnedLimitsError"] = limitsErr.Error()
		}
		if !s.LastDone.IsZero() {
			res["firstFinishedAt"], res["lastFinishedAt"] = s.FirstDone, s.LastDone
		}
		return writeJSON(stdout, stderr, res, 0)
	}
	pct := 0.0
	if s.Meta.Total > 0 {
		pct = 100 * float64(done) / float64(s.Meta.Total)
	}
	fmt.Fprintf(stdout, "run %s, started %s\n", s.Meta.RunID, s.Meta.CreatedAt.Local().Format(time.DateTime))
	fmt.Fprintf(stdout, "input:   %s (%d records)\nresults: %s (%d bytes checkpointed)\n", s.Meta.Input, s.Meta.Total, s.Meta.Out, s.OutLen)
	if s.Meta.Model != "" {
		fmt.Fprintf(stdout, "model:   %s\n", s.Meta.Model)
	}
	fmt.Fprintf(stdout, "done:    %d/%d (%.1f%%): %d succeeded, %d failed; %d pending\n", done, s.Meta.Total, pct, s.Succeeded, s.Failed, s.Pending)
	if s.Failed > 0 {
		fmt.Fprintf(stdout, "failed:  %s\n", codesText(s.FailedByCode))
	}
	fmt.Fprintf(stdout, "tokens:  %d input, %d output\n", s.InputTokens, s.OutputTokens)
	for _, l := range limits {
		target := bedrock.Target{Model: l.Model, Region: l.Region, Tier: l.Tier}
		fmt.Fprintf(stdout, "learned: %s, %d tokens/min (a resumed run starts from it)\n", target, l.TokensPerMinute)
	}
	if limitsErr != nil {
		fmt.Fprintf(stdout, "learned: none read (%v); a resumed run learns its quota again\n", limitsErr)
	}
	if !s.LastDone.IsZero() {
		span := s.LastDone.Sub(s.FirstDone)
		fmt.Fprintf(stdout, "last record finished %s", s.LastDone.Local().Format(time.DateTime))
		if span > 0 && done > 1 {
			fmt.Fprintf(stdout, " (%.1f records/s while running)", float64(done-1)/span.Seconds())
		}
		fmt.Fprintln(stdout)
	}
	if s.Pending == 0 {
		fmt.Fprintln(stdout, "complete")
	} else {
		fmt.Fprintln(stdout, "incomplete: run the same `keel batch run` command to resume")
	}
	return 0
}
