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

	// The same token and request: the same job. Another request: a conflict.
	again, err := c.CreateModelInvocationJob(ctx, createInput("life-1", "tok-life"))
	if err != nil || aws.ToString(again.JobArn) != arn {
		t.Errorf("create again with the same token = %v, %v; want %s", again, err, arn)
	}
	_, err = c.CreateModelInvocationJob(ctx, createInput("life-2", "tok-life"))
	var conflict *btypes.ConflictException
	if !errors.As(err, &conflict) {
		t.Errorf("create with a used token and another name = %v, want ConflictException", err)
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
