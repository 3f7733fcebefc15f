package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	btypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/batch"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/dlq"
)

// S3API is the part of aws-sdk-go-v2's *s3.Client the flow uses.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// BedrockAPI is the part of aws-sdk-go-v2's *bedrock.Client the flow uses.
type BedrockAPI interface {
	CreateModelInvocationJob(ctx context.Context, in *bedrock.CreateModelInvocationJobInput, opts ...func(*bedrock.Options)) (*bedrock.CreateModelInvocationJobOutput, error)
	GetModelInvocationJob(ctx context.Context, in *bedrock.GetModelInvocationJobInput, opts ...func(*bedrock.Options)) (*bedrock.GetModelInvocationJobOutput, error)
	ListModelInvocationJobs(ctx context.Context, in *bedrock.ListModelInvocationJobsInput, opts ...func(*bedrock.Options)) (*bedrock.ListModelInvocationJobsOutput, error)
	StopModelInvocationJob(ctx context.Context, in *bedrock.StopModelInvocationJobInput, opts ...func(*bedrock.Options)) (*bedrock.StopModelInvocationJobOutput, error)
}

// Options configure a run. In, Model, Out, S3, Role, S3Client and Bedrock are required.
type Options struct {
	In     string       // input JSONL: Bedrock batch records or simple records (package batch's formats)
	Format batch.Format // FormatAuto recognises each line
	Model  string       // the job's model; simple records naming another are refused
	// MaxTokens is the maxTokens of simple records that set none; zero: the model's default.
	MaxTokens int
	Out       string // results JSONL, written whole when the job has ended
	// State is the state file; "" means Out + ".jobstate".
	State string
	S3    string // s3://bucket/prefix under which the run's input and output go
	Role  string // the IAM service role ARN Bedrock runs the job as

	S3Client S3API
	Bedrock  BedrockAPI
	// DLQ parks failed and unprocessed records; nil: they are only in the results file.
	DLQ dlq.Store
	// Redact replaces the text of messages and system prompts in the
	// bodies parked in the DLQ with "[redacted N chars]" (dlq.RedactBody),
	// as keel batch run --redact does; such dead letters cannot be
	// redriven, so Redact and Redrive do not go together.
	Redact bool
	// Region is the region the clients call. It is recorded in the state
	// file when the run begins: a later step in another region is refused,
	// and the dead letters name the recorded one, for redrive.
	Region string
	// Redrive, when set (with DLQ), sends the records the job failed or did
	// not do through keel's engine on demand before the results are
	// written, so the run ends with every record answered or dead-lettered.
	Redrive dlq.Sender
	// RedriveLock is the lock file that keeps redrives of the DLQ apart
	// (dlq.RedriveOptions.Lock); "": none.
	RedriveLock string

	Limits  Limits
	Polling Polling
	// NewJob, when the run's job ended Failed, Stopped or Expired, submits
	// the input again as a new job (the run's next attempt) instead of
	// reporting the old one's end; the old job's dead letters are removed
	// when the new job's results are written. Without it, a run that finds
	// its job ended that way refuses to go on and says so.
	NewJob bool
	// TimeoutHours is the job's timeoutDurationInHours (MinTimeoutHours to
	// MaxTimeoutHours); zero: Bedrock's default. It is part of the run:
	// recorded in the state file, and another value resumes no run.
	TimeoutHours int32
	// Clock is the time seam; nil: the wall clock.
	Clock clock.Clock
	// Rand returns numbers in [0, 1) for jitter; nil: math/rand/v2.
	Rand func() float64
	// Progress, when set, is called after every poll that answered.
	Progress func(*State)
	// Retrying, when set, is called after a control-plane call (what names
	// it) failed in a way worth trying again, before waiting wait.
	Retrying func(what string, err error, wait time.Duration)
	// Holding, when set, is called when earlier runs used up the hour's
	// polls (Polling.PerHour), before Wait holds its first poll for wait.
	Holding func(wait time.Duration)

	// crash, when set, is called at each kill point; an error it returns
	// ends the run there, as a kill would (tests).
	crash func(point string) error
	// partSize, when set, replaces multipartPartSize and
	// multipartThreshold (tests: the emulator's S3 takes parts from 5 MiB).
	partSize int64
}

