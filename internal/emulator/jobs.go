package emulator

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/s3"
)

// Batch inference (CreateModelInvocationJob and its kin): jobs read JSONL
// records from the emulator's S3, answer each with the model's reply as
// InvokeModel (or Converse) would, and write the output files Bedrock
// writes. A job moves through its statuses on the server's clock, one
// fault.Job.Step each; Options.JobPlanner sets the pace, the quotas and the
// faults.

// Job statuses, as Bedrock spells them.
const (
	JobSubmitted          = "Submitted"
	JobValidating         = "Validating"
	JobScheduled          = "Scheduled"
	JobInProgress         = "InProgress"
	JobCompleted          = "Completed"
	JobPartiallyCompleted = "PartiallyCompleted"
	JobFailed             = "Failed"
	JobStopping           = "Stopping"
	JobStopped            = "Stopped"
	JobExpired            = "Expired"
)

// DefaultJobStep is the default time a job stays in each status: short
// enough for an interactive try (a job ends in about ten seconds), long
// enough for a poller to see every status.
const DefaultJobStep = 2 * time.Second

// DefaultJobLimits are Bedrock's default batch inference quotas (the AWS
// General Reference's Bedrock quotas; the minimum is per model, 100 for
// most): see docs/emulator.md.
var DefaultJobLimits = fault.JobLimits{
	MinRecordsPerJob:  100,
	MaxRecordsPerFile: 50_000,
	MaxRecordsPerJob:  50_000,
	MaxFileBytes:      1 << 30,
	MaxJobBytes:       5 << 30,
}

const (
	// progressSteps is how many parts a job's records are answered in,
	// spread over its InProgress step, so a poller sees the processed count
	// grow.
	progressSteps = 4
	// maxJobPage is the largest page ListModelInvocationJobs returns.
	maxJobPage = 1000
	// Bedrock's bounds on timeoutDurationInHours, and its default.
	minJobTimeoutHours, maxJobTimeoutHours, defaultJobTimeoutHours = 24, 168, 168
	// maxJobs bounds the jobs the emulator remembers; past it, create is
	// answered ServiceQuotaExceededException, so a client looping on create
	// cannot grow the emulator without end.
	maxJobs = 10_000
)

// Patterns of CreateModelInvocationJob's fields, from its API reference.
var (
	jobNamePattern = regexp.MustCompile(`^[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}$`)
	roleARNPattern = regexp.MustCompile(`^arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+$`)
)

// jobTable holds the server's batch inference jobs.
type jobTable struct {
	mu      sync.Mutex
	closed  bool // Server.Close: no more jobs start
	byID    map[string]*job
	byToken map[string]*job // by region and clientRequestToken
	order   []*job          // by submission
	seq     uint64
	running sync.WaitGroup // one goroutine per job until it ends
}

// job is one batch inference job. Its mutable fields are guarded by
// jobTable.mu.
type job struct {
	id, arn, name, model, role, token, region string
	inURI, outURI, invocationType             string
	timeoutHours                              int32
	plan                                      fault.Job
	stop                                      chan struct{} // closed by StopModelInvocationJob
	done                                      chan struct{} // closed when runJob returns

	status, message                    string
	submit, modified, end              time.Time
	total, processed, success, errored int64
}

// closeJobs stops every job's goroutine and waits for them to end.
func (s *Server) closeJobs() {
	s.jobs.mu.Lock()
	s.jobs.closed = true
	s.jobs.mu.Unlock()
	s.jobs.running.Wait()
}

type createJobInput struct {
	JobName            string `json:"jobName"`
	RoleARN            string `json:"roleArn"`
	ClientRequestToken string `json:"clientRequestToken"`
	ModelID            string `json:"modelId"`
	InputDataConfig    struct {
		S3 *struct {
			URI    string `json:"s3Uri"`
			Format string `json:"s3InputFormat"`
		} `json:"s3InputDataConfig"`
	} `json:"inputDataConfig"`
	OutputDataConfig struct {
		S3 *struct {
			URI string `json:"s3Uri"`
		} `json:"s3OutputDataConfig"`
	} `json:"outputDataConfig"`
	TimeoutDurationInHours *int32          `json:"timeoutDurationInHours"`
	ModelInvocationType    string          `json:"modelInvocationType"`
	Tags                   json.RawMessage `json:"tags"`
	VPCConfig              json.RawMessage `json:"vpcConfig"`
}

