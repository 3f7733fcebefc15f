package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	btypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keel-run/keel/internal/batch"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/jobs"
	"github.com/keel-run/keel/internal/keelx"
	"github.com/keel-run/keel/internal/lockfile"
)

func init() {
	register(command{name: "jobs", summary: "run a JSONL file as a Bedrock batch-inference job, resumably (run, submit, status, wait, results, stop, list)", run: runJobs})
}

const jobsUsage = `Usage:
  keel jobs run --in FILE --model ID --out FILE [--s3 s3://bucket/prefix] [--role ARN]
                [--endpoint URL | --emulator [--scenario FILE]] [--state FILE] [flags]
  keel jobs submit  (the flags of run)   validate, upload and create the job, then return
  keel jobs status  --state FILE [--json] ask Bedrock once how the job is doing
  keel jobs wait    --state FILE          poll until the job has ended
  keel jobs results --state FILE          write --out and park the failures
  keel jobs stop    --state FILE          ask Bedrock to stop the job
  keel jobs list    [--json]              keel's batch jobs, newest first

keel jobs run sends a JSONL file (the record formats of keel batch run) as
one Amazon Bedrock batch-inference job: half the on-demand price, its own
quota, hours of latency. It validates every record, splits the input into
files within Bedrock's quotas, uploads them under --s3, creates the job,
polls it (starting at --poll-first, growing x1.5 to --poll-max, backing off
harder on errors, at most --polls-per-hour), downloads the output and writes
one result line per input record to --out, in input order, in keel batch
run's shape. Records the job failed or never did go to the dead-letter
queue (--dlq) with the job id and Bedrock's error; keel dlq redrive sends
them on demand.

Each step is recorded in --state (default: OUT.jobstate). Kill it at any
point and run the same command again: it goes on from there, never creates
a second job (the job's name and clientRequestToken come from the run) and
never loses or repeats a record. Ctrl-C while waiting leaves the job
running in Bedrock; keel jobs stop works beside a waiting run. A run whose
job ended Failed, Stopped or Expired stays that way; once the cause is
fixed, the same command with --new submits the input again as a new job.

Exit status: 0 every record answered; 1 some records failed, or the job
ended Failed, Stopped or Expired, or a call failed; 2 bad flags or input;
130 interrupted (the job runs on: run again to resume).`

// Polling for the in-process emulator, whose jobs end in seconds.
const (
	emulatorPollFirst = 100 * time.Millisecond // its jobs are validated at once
	emulatorPollMax   = time.Second            // and end within seconds
	emulatorPerHour   = 100_000                // it has no control-plane quota to spare
	// emulatorRole and emulatorS3 are used with --emulator when --role or --s3 is not given.
	emulatorRole = "arn:aws:iam::123456789012:role/keel-emulator"
	emulatorS3   = "s3://keel-jobs/runs"
)

func runJobs(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, jobsUsage)
		return 0
	}
	ctx, _, cancel := interruptsSaying(stderr,
		"keel jobs: stopping; the job (if created) runs on in Bedrock: run the same command again to resume",
		"keel jobs: abandoning the call in flight")
	defer cancel()
	switch args[0] {
	case "run", "submit", "status", "wait", "results", "stop":
		return jobsStep(ctx, args[0], args[1:], stdout, stderr)
	case "list":
		return jobsList(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "keel jobs: unknown subcommand %q; want run, submit, status, wait, results, stop or list\n", args[0])
	return 2
}

// jobsTarget says where the S3 and Bedrock calls go.
type jobsTarget struct {
	region, endpoint, scenario string
	emulated                   bool
}

func (t *jobsTarget) register(fs *flag.FlagSet) {
	fs.StringVar(&t.region, "region", "", "the job's region (default: AWS_REGION or the AWS config's, else us-east-1)")
	fs.StringVar(&t.endpoint, "endpoint", "", "an S3- and Bedrock-compatible base `URL` (such as keel emulate's); S3 is called path-style")
	fs.BoolVar(&t.emulated, "emulator", false, "start keel emulate in-process and use its S3 and Bedrock (no AWS account needed)")
	fs.StringVar(&t.scenario, "scenario", "", "with --emulator: a scenario file (job speed and faults)")
}

func (t *jobsTarget) check() error {
	if t.emulated && t.endpoint != "" {
		return errors.New("--emulator and --endpoint both name where to send; choose one")
	}
	if t.scenario != "" && !t.emulated {
		return errors.New("--scenario needs --emulator")
	}
	if u, err := url.Parse(t.endpoint); t.endpoint != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		return fmt.Errorf("--endpoint: %q is not an http(s) URL such as http://127.0.0.1:4000", t.endpoint)
	}
	if t.region != "" && !config.ValidRegion(t.region) {
		return fmt.Errorf("--region: %q is not a region name such as us-west-2", t.region)
	}
	return nil
}

