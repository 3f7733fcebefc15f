package emulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	btypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/goleak"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/fault"
)

const testRole = "arn:aws:iam::123456789012:role/batch"

// controlClient returns the official Bedrock control-plane client pointed
// at the emulator, its retries off.
func controlClient(rn *Running) *bedrock.Client {
	return bedrock.New(bedrock.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(rn.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""),
		RetryMaxAttempts: 1,
		HTTPClient:       testHTTPClient,
	})
}

// jsonlRecords returns n records for haiku3 in the Anthropic body format,
// one a line.
func jsonlRecords(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"recordId":"r%03d","modelInput":{"anthropic_version":"bedrock-2023-05-31","max_tokens":40,`+
			`"messages":[{"role":"user","content":"question %d"}]}}`+"\n", i, i)
	}
	return b.Bytes()
}

// uploadInput puts data at s3://in-bucket/{key} through the S3 client.
func uploadInput(t *testing.T, rn *Running, key string, data []byte) {
	t.Helper()
	if _, err := s3Client(rn).PutObject(context.Background(), &awss3.PutObjectInput{Bucket: aws.String("in-bucket"),
		Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
}

func createInput(name, token string) *bedrock.CreateModelInvocationJobInput {
	return &bedrock.CreateModelInvocationJobInput{
		JobName:            aws.String(name),
		RoleArn:            aws.String(testRole),
		ModelId:            aws.String(haiku3),
		ClientRequestToken: aws.String(token),
		InputDataConfig: &btypes.ModelInvocationJobInputDataConfigMemberS3InputDataConfig{Value: btypes.ModelInvocationJobS3InputDataConfig{
			S3Uri: aws.String("s3://in-bucket/jobs/input.jsonl")}},
		OutputDataConfig: &btypes.ModelInvocationJobOutputDataConfigMemberS3OutputDataConfig{Value: btypes.ModelInvocationJobS3OutputDataConfig{
			S3Uri: aws.String("s3://out-bucket/results/")}},
	}
}

// jobOf returns the job the ARN names, for waiting on its goroutine.
func jobOf(t *testing.T, rn *Running, arn string) *job {
	t.Helper()
	id := arn[strings.LastIndex(arn, "/")+1:]
	rn.Server.jobs.mu.Lock()
	defer rn.Server.jobs.mu.Unlock()
	j := rn.Server.jobs.byID[id]
	if j == nil {
		t.Fatalf("no job %s", id)
	}
	return j
}

func getJob(t *testing.T, c *bedrock.Client, arn string) *bedrock.GetModelInvocationJobOutput {
	t.Helper()
	out, err := c.GetModelInvocationJob(context.Background(), &bedrock.GetModelInvocationJobInput{JobIdentifier: aws.String(arn)})
	if err != nil {
		t.Fatalf("GetModelInvocationJob: %v", err)
	}
	return out
}

// outputLines reads an output file and returns its lines by recordId.
func outputLines(t *testing.T, rn *Running, key string) (map[string]map[string]json.RawMessage, []string) {
	t.Helper()
	o, err := rn.Server.Objects().Get("out-bucket", key)
	if err != nil {
		t.Fatalf("output %s: %v", key, err)
	}
	lines := map[string]map[string]json.RawMessage{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(o.Data))
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		var id string
		json.Unmarshal(m["recordId"], &id)
		lines[id] = m
		order = append(order, id)
	}
	return lines, order
}

func TestJobLifeWithSDK(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	const step = time.Minute
	rn := start(t, Options{Clock: clk, JobPlanner: func(fault.JobRequest) fault.Job {
		return fault.Job{Step: step, Limits: fault.JobLimits{MinRecordsPerJob: 10}}
	}})
	c := controlClient(rn)
	ctx := context.Background()
	const n = 12
	uploadInput(t, rn, "jobs/input.jsonl", jsonlRecords(n))

	out, err := c.CreateModelInvocationJob(ctx, createInput("life-1", "tok-life"))
	if err != nil {
		t.Fatalf("CreateModelInvocationJob: %v", err)
	}
	arn := aws.ToString(out.JobArn)
	if !strings.HasPrefix(arn, "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/") {
		t.Errorf("jobArn %q is not shaped as Bedrock's", arn)
	}
	j := jobOf(t, rn, arn)
	for _, want := range []struct {
		status          btypes.ModelInvocationJobStatus
		total, processd int64
	}{
		{btypes.ModelInvocationJobStatusSubmitted, 0, 0},
		{btypes.ModelInvocationJobStatusValidating, 0, 0},
		{btypes.ModelInvocationJobStatusScheduled, n, 0},
		{btypes.ModelInvocationJobStatusInProgress, n, 0},
		{btypes.ModelInvocationJobStatusInProgress, n, 3},
		{btypes.ModelInvocationJobStatusInProgress, n, 6},
		{btypes.ModelInvocationJobStatusInProgress, n, 9},
	} {
		clk.WaitForTimers(1) // the job waits for its next step: its status is settled
		g := getJob(t, c, arn)
		if g.Status != want.status || aws.ToInt64(g.TotalRecordCount) != want.total || aws.ToInt64(g.ProcessedRecordCount) != want.processd {
			t.Fatalf("job is %s with %d/%d records processed, want %s with %d/%d", g.Status,
				aws.ToInt64(g.ProcessedRecordCount), aws.ToInt64(g.TotalRecordCount), want.status, want.processd, want.total)
		}
		clk.Fire(ctx, nil)
	}
	<-j.done
	g := getJob(t, c, arn)
	if g.Status != btypes.ModelInvocationJobStatusCompleted || aws.ToInt64(g.SuccessRecordCount) != n || g.EndTime == nil {
		t.Fatalf("job ended %s, %d succeeded, end %v; want Completed, %d, an end time", g.Status, aws.ToInt64(g.SuccessRecordCount), g.EndTime, n)
	}
	if got := g.SubmitTime.Add(168 * time.Hour); !g.JobExpirationTime.Equal(got) {
		t.Errorf("jobExpirationTime %v, want submit + 168h = %v", g.JobExpirationTime, got)
	}

	id := j.id
	lines, order := outputLines(t, rn, "results/"+id+"/input.jsonl.out")
	if len(lines) != n {
		t.Fatalf("output has %d records, want %d", len(lines), n)
	}
	inOrder := true
	for i, rid := range order {
		inOrder = inOrder && rid == fmt.Sprintf("r%03d", i)
		m := lines[rid]
		if m["modelInput"] == nil || m["modelOutput"] == nil || m["error"] != nil {
			t.Errorf("record %s: %v, want modelInput and modelOutput", rid, m)
		}
	}
	if inOrder {
		t.Errorf("output lines are in input order; Bedrock does not keep it, and neither should the emulator")
	}
	var manifest struct {
		TotalRecordCount, ProcessedRecordCount, SuccessRecordCount, ErrorRecordCount int64
		InputTokenCount, OutputTokenCount                                            int64
	}
	mo, err := rn.Server.Objects().Get("out-bucket", "results/"+id+"/manifest.json.out")
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if err := json.Unmarshal(mo.Data, &manifest); err != nil {
		t.Fatalf("manifest %s: %v", mo.Data, err)
	}
	if manifest.TotalRecordCount != n || manifest.SuccessRecordCount != n || manifest.InputTokenCount <= 0 || manifest.OutputTokenCount <= 0 {
		t.Errorf("manifest = %+v, want %d records, all successful, with tokens", manifest, n)
	}

	// The same token: the same job, whatever else the request asks
	// ("Amazon Bedrock ignores the request, but does not return an error").
	for _, name := range []string{"life-1", "life-2"} {
		again, err := c.CreateModelInvocationJob(ctx, createInput(name, "tok-life"))
		if err != nil || aws.ToString(again.JobArn) != arn {
			t.Errorf("create %s again with the same token = %v, %v; want %s", name, again, err, arn)
		}
	}
	if list, err := c.ListModelInvocationJobs(ctx, &bedrock.ListModelInvocationJobsInput{}); err != nil || len(list.InvocationJobSummaries) != 1 {
		t.Errorf("after the same token thrice: %v jobs, %v; want 1", len(list.InvocationJobSummaries), err)
	}
}

// TestJobsEndOnClose checks that Close ends the goroutines of jobs still
// running, whatever status they wait in.
func TestJobsEndOnClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	rn, err := Start(Options{Clock: clk, JobPlanner: func(fault.JobRequest) fault.Job {
		return fault.Job{Limits: fault.JobLimits{MinRecordsPerJob: 1}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	uploadInput(t, rn, "jobs/input.jsonl", jsonlRecords(4))
	c := controlClient(rn)
	for i := range 3 {
		if _, err := c.CreateModelInvocationJob(context.Background(), createInput(fmt.Sprintf("close-%d", i), fmt.Sprintf("tok-close-%d", i))); err != nil {
			t.Fatalf("CreateModelInvocationJob: %v", err)
		}
	}
	clk.WaitForTimers(3)
	clk.Fire(context.Background(), nil) // one job moves on to Validating
	clk.WaitForTimers(3)
	if err := rn.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	testHTTPClient.CloseIdleConnections()
}

func TestCreateJobValidation(t *testing.T) {
	models := append(DefaultModels(), Model{ID: "example.no-batch-v1", Name: "No Batch", Provider: "Example",
		Format: FormatTitan, MaxOutputTokens: 100, ContextWindow: 1000, Burndown: 1, NoBatch: true})
	rn := start(t, Options{Models: models})
	c := controlClient(rn)
	tests := []struct {
		name   string
		change func(*bedrock.CreateModelInvocationJobInput)
		want   string // in the ValidationException's message
	}{
		{"role not an ARN", func(in *bedrock.CreateModelInvocationJobInput) { in.RoleArn = aws.String("batch-role") }, "roleArn"},
		{"role of another service", func(in *bedrock.CreateModelInvocationJobInput) {
			in.RoleArn = aws.String("arn:aws:s3:::bucket")
		}, "roleArn"},
		{"input not an S3 URI", func(in *bedrock.CreateModelInvocationJobInput) {
			in.InputDataConfig = &btypes.ModelInvocationJobInputDataConfigMemberS3InputDataConfig{Value: btypes.ModelInvocationJobS3InputDataConfig{
				S3Uri: aws.String("https://in-bucket/jobs/input.jsonl")}}
		}, "inputDataConfig.s3InputDataConfig.s3Uri"},
		{"output bucket invalid", func(in *bedrock.CreateModelInvocationJobInput) {
			in.OutputDataConfig = &btypes.ModelInvocationJobOutputDataConfigMemberS3OutputDataConfig{Value: btypes.ModelInvocationJobS3OutputDataConfig{
				S3Uri: aws.String("s3://Out_Bucket/")}}
		}, "outputDataConfig.s3OutputDataConfig.s3Uri"},
		{"job name with a space", func(in *bedrock.CreateModelInvocationJobInput) { in.JobName = aws.String("my job") }, "jobName"},
		{"timeout too short", func(in *bedrock.CreateModelInvocationJobInput) { in.TimeoutDurationInHours = aws.Int32(12) }, "timeoutDurationInHours"},
		{"unknown model", func(in *bedrock.CreateModelInvocationJobInput) { in.ModelId = aws.String("example.nothing-v9") }, "model identifier is invalid"},
		{"model without batch", func(in *bedrock.CreateModelInvocationJobInput) { in.ModelId = aws.String("example.no-batch-v1") }, "does not support batch"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := createInput("valid-name", fmt.Sprintf("tok-valid-%d", i))
			tc.change(in)
			_, err := c.CreateModelInvocationJob(context.Background(), in)
			var ve *btypes.ValidationException
			if !errors.As(err, &ve) || !strings.Contains(ve.ErrorMessage(), tc.want) {
				t.Errorf("CreateModelInvocationJob = %v, want a ValidationException naming %q", err, tc.want)
			}
		})
	}
	rn.Server.jobs.mu.Lock()
	defer rn.Server.jobs.mu.Unlock()
	if len(rn.Server.jobs.order) != 0 {
		t.Errorf("%d jobs made from invalid requests, want none", len(rn.Server.jobs.order))
	}
}

// runJobToEnd creates a job under plan, on a clock whose every timer fires
// at once, and returns it once it has ended.
func runJobToEnd(t *testing.T, plan fault.Job, records int) (*Running, *bedrock.GetModelInvocationJobOutput, string) {
	t.Helper()
	rn := start(t, Options{Clock: clock.NewAuto(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		JobPlanner: func(fault.JobRequest) fault.Job { return plan }})
	uploadInput(t, rn, "jobs/input.jsonl", jsonlRecords(records))
	c := controlClient(rn)
	out, err := c.CreateModelInvocationJob(context.Background(), createInput("fault-job", "tok-fault"))
	if err != nil {
		t.Fatalf("CreateModelInvocationJob: %v", err)
	}
	j := jobOf(t, rn, aws.ToString(out.JobArn))
	<-j.done
	return rn, getJob(t, c, aws.ToString(out.JobArn)), j.id
}

func TestJobFaults(t *testing.T) {
	limits := fault.JobLimits{MinRecordsPerJob: 5}
	tests := []struct {
		name     string
		plan     fault.Job
		records  int
		status   btypes.ModelInvocationJobStatus
		message  string // in the job's message
		errors   bool   // some output lines carry errors
		answered int64  // records processed
	}{
		{"too few records", fault.Job{Limits: limits}, 3, btypes.ModelInvocationJobStatusFailed, "minimum of 5 records", false, 0},
		{"too many records in a file", fault.Job{Limits: fault.JobLimits{MinRecordsPerJob: 1, MaxRecordsPerFile: 4}}, 8,
			btypes.ModelInvocationJobStatusFailed, "over the quota of 4 records per file", false, 0},
		{"file too big", fault.Job{Limits: fault.JobLimits{MinRecordsPerJob: 1, MaxFileBytes: 100}}, 8,
			btypes.ModelInvocationJobStatusFailed, "over the quota of 100 bytes per file", false, 0},
		{"fails validation", fault.Job{Limits: limits, FailValidation: "The role cannot read the input bucket."}, 8,
			btypes.ModelInvocationJobStatusFailed, "cannot read the input bucket", false, 0},
		// Bedrock's Completed job may hold record errors: PartiallyCompleted
		// means records left unprocessed at the timeout, and Expired a job
		// that did not begin before it.
		{"record errors", fault.Job{Limits: limits, RecordErrors: 0.5}, 40, btypes.ModelInvocationJobStatusCompleted, "", true, 40},
		{"cut by its timeout", fault.Job{Limits: limits, Partial: true}, 8, btypes.ModelInvocationJobStatusPartiallyCompleted, "timeout of 168 hours; not all records", false, 4},
		{"expires", fault.Job{Limits: limits, Expire: true}, 8, btypes.ModelInvocationJobStatusExpired, "did not begin within its timeout of 168 hours", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rn, g, id := runJobToEnd(t, tc.plan, tc.records)
			if g.Status != tc.status || !strings.Contains(aws.ToString(g.Message), tc.message) {
				t.Fatalf("job ended %s (%q), want %s with a message naming %q", g.Status, aws.ToString(g.Message), tc.status, tc.message)
			}
			if got := aws.ToInt64(g.ProcessedRecordCount); got != tc.answered {
				t.Errorf("processed %d records, want %d", got, tc.answered)
			}
			if tc.answered == 0 {
				if objs, _, err := rn.Server.Objects().List("out-bucket", "results/"+id+"/", "", 10); err == nil && len(objs) > 0 {
					t.Errorf("a job that answered nothing wrote %d output objects (%s ...)", len(objs), objs[0].Key)
				}
				return
			}
			lines, _ := outputLines(t, rn, "results/"+id+"/input.jsonl.out")
			var errs int64
			for rid, m := range lines {
				if m["error"] != nil {
					errs++
					var e struct {
						ErrorCode    int
						ErrorMessage string
					}
					if err := json.Unmarshal(m["error"], &e); err != nil || e.ErrorCode == 0 || e.ErrorMessage == "" || m["modelInput"] == nil {
						t.Errorf("record %s error %s: want errorCode, errorMessage and the modelInput", rid, m["error"])
					}
				}
			}
			if int64(len(lines)) != tc.answered || (errs > 0) != tc.errors || errs != aws.ToInt64(g.ErrorRecordCount) {
				t.Errorf("output has %d lines, %d errors; job reports %d errors; want %d lines, errors %v",
					len(lines), errs, aws.ToInt64(g.ErrorRecordCount), tc.answered, tc.errors)
			}
		})
	}
}

func TestCreateJobFaults(t *testing.T) {
	for _, code := range []string{"ThrottlingException", "ServiceQuotaExceededException"} {
		t.Run(code, func(t *testing.T) {
			rn := start(t, Options{JobPlanner: func(r fault.JobRequest) fault.Job {
				if r.Name == "refused" {
					return fault.Job{CreateError: code}
				}
				return fault.Job{}
			}})
			c := controlClient(rn)
			_, err := c.CreateModelInvocationJob(context.Background(), createInput("refused", "tok-refused"))
			var ae interface{ ErrorCode() string }
			if !errors.As(err, &ae) || ae.ErrorCode() != code {
				t.Errorf("CreateModelInvocationJob = %v, want %s", err, code)
			}
			if _, err := c.CreateModelInvocationJob(context.Background(), createInput("accepted", "tok-accepted")); err != nil {
				t.Errorf("another job: %v", err)
			}
		})
	}
}

func TestStopJob(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	rn := start(t, Options{Clock: clk, JobPlanner: func(fault.JobRequest) fault.Job {
		return fault.Job{Limits: fault.JobLimits{MinRecordsPerJob: 1}}
	}})
	c := controlClient(rn)
	ctx := context.Background()
	uploadInput(t, rn, "jobs/input.jsonl", jsonlRecords(8))
	out, err := c.CreateModelInvocationJob(ctx, createInput("stop-me", "tok-stop"))
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.JobArn)
	j := jobOf(t, rn, arn)
	for range 4 { // Submitted, Validating, Scheduled, and the first part of InProgress
		clk.WaitForTimers(1)
		clk.Fire(ctx, nil)
	}
	clk.WaitForTimers(1)
	if g := getJob(t, c, arn); g.Status != btypes.ModelInvocationJobStatusInProgress || aws.ToInt64(g.ProcessedRecordCount) != 2 {
		t.Fatalf("job is %s with %d processed, want InProgress with 2", g.Status, aws.ToInt64(g.ProcessedRecordCount))
	}
	if _, err := c.StopModelInvocationJob(ctx, &bedrock.StopModelInvocationJobInput{JobIdentifier: aws.String(arn)}); err != nil {
		t.Fatalf("StopModelInvocationJob: %v", err)
	}
	if g := getJob(t, c, arn); g.Status != btypes.ModelInvocationJobStatusStopping {
		t.Errorf("job is %s after stop, want Stopping", g.Status)
	}
	clk.WaitForTimers(1) // the Stopping step
	clk.Fire(ctx, nil)
	<-j.done
	g := getJob(t, c, arn)
	if g.Status != btypes.ModelInvocationJobStatusStopped || g.EndTime == nil {
		t.Errorf("job ended %s, end %v; want Stopped with an end time", g.Status, g.EndTime)
	}
	if lines, _ := outputLines(t, rn, "results/"+j.id+"/input.jsonl.out"); len(lines) != 2 {
		t.Errorf("a stopped job's output has %d records, want the 2 answered before the stop", len(lines))
	}
	_, err = c.StopModelInvocationJob(ctx, &bedrock.StopModelInvocationJobInput{JobIdentifier: aws.String(arn)})
	var ve *btypes.ValidationException
	if !errors.As(err, &ve) {
		t.Errorf("stopping a Stopped job = %v, want ValidationException", err)
	}
	_, err = c.StopModelInvocationJob(ctx, &bedrock.StopModelInvocationJobInput{JobIdentifier: aws.String("nosuchjob")})
	var nf *btypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("stopping an unknown job = %v, want ResourceNotFoundException", err)
	}
}

func TestListJobs(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	rn := start(t, Options{Clock: clk})
	c := controlClient(rn)
	ctx := context.Background()
	var arns []string
	for i := range 5 {
		out, err := c.CreateModelInvocationJob(ctx, createInput(fmt.Sprintf("list-%d", i), fmt.Sprintf("tok-list-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		arns = append(arns, aws.ToString(out.JobArn))
	}
	if _, err := c.StopModelInvocationJob(ctx, &bedrock.StopModelInvocationJobInput{JobIdentifier: aws.String(arns[1])}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   bedrock.ListModelInvocationJobsInput
		want []int // indexes into arns
	}{
		{"all, newest first", bedrock.ListModelInvocationJobsInput{}, []int{4, 3, 2, 1, 0}},
		{"ascending in pages of 2", bedrock.ListModelInvocationJobsInput{MaxResults: aws.Int32(2), SortOrder: btypes.SortOrderAscending}, []int{0, 1, 2, 3, 4}},
		{"by status", bedrock.ListModelInvocationJobsInput{StatusEquals: btypes.ModelInvocationJobStatusStopping}, []int{1}},
		{"by name", bedrock.ListModelInvocationJobsInput{NameContains: aws.String("list-3")}, []int{3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := bedrock.NewListModelInvocationJobsPaginator(c, &tc.in)
			var got []string
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatalf("ListModelInvocationJobs: %v", err)
				}
				for _, s := range page.InvocationJobSummaries {
					got = append(got, aws.ToString(s.JobArn))
				}
			}
			var want []string
			for _, i := range tc.want {
				want = append(want, arns[i])
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("listed %v, want %v", got, want)
			}
		})
	}
}

// TestJobRecordsAnsweredAsTheModel checks that records are answered by the
// model's own checks: a Converse job's records as Converse, and an
// InvokeModel record the model refuses as an error line with its status.
func TestJobRecordsAnsweredAsTheModel(t *testing.T) {
	good := `{"recordId":"ok","modelInput":{"anthropic_version":"bedrock-2023-05-31","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}}`
	tests := []struct {
		name, invocation string
		lines            []string
		status           btypes.ModelInvocationJobStatus
		errorCode        int // of record "bad"; 0: no such record
	}{
		{"invoke with a refused record", "", []string{good, `{"recordId":"bad","modelInput":{"anthropic_version":"bedrock-2023-05-31","messages":[{"role":"user","content":"no max_tokens"}]}}`},
			btypes.ModelInvocationJobStatusCompleted, 400},
		{"converse", "Converse", []string{`{"recordId":"ok","modelInput":{"messages":[{"role":"user","content":[{"text":"hi"}]}]}}`},
			btypes.ModelInvocationJobStatusCompleted, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rn := start(t, Options{Clock: clock.NewAuto(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
				JobPlanner: func(fault.JobRequest) fault.Job { return fault.Job{Limits: fault.JobLimits{MinRecordsPerJob: 1}} }})
			uploadInput(t, rn, "jobs/input.jsonl", []byte(strings.Join(tc.lines, "\n")+"\n"))
			in := createInput("answers", "tok-answers")
			in.ModelInvocationType = btypes.ModelInvocationType(tc.invocation)
			c := controlClient(rn)
			out, err := c.CreateModelInvocationJob(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			j := jobOf(t, rn, aws.ToString(out.JobArn))
			<-j.done
			if g := getJob(t, c, aws.ToString(out.JobArn)); g.Status != tc.status {
				t.Fatalf("job ended %s (%s), want %s", g.Status, aws.ToString(g.Message), tc.status)
			}
			lines, _ := outputLines(t, rn, "results/"+j.id+"/input.jsonl.out")
			if lines["ok"]["modelOutput"] == nil {
				t.Errorf("record ok has no modelOutput: %v", lines["ok"])
			}
			if tc.invocation == "Converse" && !bytes.Contains(lines["ok"]["modelOutput"], []byte(`"usage"`)) {
				t.Errorf("Converse record output %s is not a Converse response", lines["ok"]["modelOutput"])
			}
			if tc.errorCode != 0 {
				var e struct{ ErrorCode int }
				json.Unmarshal(lines["bad"]["error"], &e)
				if e.ErrorCode != tc.errorCode {
					t.Errorf("record bad: %s, want errorCode %d", lines["bad"]["error"], tc.errorCode)
				}
			}
		})
	}
}

// TestJobsAreRegional checks that a job is the region's where it was made,
// as Bedrock's control plane is regional: another region's client does not
// get, list or stop it, and its clientRequestToken makes a new job there.
func TestJobsAreRegional(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	rn := start(t, Options{Clock: clk})
	ctx := context.Background()
	east := controlClient(rn)
	west := bedrock.New(bedrock.Options{Region: "us-west-2", BaseEndpoint: aws.String(rn.URL), RetryMaxAttempts: 1, HTTPClient: testHTTPClient,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "")})
	out, err := west.CreateModelInvocationJob(ctx, createInput("regional", "tok-regional"))
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.JobArn)
	if !strings.HasPrefix(arn, "arn:aws:bedrock:us-west-2:") {
		t.Fatalf("jobArn %s is not us-west-2's", arn)
	}
	if _, err := west.GetModelInvocationJob(ctx, &bedrock.GetModelInvocationJobInput{JobIdentifier: aws.String(arn)}); err != nil {
		t.Fatalf("GetModelInvocationJob in its region: %v", err)
	}
	// An ARN whose region was mixed up names no job, even in the job's region.
	mixed := strings.Replace(arn, ":us-west-2:", ":us-east-1:", 1)
	if _, err := west.GetModelInvocationJob(ctx, &bedrock.GetModelInvocationJobInput{JobIdentifier: aws.String(mixed)}); !errors.As(err, new(*btypes.ResourceNotFoundException)) {
		t.Errorf("GetModelInvocationJob %s from us-west-2 = %v, want ResourceNotFoundException", mixed, err)
	}
	for _, id := range []string{arn, arn[strings.LastIndex(arn, "/")+1:]} {
		_, err := east.GetModelInvocationJob(ctx, &bedrock.GetModelInvocationJobInput{JobIdentifier: aws.String(id)})
		var nf *btypes.ResourceNotFoundException
		if !errors.As(err, &nf) {
			t.Errorf("GetModelInvocationJob %s from us-east-1 = %v, want ResourceNotFoundException", id, err)
		}
		_, err = east.StopModelInvocationJob(ctx, &bedrock.StopModelInvocationJobInput{JobIdentifier: aws.String(id)})
		if !errors.As(err, &nf) {
			t.Errorf("StopModelInvocationJob %s from us-east-1 = %v, want ResourceNotFoundException", id, err)
		}
	}
	list, err := east.ListModelInvocationJobs(ctx, &bedrock.ListModelInvocationJobsInput{})
	if err != nil || len(list.InvocationJobSummaries) != 0 {
		t.Errorf("ListModelInvocationJobs from us-east-1 = %d jobs, %v; want none", len(list.InvocationJobSummaries), err)
	}
	again, err := east.CreateModelInvocationJob(ctx, createInput("regional", "tok-regional"))
	if err != nil || aws.ToString(again.JobArn) == arn || !strings.HasPrefix(aws.ToString(again.JobArn), "arn:aws:bedrock:us-east-1:") {
		t.Errorf("the same token in us-east-1 = %v, %v; want a new us-east-1 job", again, err)
	}
}