// validationMessage words a constraint failure as AWS does.
func validationMessage(value, field, constraint string) string {
	return "1 validation error detected: Value '" + value + "' at '" + field + "' failed to satisfy constraint: " + constraint
}

// parseS3URI splits an s3://bucket/key URI; key may be empty.
func parseS3URI(uri string) (bucket, key string, ok bool) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return "", "", false
	}
	bucket, key, _ = strings.Cut(rest, "/")
	return bucket, key, s3.ValidBucketName(bucket) && len(uri) <= 1024
}

// serveCreateJob serves CreateModelInvocationJob (POST /model-invocation-job).
func (x *exchange) serveCreateJob() {
	if !x.readBody() || !x.verifyBody() {
		return
	}
	var in createJobInput
	if err := json.Unmarshal(x.body, &in); err != nil {
		x.fail(codeValidation, "The request body is not a CreateModelInvocationJob input: "+err.Error())
		return
	}
	var inURI, outURI string
	if in.InputDataConfig.S3 != nil {
		inURI = in.InputDataConfig.S3.URI
	}
	if in.OutputDataConfig.S3 != nil {
		outURI = in.OutputDataConfig.S3.URI
	}
	hours := int32(defaultJobTimeoutHours)
	if in.TimeoutDurationInHours != nil {
		hours = *in.TimeoutDurationInHours
	}
	switch {
	case !jobNamePattern.MatchString(in.JobName):
		x.fail(codeValidation, validationMessage(in.JobName, "jobName", `Member must satisfy regular expression pattern: `+jobNamePattern.String()))
	case !roleARNPattern.MatchString(in.RoleARN) || len(in.RoleARN) > 2048:
		x.fail(codeValidation, validationMessage(in.RoleARN, "roleArn", `Member must satisfy regular expression pattern: `+roleARNPattern.String()))
	case in.ModelID == "":
		x.fail(codeValidation, validationMessage("null", "modelId", "Member must not be null"))
	case in.InputDataConfig.S3 == nil:
		x.fail(codeValidation, validationMessage("null", "inputDataConfig.s3InputDataConfig", "Member must not be null"))
	case in.OutputDataConfig.S3 == nil:
		x.fail(codeValidation, validationMessage("null", "outputDataConfig.s3OutputDataConfig", "Member must not be null"))
	case !validS3URI(inURI):
		x.fail(codeValidation, validationMessage(inURI, "inputDataConfig.s3InputDataConfig.s3Uri", "Member must be an S3 URI such as s3://bucket/prefix/"))
	case !validS3URI(outURI):
		x.fail(codeValidation, validationMessage(outURI, "outputDataConfig.s3OutputDataConfig.s3Uri", "Member must be an S3 URI such as s3://bucket/prefix/"))
	case in.InputDataConfig.S3.Format != "" && in.InputDataConfig.S3.Format != "JSONL":
		x.fail(codeValidation, validationMessage(in.InputDataConfig.S3.Format, "inputDataConfig.s3InputDataConfig.s3InputFormat", "Member must satisfy enum value set: [JSONL]"))
	case hours < minJobTimeoutHours || hours > maxJobTimeoutHours:
		x.fail(codeValidation, validationMessage(strconv.Itoa(int(hours)), "timeoutDurationInHours",
			fmt.Sprintf("Member must have value between %d and %d", minJobTimeoutHours, maxJobTimeoutHours)))
	case in.ModelInvocationType != "" && in.ModelInvocationType != "InvokeModel" && in.ModelInvocationType != "Converse":
		x.fail(codeValidation, validationMessage(in.ModelInvocationType, "modelInvocationType", "Member must satisfy enum value set: [InvokeModel, Converse]"))
	default:
		x.createJob(&in, inURI, outURI, hours)
	}
}