// clients builds the S3 (path-style when not AWS) and Bedrock clients,
// starting the emulator first when asked (t.endpoint is then its address);
// close stops it.
func (t *jobsTarget) clients(ctx context.Context) (*s3.Client, *bedrock.Client, string, func(), error) {
	closeFn := func() {}
	endpoint := t.endpoint
	if t.emulated {
		s, err := buildEmulator(emulateConfig{scenario: t.scenario, seed: 1, region: "us-east-1"})
		if err != nil {
			return nil, nil, "", closeFn, fmt.Errorf("starting the emulator: %w", err)
		}
		rn, err := s.Listen("127.0.0.1:0")
		if err != nil {
			return nil, nil, "", closeFn, fmt.Errorf("starting the emulator: %w", err)
		}
		closeFn = func() { rn.Close() }
		endpoint = rn.URL
		t.endpoint = rn.URL
	}
	var opts []func(*awsconfig.LoadOptions) error
	if t.region != "" {
		opts = append(opts, awsconfig.WithRegion(t.region))
	}
	fake := credentials.NewStaticCredentialsProvider("KEELFAKEACCESSKEY", "keel-fake-secret", "")
	if t.emulated {
		opts = append(opts, awsconfig.WithCredentialsProvider(fake))
	}
	if endpoint != "" {
		opts = append(opts, awsconfig.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	cfg, err := loadAWSConfig(ctx, opts...)
	if err != nil {
		closeFn()
		return nil, nil, "", func() {}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if endpoint != "" && retrieveCredentials(ctx, cfg.Credentials) != nil {
		cfg.Credentials = fake // an emulator takes any credentials
	}
	sc := s3.NewFromConfig(cfg, func(o *s3.Options) {
		// An output file without a checksum (an emulator's) is no news for the user.
		o.DisableLogOutputChecksumValidationSkipped = true
		if endpoint != "" {
			o.BaseEndpoint, o.UsePathStyle = aws.String(endpoint), true
		}
	})
	bc := bedrock.NewFromConfig(cfg, func(o *bedrock.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	return sc, bc, cfg.Region, closeFn, nil
}

func jobsStep(ctx context.Context, step string, args []string, stdout, stderr io.Writer) int {
	var (
		t                                       jobsTarget
		in, out, state, model, format, s3u, dbp string
		role                                    string
		maxTokens, minRecords, perFile, perHour int
		bytesPerFile                            int64
		first, maxPoll                          time.Duration
		noDLQ, jsonOut, redrive, newJob, redact bool
		configFile                              string
		timeoutHours                            int
	)
	name := "keel jobs " + step
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&state, "state", "", "state file (default: OUT.jobstate); the same one resumes the run")
	fs.StringVar(&out, "out", "", "results JSONL file")
	fs.BoolVar(&jsonOut, "json", false, "print the outcome as JSON")
	t.register(fs)
	if step == "run" || step == "submit" {
		fs.StringVar(&in, "in", "", "input JSONL file (required)")
		fs.StringVar(&model, "model", "", "the job's model id (required)")
		fs.StringVar(&format, "format", "auto", "input format: auto, bedrock or simple")
		fs.IntVar(&maxTokens, "max-tokens", 0, "maxTokens of simple records that set none (default: the model's)")
		fs.StringVar(&s3u, "s3", "", "where the input and output go: s3://bucket/prefix (required; with --emulator, "+emulatorS3+")")
		fs.StringVar(&role, "role", "", "the IAM service role Bedrock runs the job as (required; with --emulator, a made-up one)")
		fs.IntVar(&minRecords, "min-records", 0, fmt.Sprintf("the quota Minimum number of records per batch inference job (default %d)", jobs.DefaultMinRecordsPerJob))
		fs.IntVar(&perFile, "records-per-file", 0, fmt.Sprintf("the quota Records per input file per batch inference job (default %d)", jobs.DefaultRecordsPerFile))
		fs.Int64Var(&bytesPerFile, "bytes-per-file", 0, fmt.Sprintf("the quota Batch inference input file size, in bytes (default %d)", int64(jobs.DefaultBytesPerFile)))
		fs.IntVar(&timeoutHours, "timeout-hours", 0, fmt.Sprintf("the job's timeout in hours, %d to %d (default: Bedrock's)", jobs.MinTimeoutHours, jobs.MaxTimeoutHours))
		fs.BoolVar(&newJob, "new", false, "if the run's job ended Failed, Stopped or Expired, submit the input again as a new job (its dead letters are then removed)")
	}
	if step == "run" || step == "wait" {
		fs.DurationVar(&first, "poll-first", 0, fmt.Sprintf("first wait between polls (default %s; with --emulator %s)", jobs.DefaultFirstPoll, emulatorPollFirst))
		fs.DurationVar(&maxPoll, "poll-max", 0, fmt.Sprintf("longest wait between quiet polls (default %s; with --emulator %s)", jobs.DefaultMaxPoll, emulatorPollMax))
		fs.IntVar(&perHour, "polls-per-hour", 0, fmt.Sprintf("most polls in any hour (default %d)", jobs.DefaultPollsPerHour))
	}
	if step == "run" || step == "results" {
		fs.StringVar(&dbp, "dlq", "keel-dlq.db", "dead-letter database for records the job failed or did not do")
		fs.BoolVar(&noDLQ, "no-dlq", false, "do not park failures (they are still in --out)")
		fs.BoolVar(&redact, "redact", false, "replace message text in parked bodies with \"[redacted N chars]\" (parked records then cannot be redriven)")
		fs.BoolVar(&redrive, "redrive-on-demand", false, "send the records the job failed or did not do through keel's engine on demand (at the on-demand price) before writing --out")
		fs.StringVar(&configFile, "config", "", "with --redrive-on-demand: a keel YAML configuration file (retries, routes, breakers)")
	}
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), jobsUsage+"\n\nFlags of "+name+":")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, name+": "+format+"\n", a...)
		return 2
	}
	fmtv, err := batch.ParseFormat(format)
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q", fs.Arg(0))
	case err != nil:
		return bad("--format: %v", err)
	case (step == "run" || step == "submit") && (in == "" || out == "" || model == ""):
		return bad("--in, --model and --out are required")
	case state == "" && out == "":
		return bad("--state (or the --out of the run) is required")
	case redrive && noDLQ:
		return bad("--redrive-on-demand sends the records parked in the dead-letter queue, which --no-dlq turns off")
	case redact && noDLQ:
		return bad("--redact applies to the dead-letter queue, which --no-dlq turns off")
	case redact && redrive:
		return bad("--redact makes the parked records impossible to redrive, which --redrive-on-demand does; choose one")
	case configFile != "" && !redrive:
		return bad("--config configures the engine of --redrive-on-demand; pass that too")
	case maxTokens < 0 || minRecords < 0 || perFile < 0 || bytesPerFile < 0 || perHour < 0 || first < 0 || maxPoll < 0 || timeoutHours < 0:
		return bad("numbers and durations must not be negative")
	}
	if err := t.check(); err != nil {
		return bad("%v", err)
	}
	if err := jobs.CheckTimeoutHours(timeoutHours); err != nil {
		return bad("--timeout-hours: %v", err)
	}
	if t.emulated {
		if s3u == "" {
			s3u = emulatorS3
		}
		if role == "" {
			role = emulatorRole
		}
	}
	switch {
	case (step == "run" || step == "submit") && s3u == "":
		return bad("--s3 is required: the s3://bucket/prefix Bedrock reads the input from and writes the output to")
	case s3u != "":
		if _, err := jobs.ParseS3URI(s3u); err != nil {
			return bad("--s3: %v", err)
		}
	}
	switch {
	case (step == "run" || step == "submit") && role == "":
		return bad("--role is required: the ARN of the IAM service role Bedrock runs the job as (it must read and write --s3)")
	}
	if state == "" {
		state = out + ".jobstate"
	}
	st, err := jobs.LoadState(state)
	if err != nil {
		return bad("%v", err)
	}
	if st.Step == jobs.StepNew && step != "run" && step != "submit" {
		return bad("%s holds no run; start one with keel jobs run or keel jobs submit", state)
	}
	if t.region == "" {
		t.region = st.Region // the run's job and bucket are there, whatever the environment says now
	}
	// status and stop only read the state (the job's ARN) and write
	// nothing, so they need no lock: stop works while keel jobs run waits.
	if step != "status" && step != "stop" {
		lock, err := lockfile.Acquire(state+".lock", name)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		defer lock.Release()
	}
	o := jobs.Options{In: in, Format: fmtv, Model: model, MaxTokens: maxTokens, Out: out, State: state, S3: s3u, Role: role,
		Limits:       jobs.Limits{MinRecordsPerJob: minRecords, RecordsPerFile: perFile, BytesPerFile: bytesPerFile},
		Polling:      jobs.Polling{First: first, MaxInterval: maxPoll, PerHour: perHour},
		TimeoutHours: int32(timeoutHours), NewJob: newJob, Redact: redact}
	if t.emulated {
		o.Polling.First = orDefault(first, emulatorPollFirst)
		o.Polling.MaxInterval = orDefault(maxPoll, emulatorPollMax)
		if perHour == 0 {
			o.Polling.PerHour = emulatorPerHour
		}
	}
	sc, bc, region, closeTarget, err := t.clients(ctx)
	if err != nil {
		return bad("%v", err)
	}
	defer closeTarget()
	o.S3Client, o.Bedrock, o.Region = sc, bc, region
	if step == "run" || step == "wait" {
		o.Progress = jobsProgress(stderr, isTerminal(stderr))
	}
	o.Retrying = func(what string, err error, wait time.Duration) {
		fmt.Fprintf(stderr, "%s: %s failed (%v); trying again in %v\n", name, what, err, roundWait(wait))
	}
	o.Holding = func(wait time.Duration) {
		fmt.Fprintf(stderr, "%s: earlier runs used this hour's polls of the job; the first poll waits %v\n", name, roundWait(wait))
	}
	r, err := jobs.New(o)
	if err != nil {
		return bad("%v", err)
	}
	if step == "run" {
		// Submit first: bad input is refused before the DLQ is opened.
		if err := r.Submit(ctx); err != nil {
			return jobsReport(stdout, stderr, name, r.St, nil, err, dbp, noDLQ, jsonOut)
		}
	}
	if (step == "run" || step == "results") && !noDLQ {
		store, err := dlq.OpenSQLite(dbp)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		defer store.Close()
		o.DLQ = store
		if redrive {
			// With --emulator, t.endpoint is the emulator the job ran on: it answers these calls too.
			tf := targetFlags{region: t.region, endpoint: t.endpoint, configFile: configFile}
			k, closeEngine, err := tf.open(ctx, stderr)
			if err != nil {
				return bad("%v", err)
			}
			defer closeEngine()
			o.Redrive, o.RedriveLock = keelx.Engine(k), dbp+".redrive.lock"
		}
		if r, err = jobs.New(o); err != nil { // the state as Submit left it, with the DLQ
			return bad("%v", err)
		}
	}
	var sum *jobs.Summary
	switch step {
	case "run":
		sum, err = r.Run(ctx)
	case "submit":
		err = r.Submit(ctx)
	case "status":
		var now *jobs.State
		if now, err = r.Status(ctx); err == nil {
			r.St = now // printed below; the file is left as it is
		}
	case "wait":
		_, err = r.Wait(ctx)
	case "results":
		sum, err = r.Results(ctx)
	case "stop":
		if err = r.Stop(ctx); err == nil {
			fmt.Fprintf(stderr, "%s: asked Bedrock to stop job %s; it goes Stopping, then Stopped: keel jobs wait, then keel jobs results writes what it did and parks the rest\n", name, r.St.JobID)
		}
	}
	return jobsReport(stdout, stderr, name, r.St, sum, err, dbp, noDLQ, jsonOut)
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// roundWait rounds a wait for people: to the second from a second up.
func roundWait(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// jobsProgress prints the job's status as Bedrock reports it: on a
// terminal a bar and a line that rewrites itself, else a line per change.
func jobsProgress(w io.Writer, tty bool) func(*jobs.State) {
	last := ""
	return func(st *jobs.State) {
		line := fmt.Sprintf("job %s %s", st.JobID, st.Status)
		if st.Total > 0 {
			line += fmt.Sprintf(": %d/%d processed, %d succeeded, %d errors", st.Processed, st.Total, st.Succeeded, st.Errors)
		}
		switch {
		case tty:
			bar := ""
			if st.Total > 0 {
				const width = 30 // characters of the bar
				n := int(min(st.Processed, st.Total) * width / st.Total)
				bar = "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "] "
			}
			fmt.Fprintf(w, "\r\033[K%s%s", bar, line)
			if st.Step == jobs.StepEnded {
				fmt.Fprintln(w)
			}
		case line != last:
			fmt.Fprintln(w, line)
		}
		last = line
	}
}