// Summary is what Results wrote.
type Summary struct {
	JobID, Status, Message string
	Records, OK, Failed    int
	Manifest               *Manifest // nil when the job wrote none
}

// Manifest is Bedrock's manifest.json.out: the job's counts and token totals.
type Manifest struct {
	TotalRecordCount     int64 `json:"totalRecordCount"`
	ProcessedRecordCount int64 `json:"processedRecordCount"`
	SuccessRecordCount   int64 `json:"successRecordCount"`
	ErrorRecordCount     int64 `json:"errorRecordCount"`
	InputTokenCount      int64 `json:"inputTokenCount"`
	OutputTokenCount     int64 `json:"outputTokenCount"`
}

// JobError is a job that ended without doing all its records: Failed,
// Stopped or Expired. Its records are in the results file and dead-lettered.
type JobError struct {
	JobID, Status, Message string
}

func (e *JobError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("jobs: job %s ended %s", e.JobID, e.Status)
	}
	return fmt.Sprintf("jobs: job %s ended %s: %s", e.JobID, e.Status, e.Message)
}

// ErrInvalid matches (errors.Is) every error about the input or the
// options, found before anything is uploaded: fix them and run again.
var ErrInvalid = errors.New("jobs: invalid input")

type invalidError struct{ error }

func (e invalidError) Unwrap() error { return e.error }
func (invalidError) Is(t error) bool { return t == ErrInvalid }

// ErrNotEnded is returned (wrapped) by Results when Bedrock says the job
// has not reached a final status yet: Wait for it first.
var ErrNotEnded = errors.New("jobs: the job has not ended yet")

// ErrNoJob is returned by the steps that need a job when the state file has none.
var ErrNoJob = errors.New("jobs: the state file records no job yet; run submit (or run) first")

// Runner runs one job's steps against a state file. Not safe for concurrent use.
type Runner struct {
	o     Options
	loc   S3Location
	clk   clock.Clock
	rand  func() float64
	St    *State // the state as last saved
	input *batch.Input
}