func validS3URI(uri string) bool {
	_, _, ok := parseS3URI(uri)
	return ok
}

// verifyBody applies the Verify hook to a request whose body is read.
func (x *exchange) verifyBody() bool {
	if v := x.s.opts.Verify; v != nil {
		if rej := v(x.r, x.body); rej != nil {
			x.fail(rej.Code, rej.Message)
			return false
		}
	}
	return true
}

// createJob makes the job a valid request asks for, or answers with the
// job a same-token request made. As Bedrock's API reference says of
// clientRequestToken ("If this token matches a previous request, Amazon
// Bedrock ignores the request, but does not return an error"), a second
// request with the token gets the first job's ARN whatever else it asks.
func (x *exchange) createJob(in *createJobInput, inURI, outURI string, hours int32) {
	s := x.s
	token := in.ClientRequestToken
	tokenKey := x.region + "/" + token // tokens are the region's, as its jobs are

	s.jobs.mu.Lock()
	if j := s.jobs.byToken[tokenKey]; token != "" && j != nil {
		s.jobs.mu.Unlock()
		x.writeJobARN(j.arn)
		return
	}
	s.jobs.mu.Unlock()

	plan := x.jobPlan(in.JobName, in.ModelID)
	if plan.CreateError != "" {
		x.fail(plan.CreateError, plan.CreateErrorMessage)
		return
	}
	t, ok := s.lookup(in.ModelID)
	switch {
	case !ok:
		x.fail(codeValidation, "The provided model identifier is invalid: "+strconv.Quote(in.ModelID)+".")
		return
	case t.profile != "" && !profileCallable(t.profile, x.region):
		x.fail(codeValidation, "The provided model identifier is invalid: inference profile "+strconv.Quote(in.ModelID)+" is not callable from "+x.region+".")
		return
	case t.model.NoBatch:
		x.fail(codeValidation, "The model "+t.model.ID+" does not support batch inference.")
		return
	}

	now := s.Now()
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	if j := s.jobs.byToken[tokenKey]; token != "" && j != nil { // a twin request won the race
		x.writeJobARN(j.arn)
		return
	}
	if s.jobs.closed {
		x.fail(catalog.CodeServiceUnavailable, "The emulator is closing.")
		return
	}
	if len(s.jobs.order) >= maxJobs {
		x.fail(catalog.CodeServiceQuotaExceeded, fmt.Sprintf("The emulator holds its limit of %d batch inference jobs.", maxJobs))
		return
	}
	if s.jobs.byID == nil {
		s.jobs.byID, s.jobs.byToken = map[string]*job{}, map[string]*job{}
	}
	s.jobs.seq++
	id := fmt.Sprintf("%012x", mix64(s.idBase^s.jobs.seq)&(1<<48-1))
	j := &job{
		id: id, arn: "arn:aws:bedrock:" + x.region + ":" + profileAccount + ":model-invocation-job/" + id,
		name: in.JobName, model: in.ModelID, role: in.RoleARN, token: token, region: x.region,
		inURI: inURI, outURI: outURI, invocationType: cmp.Or(in.ModelInvocationType, "InvokeModel"),
		timeoutHours: hours, plan: plan, stop: make(chan struct{}), done: make(chan struct{}),
		status: JobSubmitted, submit: now, modified: now,
	}
	s.jobs.byID[id] = j
	if token != "" {
		s.jobs.byToken[tokenKey] = j
	}
	s.jobs.order = append(s.jobs.order, j)
	s.jobs.running.Add(1)
	go s.runJob(j)
	x.writeJobARN(j.arn)
}