// jobsReport prints a step's outcome and returns the exit status.
func jobsReport(stdout, stderr io.Writer, name string, st *jobs.State, sum *jobs.Summary, err error, dbp string, noDLQ, jsonOut bool) int {
	code := 0
	var je *jobs.JobError
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
		code = 130
	case errors.Is(err, jobs.ErrInvalid):
		code = 2
	default:
		code = 1
	}
	if sum != nil && sum.Failed > 0 {
		code = max(code, 1)
	}
	if jsonOut {
		v := map[string]any{"state": st}
		if sum != nil {
			v["summary"] = sum
		}
		if err != nil {
			v["error"] = err.Error()
		}
		return writeJSON(stdout, stderr, v, code)
	}
	if err != nil && !errors.As(err, &je) {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		if e := classify.FromError(err).Entry; code == 1 && e.Category == catalog.Auth {
			// No credentials, an expired session, a signature refused:
			// the catalog says what to do about it.
			fmt.Fprintln(stderr)
			writeExplanation(stderr, e)
		}
		// Only the resumable steps go on when run again; a stop or status
		// that failed, or results of a job still running, do not.
		resumable := name != "keel jobs stop" && name != "keel jobs status" && !errors.Is(err, jobs.ErrNotEnded)
		if code == 130 || (resumable && st.JobARN != "" && st.Step != jobs.StepDone) {
			fmt.Fprintf(stderr, "%s: the state file says step %q; run the same command again to go on\n", name, st.Step)
		}
		return code
	}
	if st.JobID != "" {
		fmt.Fprintf(stdout, "job %s (%s): %s", st.JobID, st.JobARN, orDefault(st.Status, "Submitted"))
		if st.Total > 0 {
			fmt.Fprintf(stdout, ", %d/%d processed, %d succeeded, %d errors", st.Processed, st.Total, st.Succeeded, st.Errors)
		}
		if st.Message != "" && je == nil { // a JobError says it below
			fmt.Fprintf(stdout, ": %s", st.Message)
		}
		fmt.Fprintln(stdout)
	}
	if sum != nil {
		fmt.Fprintf(stdout, "%d records: %d ok, %d failed; results in %s\n", sum.Records, sum.OK, sum.Failed, st.Out)
		if m := sum.Manifest; m != nil {
			fmt.Fprintf(stdout, "tokens: %d in, %d out (Bedrock's manifest)\n", m.InputTokenCount, m.OutputTokenCount)
		}
		if sum.Failed > 0 && !noDLQ {
			fmt.Fprintf(stdout, "failed records are in the dead-letter queue %s: keel dlq list --db %s; send them on demand with keel dlq redrive --db %s\n", dbp, dbp, dbp)
		}
	}
	if je != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, je)
		if sum == nil || sum.Failed > 0 { // every record answered: a new job would only pay for them again
			fmt.Fprintf(stderr, "%s: to submit the same input again as a new job, run the same keel jobs run with --new\n", name)
		}
	}
	return code
}