// New checks o and loads the state file.
func New(o Options) (*Runner, error) {
	if o.State == "" {
		if o.Out == "" {
			return nil, errors.New("jobs: no state file and no results file to name it after")
		}
		o.State = o.Out + ".jobstate"
	}
	if o.S3Client == nil || o.Bedrock == nil {
		return nil, errors.New("jobs: Options.S3Client and Options.Bedrock are required")
	}
	if o.Redact && o.Redrive != nil {
		return nil, invalidError{errors.New("jobs: redacted dead letters cannot be redriven on demand: choose Redact or Redrive")}
	}
	r := &Runner{o: o, clk: o.Clock, rand: o.Rand}
	if r.clk == nil {
		r.clk = clock.Real{}
	}
	if r.rand == nil {
		r.rand = rand.Float64
	}
	st, err := LoadState(o.State)
	if err != nil {
		return nil, err
	}
	r.St = st
	if st.Region != "" && o.Region != "" && st.Region != o.Region {
		return nil, invalidError{fmt.Errorf("jobs: state file %s is a run in region %s, not %s: its job and bucket are there; pass --region %s", o.State, st.Region, o.Region, st.Region)}
	}
	if st.S3 != "" {
		if r.loc, err = ParseS3URI(st.S3); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Run does every step that is left: Submit, Wait, Results. Run it again
// after a crash or kill and it goes on from the last recorded step. A job
// that ended Failed, Stopped or Expired returns a *JobError after its
// results are written.
func (r *Runner) Run(ctx context.Context) (*Summary, error) {
	if err := r.Submit(ctx); err != nil {
		return nil, err
	}
	if _, err := r.Wait(ctx); err != nil {
		return nil, err
	}
	return r.Results(ctx)
}

func (r *Runner) save() error { return r.St.save(r.o.State, r.clk.Now()) }

// point is a kill point: the test seam ends the run there when it says so.
func (r *Runner) point(name string) error {
	if r.o.crash != nil {
		return r.o.crash(name)
	}
	return nil
}

// Submit validates the input, uploads its files and creates the job; steps
// already recorded are skipped.
func (r *Runner) Submit(ctx context.Context) error {
	if r.St.Step == StepNew {
		if err := r.plan(); err != nil {
			return invalidError{err}
		}
		if err := r.save(); err != nil {
			return err
		}
	} else if err := r.sameRun(); err != nil {
		return invalidError{err}
	}
	if err := r.point("validated"); err != nil {
		return err
	}
	if r.o.NewJob && r.St.Step == StepDone && endedUndone(r.St.Status) && r.St.ResultsFailed == 0 {
		// A job that ended Stopped or Expired whose records were all
		// answered anyway (redriven on demand): a new job would pay for
		// every one again.
		return invalidError{fmt.Errorf("jobs: every record of this run is answered (%d ok, in %s); a new job would send them all again, so --new (Options.NewJob) is refused", r.St.ResultsOK, r.St.Out)}
	}
	if r.o.NewJob && (r.St.Step == StepEnded || r.St.Step == StepDone) && endedUndone(r.St.Status) {
		r.nextAttempt()
		if err := r.save(); err != nil {
			return err
		}
	}
	if r.St.Step == StepValidated {
		if err := r.upload(ctx); err != nil {
			return err
		}
	}
	if r.St.Step == StepCreated && r.St.JobARN == "" {
		r.St.Step = StepUploaded // recorded by a keel that took a create without a jobArn for one
	}
	if r.St.Step == StepUploaded {
		if err := r.create(ctx); err != nil {
			return err
		}
	}
	return nil
}

// sameRun refuses options that differ from the state file's run.
func (r *Runner) sameRun() error {
	st := r.St
	for _, c := range []struct{ name, was, now string }{
		{"--in", st.In, r.o.In}, {"--model", st.Model, r.o.Model}, {"--s3", st.S3, r.o.S3}, {"--role", st.Role, r.o.Role}, {"--out", st.Out, r.o.Out},
	} {
		if c.now != "" && c.now != c.was {
			return fmt.Errorf("jobs: state file %s is the run with %s %s, not %s; pass that, or another --state for a new run", r.o.State, c.name, c.was, c.now)
		}
	}
	if h := r.o.TimeoutHours; h != 0 && h != st.TimeoutHours {
		return fmt.Errorf("jobs: state file %s is the run with --timeout-hours %d, not %d; pass that, or another --state for a new run", r.o.State, st.TimeoutHours, h)
	}
	return nil
}

// plan reads and validates the input and plans the files and the job.
func (r *Runner) plan() error {
	o := r.o
	switch {
	case o.In == "":
		return errors.New("jobs: no input file (--in)")
	case o.Model == "":
		return errors.New("jobs: no model (--model): a batch job runs one model")
	case o.Out == "":
		return errors.New("jobs: no results file (--out)")
	}
	loc, err := ParseS3URI(o.S3)
	if err != nil {
		return err
	}
	if err := CheckRole(o.Role); err != nil {
		return err
	}
	if err := CheckTimeoutHours(int(o.TimeoutHours)); err != nil {
		return err
	}
	lim := o.Limits.withDefaults()
	inf, sizes, err := openInput(o, true)
	if err != nil {
		return err
	}
	inf.Close() // read again, one file at a time, to upload
	in := inf.in
	ids := make([]string, len(sizes))
	for i, rec := range in.Records {
		ids[i] = fmt.Sprintf("%q (line %d)", rec.ID, rec.Line)
	}
	spans, err := split(sizes, ids, lim)
	if err != nil {
		return err
	}
	invocation := btypes.ModelInvocationTypeInvokeModel
	if in.Records[0].Format == batch.FormatSimple {
		invocation = btypes.ModelInvocationTypeConverse
	}
	h := sha256.New()
	parts := []string{in.SHA256, o.Model, loc.Bucket, loc.Prefix, o.Role, string(invocation), fmt.Sprint(o.MaxTokens, lim.RecordsPerFile, lim.BytesPerFile)}
	if o.TimeoutHours != 0 { // only then, so runs without one keep the names they had
		parts = append(parts, fmt.Sprint("timeout ", o.TimeoutHours))
	}
	for _, s := range parts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	runID := hex.EncodeToString(h.Sum(nil))
	base := "keel-" + runID[:20]
	st := &State{Version: stateVersion, Step: StepValidated, In: o.In, InputSHA256: in.SHA256, Records: len(in.Records),
		Model: o.Model, S3: o.S3, Role: o.Role, InvocationType: string(invocation), Out: o.Out, Region: o.Region,
		Format: string(o.Format), MaxTokens: o.MaxTokens, TimeoutHours: o.TimeoutHours,
		KeelRecordIDs: true, RunID: runID, JobName: base, Token: "keel-" + runID,
		InputURI: loc.URI(loc.Key(base + "/input/")), OutputURI: loc.URI(loc.Key(base + "/output/"))}
	for i, s := range spans {
		st.Files = append(st.Files, File{Key: loc.Key(fmt.Sprintf("%s/input/part-%05d.jsonl", base, i+1)), Start: s.Start, End: s.End, Bytes: s.Bytes})
	}
	r.St, r.loc, r.input = st, loc, in
	return nil
}

// wireID is the recordId keel sends for the record at index i of the
// input: "K" and ten digits. Bedrock's guide asks for an alphanumeric
// recordId (older versions: "11 character alphanumeric string"), while
// keel's inputs may carry any id ("q-0001", 7, "a b"); the results are
// joined back to the user's ids by index. Distinct ids per run also mean
// no id of one input can be read as another's.
func wireID(i int) string { return fmt.Sprintf("K%010d", i) }

// batchLine is one line of an uploaded input file.
type batchLine struct {
	RecordID   string          `json:"recordId"`
	ModelInput json.RawMessage `json:"modelInput"`
}

// inputFile is the validated input, open, whose batch lines are built
// when asked, one record at a time: memory holds the lines of at most one
// file (of one part, for a multipart upload), never the whole input.
type inputFile struct {
	in      *batch.Input
	f       *os.File
	o       Options
	keelIDs bool // send keel's recordIds (wireID), else the input's
}

// openInput reads and validates the input and builds every record's batch
// line once, keeping only its length (sizes), so that a record that cannot
// be sent is refused before anything is uploaded. One job has one model
// and one invocation type, so the records must agree on both.
func openInput(o Options, keelIDs bool) (*inputFile, []int64, error) {
	in, err := batch.ReadInput(o.In, batch.InputOptions{Format: o.Format, Model: o.Model})
	if err != nil {
		return nil, nil, err
	}
	if len(in.Formats) > 1 {
		return nil, nil, fmt.Errorf("jobs: %s mixes Bedrock-format and simple records (%d and %d); a job sends all its records one way (InvokeModel or Converse), so use one format", o.In, in.Formats[batch.FormatBedrock], in.Formats[batch.FormatSimple])
	}
	f, err := os.Open(o.In)
	if err != nil {
		return nil, nil, fmt.Errorf("jobs: %w", err)
	}
	inf := &inputFile{in: in, f: f, o: o, keelIDs: keelIDs}
	sizes := make([]int64, len(in.Records))
	for i := range in.Records {
		l, err := inf.line(i)
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		sizes[i] = int64(len(l))
	}
	return inf, sizes, nil
}

// line builds the batch line (with its '\n') of record i.
func (inf *inputFile) line(i int) ([]byte, error) {
	o, rec := inf.o, inf.in.Records[i]
	_, model, body, err := batch.RecordRequest(inf.f, rec, o.Model, o.MaxTokens)
	if err != nil {
		return nil, err
	}
	if model != o.Model {
		return nil, fmt.Errorf("jobs: %s line %d: record %s names model %q, but a job runs one model (--model %s); drop its \"model\" or run it with keel batch run", o.In, rec.Line, rec.RawID, model, o.Model)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	id := rec.ID
	if inf.keelIDs {
		id = wireID(i)
	}
	if err := enc.Encode(batchLine{RecordID: id, ModelInput: body}); err != nil {
		return nil, fmt.Errorf("jobs: line %d: %w", rec.Line, err)
	}
	return b.Bytes(), nil
}

// lines yields the batch lines of records [start, end).
func (inf *inputFile) lines(start, end int) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for i := start; i < end; i++ {
			l, err := inf.line(i)
			if !yield(l, err) || err != nil {
				return
			}
		}
	}
}

func (inf *inputFile) Close() error { return inf.f.Close() }

// loadInput reads the input again on resume, checks it is the same file
// and leaves it open for its lines; the caller closes it.
func (r *Runner) loadInput() (*inputFile, error) {
	o := r.o
	o.In, o.Model, o.Format, o.MaxTokens = r.St.In, r.St.Model, batch.Format(r.St.Format), r.St.MaxTokens
	inf, _, err := openInput(o, r.St.KeelRecordIDs)
	if err != nil {
		return nil, err
	}
	if inf.in.SHA256 != r.St.InputSHA256 {
		inf.Close()
		return nil, fmt.Errorf("jobs: %s changed since the run began (its SHA-256 differs from the state file's); restore it, or start a new run with another --state", r.St.In)
	}
	r.input = inf.in
	return inf, nil
}

// upload puts every file not yet uploaded. PutObject of the same key and
// bytes is idempotent, so a file uploaded but not recorded is put again.
func (r *Runner) upload(ctx context.Context) error {
	inf, err := r.loadInput()
	if err != nil {
		return err
	}
	defer inf.Close()
	for i := range r.St.Files {
		f := &r.St.Files[i]
		if f.Uploaded {
			continue
		}
		if err := r.put(ctx, f.Key, f.Bytes, inf.lines(f.Start, f.End)); err != nil {
			return fmt.Errorf("jobs: uploading s3://%s/%s: %w", r.loc.Bucket, f.Key, err)
		}
		if err := r.point("uploaded-unrecorded"); err != nil {
			return err
		}
		f.Uploaded = true
		if err := r.save(); err != nil {
			return err
		}
		if err := r.point(fmt.Sprintf("uploaded-%d", i+1)); err != nil {
			return err
		}
	}
	r.St.Step = StepUploaded
	if err := r.save(); err != nil {
		return err
	}
	return r.point("uploaded")
}

// errNoARN is a CreateModelInvocationJob answered without the jobArn the
// API always sends: a broken proxy or endpoint. It is retried.
var errNoARN = errors.New("CreateModelInvocationJob answered without a jobArn")

// nextAttempt puts the run back to "uploaded" (its files are in S3) for
// its next job: the name and token gain the attempt's number, and the
// ended job is listed as replaced.
func (r *Runner) nextAttempt() {
	st := r.St
	if st.JobID != "" {
		st.Replaced = append(st.Replaced, st.JobID)
	}
	st.Attempt = max(st.Attempt, 1) + 1
	base := "keel-" + st.RunID[:20]
	st.JobName, st.Token = fmt.Sprintf("%s-%d", base, st.Attempt), fmt.Sprintf("keel-%s-%d", st.RunID, st.Attempt)
	st.Step = StepUploaded
	st.JobARN, st.JobID, st.Status, st.Message = "", "", "", ""
	st.Processed, st.Succeeded, st.Errors, st.Total = 0, 0, 0, 0
	st.ResultsOK, st.ResultsFailed, st.Manifest = 0, 0, nil
}

// endedUndone reports whether a job status is a final one in which the job
// did not do all its records: Failed, Stopped, Expired.
func endedUndone(status string) bool {
	switch btypes.ModelInvocationJobStatus(status) {
	case btypes.ModelInvocationJobStatusFailed, btypes.ModelInvocationJobStatusStopped, btypes.ModelInvocationJobStatusExpired:
		return true
	}
	return false
}

// create creates the job, or finds the one an earlier attempt created: it
// looks for a job of the run's name first, and the create carries the run's
// clientRequestToken, so Bedrock answers a repeat with the first job. A job
// found that ended Failed, Stopped or Expired is passed over for the next
// attempt with Options.NewJob, and refused without it.
func (r *Runner) create(ctx context.Context) error {
	var arn string
	for {
		found, status, err := r.findJob(ctx)
		if err != nil {
			return err
		}
		if found == "" || !endedUndone(status) {
			arn = found
			break
		}
		if !r.o.NewJob {
			return fmt.Errorf("jobs: this run's job %s (%s) has already ended %s; to submit the input again as a new job, run again with --new (Options.NewJob)", JobID(found), r.St.JobName, status)
		}
		r.St.JobID = JobID(found)
		r.nextAttempt()
		if err := r.save(); err != nil {
			return err
		}
	}
	q := newPoller(r.o.Polling, r.clk, r.rand)
	for arn == "" {
		in := &bedrock.CreateModelInvocationJobInput{
			JobName: aws.String(r.St.JobName), ClientRequestToken: aws.String(r.St.Token),
			ModelId: aws.String(r.St.Model), RoleArn: aws.String(r.St.Role),
			ModelInvocationType: btypes.ModelInvocationType(r.St.InvocationType),
			InputDataConfig: &btypes.ModelInvocationJobInputDataConfigMemberS3InputDataConfig{Value: btypes.ModelInvocationJobS3InputDataConfig{
				S3Uri: aws.String(r.St.InputURI), S3InputFormat: btypes.S3InputFormatJsonl}},
			OutputDataConfig: &btypes.ModelInvocationJobOutputDataConfigMemberS3OutputDataConfig{Value: btypes.ModelInvocationJobS3OutputDataConfig{
				S3Uri: aws.String(r.St.OutputURI)}},
		}
		if r.St.TimeoutHours > 0 {
			in.TimeoutDurationInHours = aws.Int32(r.St.TimeoutHours)
		}
		q.polled()
		out, err := r.o.Bedrock.CreateModelInvocationJob(ctx, in)
		if err == nil && aws.ToString(out.JobArn) == "" {
			err = errNoARN // asking again with the same token gets the job's ARN
		}
		if err == nil {
			arn = aws.ToString(out.JobArn)
			break
		}
		if err := r.again(ctx, q, "creating job "+r.St.JobName, err); err != nil {
			return err
		}
	}
	if err := r.point("created-unrecorded"); err != nil {
		return err
	}
	r.St.JobARN, r.St.JobID = arn, JobID(arn)
	r.St.Step = StepCreated
	if err := r.save(); err != nil {
		return err
	}
	return r.point("created")
}

// findJob returns the ARN and status of a job named as this run's, or "".
func (r *Runner) findJob(ctx context.Context) (arn, status string, err error) {
	in := &bedrock.ListModelInvocationJobsInput{NameContains: aws.String(r.St.JobName)}
	q := newPoller(r.o.Polling, r.clk, r.rand)
	for {
		out, err := r.o.Bedrock.ListModelInvocationJobs(ctx, in)
		if err != nil {
			if err := r.again(ctx, q, "looking for job "+r.St.JobName+" before creating it", err); err != nil {
				return "", "", err
			}
			continue
		}
		for _, s := range out.InvocationJobSummaries {
			if aws.ToString(s.JobName) == r.St.JobName {
				return aws.ToString(s.JobArn), string(s.Status), nil
			}
		}
		if aws.ToString(out.NextToken) == "" {
			return "", "", nil
		}
		in.NextToken = out.NextToken
	}
}

// again follows a control-plane call that failed with err: an error not
// worth trying again, or one past the poller's patience, ends the step
// (what names the call); otherwise Options.Retrying is told and the
// poller's next wait waited, for the caller to try again.
func (r *Runner) again(ctx context.Context, q *poller, what string, err error) error {
	if !retryable(err) {
		return fmt.Errorf("jobs: %s: %w", what, err)
	}
	d, gerr := q.next(err)
	if gerr != nil {
		return fmt.Errorf("jobs: %s: gave up after %d tries: %w", what, q.errs, err)
	}
	r.retrying(what, err, d)
	return sleep(ctx, r.clk, d)
}

// retrying tells Options.Retrying, if any, of a failed call tried again after wait.
func (r *Runner) retrying(what string, err error, wait time.Duration) {
	if r.o.Retrying != nil {
		r.o.Retrying(what, err, wait)
	}
}

// JobID is the last part of a job ARN (…:model-invocation-job/ID), the
// folder Bedrock writes the output under.
func JobID(arn string) string {
	if i := strings.LastIndexByte(arn, '/'); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

// terminal reports whether a job status is final.
func terminal(s btypes.ModelInvocationJobStatus) bool {
	switch s {
	case btypes.ModelInvocationJobStatusCompleted, btypes.ModelInvocationJobStatusPartiallyCompleted,
		btypes.ModelInvocationJobStatusFailed, btypes.ModelInvocationJobStatusStopped, btypes.ModelInvocationJobStatusExpired:
		return true
	}
	return false
}

// Status asks Bedrock once for the job's status and returns the state
// with that answer in it. It saves nothing and leaves r.St as it was: a
// step that only looks needs no lock, and must not write back a state
// another process has moved on since it was read.
func (r *Runner) Status(ctx context.Context) (*State, error) {
	if r.St.JobARN == "" {
		return nil, ErrNoJob
	}
	out, err := r.o.Bedrock.GetModelInvocationJob(ctx, &bedrock.GetModelInvocationJobInput{JobIdentifier: aws.String(r.St.JobARN)})
	if err != nil {
		return nil, fmt.Errorf("jobs: job %s: %w", r.St.JobID, err)
	}
	st := *r.St
	st.observe(out)
	return &st, nil
}

// observe puts what a GetModelInvocationJob said in st.
func (st *State) observe(out *bedrock.GetModelInvocationJobOutput) {
	st.Status, st.Message = string(out.Status), aws.ToString(out.Message)
	st.Processed, st.Succeeded = aws.ToInt64(out.ProcessedRecordCount), aws.ToInt64(out.SuccessRecordCount)
	st.Errors, st.Total = aws.ToInt64(out.ErrorRecordCount), aws.ToInt64(out.TotalRecordCount)
	if terminal(out.Status) && st.Step == StepCreated {
		st.Step = StepEnded
	}
}

// Wait polls the job until it reaches a final status (Polling says how
// often) and records it. It returns at once when that is already recorded.
// Leaving Wait (ctx done) leaves the job running; Wait again resumes.
func (r *Runner) Wait(ctx context.Context) (*State, error) {
	if r.St.Step == StepEnded || r.St.Step == StepDone {
		return r.St, nil
	}
	if r.St.JobARN == "" {
		return nil, ErrNoJob
	}
	q := newPoller(r.o.Polling, r.clk, r.rand).since(r.St.Polls)
	if d := q.ceiling(0); d > 0 {
		// Earlier runs used up the hour's polls: a restart loop polls no faster.
		if r.o.Holding != nil {
			r.o.Holding(d)
		}
		if err := sleep(ctx, r.clk, d); err != nil {
			return nil, err
		}
	}
	for {
		q.polled()
		r.St.Polls = slices.Clone(q.recent)
		out, err := r.o.Bedrock.GetModelInvocationJob(ctx, &bedrock.GetModelInvocationJobInput{JobIdentifier: aws.String(r.St.JobARN)})
		if err != nil && !retryable(err) {
			return nil, fmt.Errorf("jobs: polling job %s: %w", r.St.JobID, err)
		}
		if err == nil {
			r.St.observe(out)
			if r.o.Progress != nil {
				r.o.Progress(r.St)
			}
		}
		if err := r.save(); err != nil { // the poll's time too, when it failed
			return nil, err
		}
		if err == nil {
			if r.St.Step == StepEnded {
				return r.St, r.point("ended")
			}
			if err := r.point("polled"); err != nil {
				return nil, err
			}
		}
		d, gerr := q.next(err)
		if gerr != nil {
			return nil, fmt.Errorf("jobs: polling job %s: %d polls in a row failed (the job runs on; wait again): %w", r.St.JobID, q.errs, gerr)
		}
		if err != nil {
			r.retrying("polling job "+r.St.JobID, err, d)
		}
		if err := sleep(ctx, r.clk, d); err != nil {
			return nil, err
		}
	}
}

// Stop asks Bedrock to stop the job. The job goes to Stopping, then
// Stopped; Wait and Results then write what it did and dead-letter the rest.
// A job the state records as ended is not sent a stop. Stop saves nothing
// (it needs no lock); after a stop, r.St shows the job Stopping, as Bedrock
// has moved it, and the file is left as it is.
func (r *Runner) Stop(ctx context.Context) error {
	if r.St.JobARN == "" {
		return ErrNoJob
	}
	if r.St.Step == StepEnded || r.St.Step == StepDone {
		return fmt.Errorf("jobs: job %s already ended %s; there is nothing to stop", r.St.JobID, r.St.Status)
	}
	if _, err := r.o.Bedrock.StopModelInvocationJob(ctx, &bedrock.StopModelInvocationJobInput{JobIdentifier: aws.String(r.St.JobARN)}); err != nil {
		return fmt.Errorf("jobs: stopping job %s: %w", r.St.JobID, err)
	}
	r.St.Status = string(btypes.ModelInvocationJobStatusStopping)
	return nil
}

// callOp is the Bedrock Runtime operation a record stands for, for redrive.
func (r *Runner) callOp() attempt.Op {
	if r.St.InvocationType == string(btypes.ModelInvocationTypeConverse) {
		return attempt.Converse
	}
	return attempt.Invoke
}