// jobPlan asks Options.JobPlanner how the job is treated and fills in
// the defaults.
func (x *exchange) jobPlan(name, model string) fault.Job {
	var p fault.Job
	if f := x.s.opts.JobPlanner; f != nil {
		p = f(fault.JobRequest{Name: name, Model: model, Region: x.region})
	}
	p.Step = cmp.Or(p.Step, DefaultJobStep)
	l, d := &p.Limits, DefaultJobLimits
	l.MinRecordsPerJob = cmp.Or(l.MinRecordsPerJob, d.MinRecordsPerJob)
	l.MaxRecordsPerFile = cmp.Or(l.MaxRecordsPerFile, d.MaxRecordsPerFile)
	l.MaxRecordsPerJob = cmp.Or(l.MaxRecordsPerJob, d.MaxRecordsPerJob)
	l.MaxFileBytes = cmp.Or(l.MaxFileBytes, d.MaxFileBytes)
	l.MaxJobBytes = cmp.Or(l.MaxJobBytes, d.MaxJobBytes)
	return p
}

func (x *exchange) writeJobARN(arn string) {
	b := appendStringField(append(x.out[:0], '{'), "jobArn", arn)
	x.out = append(b, '}')
	x.writeJSON(x.out)
}

// findJob returns the job a path's jobIdentifier (an id or an ARN, escaped)
// names, answering ResourceNotFoundException when there is none in the
// request's region (Bedrock's control plane is regional).
func (x *exchange) findJob(escaped string) *job {
	id, err := url.PathUnescape(escaped)
	if err == nil {
		arn := ""
		if i := strings.LastIndex(id, ":model-invocation-job/"); i >= 0 && strings.HasPrefix(id, "arn:") {
			arn, id = id, id[i+len(":model-invocation-job/"):]
		}
		x.s.jobs.mu.Lock()
		j := x.s.jobs.byID[id]
		x.s.jobs.mu.Unlock()
		// An ARN must be the job's own: one naming another region (or
		// account) does not find it, as Bedrock's control plane is regional.
		if j != nil && j.region == x.region && (arn == "" || arn == j.arn) {
			return j
		}
	}
	x.fail(codeNotFound, "The batch inference job "+strconv.Quote(escaped)+" could not be found.")
	return nil
}

// serveGetJob serves GetModelInvocationJob (GET /model-invocation-job/{id}).
func (x *exchange) serveGetJob(escaped string) {
	if !x.verifyControl() {
		return
	}
	if j := x.findJob(escaped); j != nil {
		x.s.jobs.mu.Lock()
		b, _ := json.Marshal(j.summary())
		x.s.jobs.mu.Unlock()
		x.writeJSON(b)
	}
}

// serveStopJob serves StopModelInvocationJob (POST
// /model-invocation-job/{id}/stop).
func (x *exchange) serveStopJob(escaped string) {
	if !x.readBody() || !x.verifyBody() {
		return
	}
	j := x.findJob(escaped)
	if j == nil {
		return
	}
	s := x.s
	s.jobs.mu.Lock()
	status := j.status
	switch status {
	case JobSubmitted, JobValidating, JobScheduled, JobInProgress:
		j.status, j.modified = JobStopping, s.Now()
		close(j.stop)
	}
	s.jobs.mu.Unlock()
	switch status {
	case JobSubmitted, JobValidating, JobScheduled, JobInProgress, JobStopping:
		x.writeJSON(append(x.out[:0], "{}"...))
	default:
		x.fail(codeValidation, "The batch inference job "+j.arn+" is "+status+" and can no longer be stopped.")
	}
}