func jobsList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		t       jobsTarget
		all     bool
		jsonOut bool
	)
	fs := flag.NewFlagSet("keel jobs list", flag.ContinueOnError)
	t.register(fs)
	fs.BoolVar(&all, "all", false, "every batch job of the account, not only keel's")
	fs.BoolVar(&jsonOut, "json", false, "print the jobs as JSON")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := t.check(); err != nil {
		fmt.Fprintf(stderr, "keel jobs list: %v\n", err)
		return 2
	}
	_, bc, _, closeTarget, err := t.clients(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "keel jobs list: %v\n", err)
		return 2
	}
	defer closeTarget()
	in := &bedrock.ListModelInvocationJobsInput{SortBy: btypes.SortJobsByCreationTime, SortOrder: btypes.SortOrderDescending}
	if !all {
		in.NameContains = aws.String("keel-")
	}
	type row struct {
		JobID, Name, Status, Model string
		Submitted                  time.Time
		Message                    string `json:",omitempty"`
	}
	var rows []row
	for {
		page, err := bc.ListModelInvocationJobs(ctx, in)
		if err != nil {
			fmt.Fprintf(stderr, "keel jobs list: %v\n", err)
			return 1
		}
		for _, j := range page.InvocationJobSummaries {
			rows = append(rows, row{JobID: jobs.JobID(aws.ToString(j.JobArn)), Name: aws.ToString(j.JobName), Status: string(j.Status),
				Model: aws.ToString(j.ModelId), Submitted: aws.ToTime(j.SubmitTime), Message: aws.ToString(j.Message)})
		}
		if aws.ToString(page.NextToken) == "" {
			break
		}
		in.NextToken = page.NextToken
	}
	if jsonOut {
		return writeJSON(stdout, stderr, rows, 0)
	}
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "no jobs")
	}
	for _, r := range rows {
		fmt.Fprintf(stdout, "%s  %-19s  %-18s  %s  %s\n", r.JobID, r.Submitted.UTC().Format(time.DateTime), r.Status, r.Name, r.Model)
	}
	return 0
}