// serveListJobs serves ListModelInvocationJobs (GET /model-invocation-jobs):
// the jobs of the request's region, with filters statusEquals, nameContains,
// submitTimeAfter and submitTimeBefore, sortOrder (by submission time,
// Descending unless asked), maxResults and nextToken.
func (x *exchange) serveListJobs() {
	if !x.verifyControl() {
		return
	}
	q := x.r.URL.Query()
	size, start, ok := x.page(q, maxJobPage)
	if !ok {
		return
	}
	var after, before time.Time
	for _, f := range []struct {
		key string
		t   *time.Time
	}{{"submitTimeAfter", &after}, {"submitTimeBefore", &before}} {
		if v := q.Get(f.key); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				x.fail(codeValidation, validationMessage(v, f.key, "Member must be a date-time such as 2025-01-02T15:04:05Z"))
				return
			}
			*f.t = t
		}
	}
	status, name, order := q.Get("statusEquals"), q.Get("nameContains"), q.Get("sortOrder")
	switch order {
	case "", "Descending", "Ascending":
	default:
		x.fail(codeValidation, validationMessage(order, "sortOrder", "Member must satisfy enum value set: [Ascending, Descending]"))
		return
	}
	var out []jobSummary
	s := x.s
	s.jobs.mu.Lock()
	for _, j := range s.jobs.order {
		switch {
		case j.region != x.region,
			status != "" && j.status != status,
			name != "" && !strings.Contains(j.name, name),
			!after.IsZero() && !j.submit.After(after),
			!before.IsZero() && !j.submit.Before(before):
			continue
		}
		out = append(out, j.summary())
	}
	s.jobs.mu.Unlock()
	if order != "Ascending" {
		slices.Reverse(out)
	}
	start = min(start, len(out))
	end := min(start+size, len(out))
	page := struct {
		Jobs      []jobSummary `json:"invocationJobSummaries"`
		NextToken string       `json:"nextToken,omitempty"`
	}{Jobs: out[start:end]}
	if end < len(out) {
		page.NextToken = strconv.Itoa(end)
	}
	b, _ := json.Marshal(page)
	x.writeJSON(b)
}

// jobSummary is a job as GetModelInvocationJob and ListModelInvocationJobs
// report it.
type jobSummary struct {
	JobARN             string     `json:"jobArn"`
	JobName            string     `json:"jobName"`
	ModelID            string     `json:"modelId"`
	ClientRequestToken string     `json:"clientRequestToken,omitempty"`
	RoleARN            string     `json:"roleArn"`
	Status             string     `json:"status"`
	Message            string     `json:"message,omitempty"`
	SubmitTime         string     `json:"submitTime"`
	LastModifiedTime   string     `json:"lastModifiedTime"`
	EndTime            string     `json:"endTime,omitempty"`
	InputDataConfig    s3Config   `json:"inputDataConfig"`
	OutputDataConfig   s3OutputDC `json:"outputDataConfig"`
	TimeoutHours       int32      `json:"timeoutDurationInHours"`
	JobExpirationTime  string     `json:"jobExpirationTime"`
	InvocationType     string     `json:"modelInvocationType"`
	TotalRecords       int64      `json:"totalRecordCount"`
	ProcessedRecords   int64      `json:"processedRecordCount"`
	SuccessRecords     int64      `json:"successRecordCount"`
	ErrorRecords       int64      `json:"errorRecordCount"`
}

type s3Config struct {
	S3 struct {
		URI    string `json:"s3Uri"`
		Format string `json:"s3InputFormat"`
	} `json:"s3InputDataConfig"`
}

type s3OutputDC struct {
	S3 struct {
		URI string `json:"s3Uri"`
	} `json:"s3OutputDataConfig"`
}

// jobTime formats a time as the restJson protocol's date-time.
func jobTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// summary reports j; the caller holds jobTable.mu.
func (j *job) summary() jobSummary {
	v := jobSummary{JobARN: j.arn, JobName: j.name, ModelID: j.model, ClientRequestToken: j.token, RoleARN: j.role,
		Status: j.status, Message: j.message, SubmitTime: jobTime(j.submit), LastModifiedTime: jobTime(j.modified),
		EndTime: jobTime(j.end), TimeoutHours: j.timeoutHours, InvocationType: j.invocationType,
		JobExpirationTime: jobTime(j.submit.Add(time.Duration(j.timeoutHours) * time.Hour)),
		TotalRecords:      j.total, ProcessedRecords: j.processed, SuccessRecords: j.success, ErrorRecords: j.errored}
	v.InputDataConfig.S3.URI, v.InputDataConfig.S3.Format = j.inURI, "JSONL"
	v.OutputDataConfig.S3.URI = j.outURI
	return v
}

// setStatus moves j to status unless it is being stopped; it reports
// whether it did.
func (s *Server) setStatus(j *job, status, message string) bool {
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	if j.status == JobStopping && status != JobStopped {
		return false
	}
	j.status, j.message, j.modified = status, message, s.Now()
	switch status {
	case JobCompleted, JobPartiallyCompleted, JobFailed, JobStopped, JobExpired:
		j.end = j.modified
	}
	return true
}

// wait waits d on the server's clock; it reports false if the server is
// closing (the job is abandoned) and stopped if the job is being stopped
// (stop is j.stop, or nil for a wait a stop does not cut short).
func (s *Server) wait(d time.Duration, stop <-chan struct{}) (ok, stopped bool) {
	t := s.opts.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true, false
	case <-stop:
		return true, true
	case <-s.quit:
		return false, false
	}
}

// record is one line of a job's input.
type record struct {
	file  int // index into the job's input files
	id    string
	input json.RawMessage
	out   []byte // the output line, once answered
}

// inputFile is one .jsonl input of a job.
type inputFile struct {
	bucket, key, name string // name: the key below the input prefix, the output's name
}

// runJob moves j through its statuses until it ends or the server closes.
func (s *Server) runJob(j *job) {
	defer s.jobs.running.Done()
	defer close(j.done)
	step := j.plan.Step
	stopped := func() {
		if ok, _ := s.wait(step, nil); ok {
			s.setStatus(j, JobStopped, "")
		}
	}
	// end moves j to a final status, or to Stopped if it is being stopped.
	end := func(status, message string) {
		if !s.setStatus(j, status, message) {
			stopped()
		}
	}
	var files []inputFile
	var records []record
	validate := func() string {
		var msg string
		files, records, msg = s.readJobInput(j)
		if msg == "" && j.plan.FailValidation != "" {
			msg = j.plan.FailValidation
		}
		if msg == "" {
			s.jobs.mu.Lock()
			j.total = int64(len(records))
			s.jobs.mu.Unlock()
		}
		return msg
	}
	// advance waits a step, runs check (if any), and moves j to next; it
	// reports false when the job ended instead or the server is closing.
	advance := func(next string, check func() string) bool {
		ok, stop := s.wait(step, j.stop)
		switch {
		case !ok:
			return false
		case stop:
			stopped()
			return false
		}
		if check != nil {
			if msg := check(); msg != "" {
				end(JobFailed, msg)
				return false
			}
		}
		if !s.setStatus(j, next, "") {
			stopped()
			return false
		}
		return true
	}
	if !advance(JobValidating, nil) || !advance(JobScheduled, validate) {
		return
	}
	if j.plan.Expire {
		// Bedrock's Expired: scheduled, but not begun before the timeout.
		if ok, stop := s.wait(step, j.stop); ok && stop {
			stopped()
		} else if ok {
			end(JobExpired, fmt.Sprintf("The job did not begin within its timeout of %d hours.", j.timeoutHours))
		}
		return
	}
	if !advance(JobInProgress, nil) {
		return
	}
	var in, out int64
	parts := progressSteps
	if j.plan.Partial {
		parts = progressSteps / 2
	}
	per := (len(records) + progressSteps - 1) / progressSteps
	done := 0
	for range parts {
		ok, stop := s.wait(step/progressSteps, j.stop)
		if !ok {
			return
		}
		if stop {
			s.writeJobOutput(j, files, records[:done], in, out)
			stopped()
			return
		}
		end := min(done+per, len(records))
		var errs int64
		for i := done; i < end; i++ {
			ti, to, failed := s.answerRecord(j, &records[i])
			in, out = in+int64(ti), out+int64(to)
			if failed {
				errs++
			}
		}
		s.jobs.mu.Lock()
		j.processed += int64(end - done)
		j.errored += errs
		j.success = j.processed - j.errored
		s.jobs.mu.Unlock()
		done = end
	}
	if msg := s.writeJobOutput(j, files, records[:done], in, out); msg != "" {
		end(JobFailed, msg)
		return
	}
	// Records answered with an error do not make a job PartiallyCompleted:
	// Bedrock's means "not all of your records could be processed in time".
	if j.plan.Partial {
		end(JobPartiallyCompleted, fmt.Sprintf("The job did not finish within its timeout of %d hours; not all records were processed.", j.timeoutHours))
		return
	}
	end(JobCompleted, "")
}

// readJobInput reads and checks a job's input files against its limits. A
// problem is returned as the message the job fails with.
func (s *Server) readJobInput(j *job) ([]inputFile, []record, string) {
	lim := j.plan.Limits
	bucket, key, _ := parseS3URI(j.inURI)
	var objs []*s3.Object
	if o, err := s.objects.Get(bucket, key); err == nil && key != "" && !strings.HasSuffix(key, "/") {
		objs = []*s3.Object{o}
	} else {
		all, _, err := s.objects.List(bucket, key, "", math.MaxInt) // the bound on S3 bounds this
		if err != nil {
			return nil, nil, "Unable to read the input at " + j.inURI + ": " + err.Error()
		}
		for _, o := range all {
			if strings.HasSuffix(o.Key, ".jsonl") {
				objs = append(objs, o)
			}
		}
	}
	if len(objs) == 0 {
		return nil, nil, "No .jsonl input file was found at " + j.inURI + "."
	}
	var files []inputFile
	var records []record
	var size int64
	for fi, o := range objs {
		name := path.Base(o.Key)
		if len(objs) > 1 || strings.HasSuffix(key, "/") {
			name = strings.TrimPrefix(strings.TrimPrefix(o.Key, key), "/")
		}
		files = append(files, inputFile{bucket: bucket, key: o.Key, name: name})
		uri := "s3://" + bucket + "/" + o.Key
		if n := int64(len(o.Data)); n > lim.MaxFileBytes {
			return nil, nil, fmt.Sprintf("The input file %s has %d bytes, over the quota of %d bytes per file (Batch inference input file size).", uri, n, lim.MaxFileBytes)
		}
		size += int64(len(o.Data))
		sc := bufio.NewScanner(bytes.NewReader(o.Data))
		sc.Buffer(nil, len(o.Data)+1)
		n, line := 0, 0
		for sc.Scan() {
			line++
			text := bytes.TrimSpace(sc.Bytes())
			if len(text) == 0 {
				continue
			}
			var r struct {
				RecordID   *string         `json:"recordId"`
				ModelInput json.RawMessage `json:"modelInput"`
			}
			if err := json.Unmarshal(text, &r); err != nil || len(r.ModelInput) == 0 || r.ModelInput[0] != '{' {
				return nil, nil, fmt.Sprintf("Line %d of %s is not a JSON object with a modelInput object.", line, uri)
			}
			n++
			id := fmt.Sprintf("%011d", len(records)+1) // what Bedrock adds when recordId is left out
			if r.RecordID != nil {
				id = *r.RecordID
			}
			records = append(records, record{file: fi, id: id, input: r.ModelInput})
		}
		if n > lim.MaxRecordsPerFile {
			return nil, nil, fmt.Sprintf("The input file %s has %d records, over the quota of %d records per file (Records per input file per batch inference job).", uri, n, lim.MaxRecordsPerFile)
		}
	}
	switch n := len(records); {
	case size > lim.MaxJobBytes:
		return nil, nil, fmt.Sprintf("The job's input files have %d bytes, over the quota of %d bytes per job (Batch inference job size).", size, lim.MaxJobBytes)
	case n < lim.MinRecordsPerJob:
		return nil, nil, fmt.Sprintf("The job has %d records, under the quota's minimum of %d records per job (Minimum number of records per batch inference job).", n, lim.MinRecordsPerJob)
	case n > lim.MaxRecordsPerJob:
		return nil, nil, fmt.Sprintf("The job has %d records, over the quota of %d records per job (Records per batch inference job).", n, lim.MaxRecordsPerJob)
	}
	return files, records, ""
}

// answerRecord answers one record as the job's model would answer its
// modelInput through InvokeModel (or Converse), without quotas, pacing or
// fault plans, and sets its output line. It returns the tokens used and
// whether the record failed.
func (s *Server) answerRecord(j *job, r *record) (in, out int, failed bool) {
	line := appendStringField(append([]byte(nil), '{'), "recordId", r.id)
	line = append(appendKey(line, "modelInput"), r.input...)
	if j.plan.RecordErrors > 0 && unitHash(s.opts.Seed, j.name, r.id) < j.plan.RecordErrors {
		r.out = appendRecordError(line, http.StatusInternalServerError, "Internal server error. The record could not be processed.")
		return 0, 0, true
	}
	rec := httptest.NewRecorder()
	req, _ := http.NewRequest(http.MethodPost, "/model-invocation-job/"+j.id, nil)
	x := s.get(rec, req)
	x.batch = true
	x.region, x.modelID = j.region, j.model
	converse := j.invocationType == "Converse"
	x.op = OpInvoke
	if converse {
		x.op = OpConverse
	}
	x.body = append(x.body[:0], r.input...)
	if x.resolveModel() {
		if converse {
			x.serveConverse()
		} else {
			x.serveInvoke()
		}
	}
	s.put(x)
	body := rec.Body.Bytes()
	if rec.Code != http.StatusOK {
		var e struct{ Message string }
		json.Unmarshal(body, &e)
		r.out = appendRecordError(line, rec.Code, e.Message)
		return 0, 0, true
	}
	r.out = append(append(appendKey(line, "modelOutput"), body...), '}')
	if converse {
		var u struct {
			Usage struct{ InputTokens, OutputTokens int }
		}
		json.Unmarshal(body, &u)
		return u.Usage.InputTokens, u.Usage.OutputTokens, false
	}
	in, _ = strconv.Atoi(rec.Header().Get("X-Amzn-Bedrock-Input-Token-Count"))
	out, _ = strconv.Atoi(rec.Header().Get("X-Amzn-Bedrock-Output-Token-Count"))
	return in, out, false
}

func appendRecordError(line []byte, code int, message string) []byte {
	line = append(appendKey(line, "error"), '{')
	line = appendIntField(line, "errorCode", int64(code))
	line = appendStringField(line, "errorMessage", message)
	return append(line, '}', '}')
}

// unitHash maps its inputs to a number in [0, 1), the same for the same
// inputs.
func unitHash(seed int64, parts ...string) float64 {
	h := uint64(seed)
	for _, p := range parts {
		h = hashString(h, p)
	}
	return float64(mix64(h)>>11) / (1 << 53)
}

// writeJobOutput writes the answered records to
// {output}/{jobId}/{inputFile}.out, not in input order (as Bedrock does
// not keep it), and manifest.json.out beside them. A problem is returned
// as the message the job fails with.
func (s *Server) writeJobOutput(j *job, files []inputFile, records []record, in, out int64) string {
	bucket, prefix, _ := parseS3URI(j.outURI)
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	prefix += j.id + "/"
	byFile := make([][]*record, len(files))
	for i := range records {
		byFile[records[i].file] = append(byFile[records[i].file], &records[i])
	}
	for fi, recs := range byFile {
		slices.SortFunc(recs, func(a, b *record) int {
			return cmp.Compare(unitHash(s.opts.Seed, j.name, "order", a.id), unitHash(s.opts.Seed, j.name, "order", b.id))
		})
		var b []byte
		for _, r := range recs {
			b = append(append(b, r.out...), '\n')
		}
		if _, err := s.objects.Put(bucket, prefix+files[fi].name+".out", "application/jsonl", b); err != nil {
			return "Unable to write the output to " + j.outURI + ": " + err.Error()
		}
	}
	s.jobs.mu.Lock()
	m := appendIntField(append([]byte(nil), '{'), "totalRecordCount", j.total)
	m = appendIntField(m, "processedRecordCount", j.processed)
	m = appendIntField(m, "successRecordCount", j.success)
	m = appendIntField(m, "errorRecordCount", j.errored)
	s.jobs.mu.Unlock()
	m = appendIntField(m, "inputTokenCount", in)
	m = appendIntField(m, "outputTokenCount", out)
	m = append(m, '}', '\n')
	if _, err := s.objects.Put(bucket, prefix+"manifest.json.out", "application/json", m); err != nil {
		return "Unable to write the output to " + j.outURI + ": " + err.Error()
	}
	return ""
}
