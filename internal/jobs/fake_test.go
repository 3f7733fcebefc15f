package jobs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	btypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// fakeAWS is S3 and Bedrock's batch-job control plane in memory: enough of
// both for the flow, with the behaviour the flow must cope with (token
// idempotency, output not in input order, record errors, Failed, Stopped,
// throttles).
type fakeAWS struct {
	mu      sync.Mutex
	objects map[string][]byte // "bucket/key"
	jobs    map[string]*fakeJob
	tokens  map[string]string // clientRequestToken → ARN
	creates int               // CreateModelInvocationJob calls that made a job
	gets    int
	stops   int                         // StopModelInvocationJob calls
	uploads map[string]map[int32][]byte // multipart upload id → its parts
	parts   int                         // UploadPart calls that stored a part
	aborted int                         // AbortMultipartUpload calls
	started int                         // CreateMultipartUpload calls

	// Behaviour.
	end          btypes.ModelInvocationJobStatus // final status; "" → Completed (PartiallyCompleted when recordErr matches)
	recordErr    func(id string) bool            // records answered with an error
	throttleGet  int                             // the first n GetModelInvocationJob calls are throttled
	throttlePut  int                             // the first n CreateModelInvocationJob calls are throttled
	throttleList int                             // the first n ListModelInvocationJobs calls are throttled
	failPart     int                             // UploadPart number n fails (0: none)
	pollsToEnd   int                             // GetModelInvocationJob calls in progress before the end; 0 → 2
}

type fakeJob struct {
	in     bedrock.CreateModelInvocationJobInput
	arn    string
	status btypes.ModelInvocationJobStatus
	polls  int
	stop   bool
	msg    string
	done   int64
	errs   int64
	total  int64
}

func newFake() *fakeAWS {
	return &fakeAWS{objects: map[string][]byte{}, jobs: map[string]*fakeJob{}, tokens: map[string]string{}, uploads: map[string]map[int32][]byte{}}
}

func apiErr(code, msg string) error {
	return &smithy.GenericAPIError{Code: code, Message: msg}
}

func (f *fakeAWS) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[*in.Bucket+"/"+*in.Key] = b
	return &s3.PutObjectOutput{}, nil
}

func (f *fakeAWS) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started++
	id := fmt.Sprintf("upload%d", f.started)
	f.uploads[id] = map[int32][]byte{}
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String(id)}, nil
}

func (f *fakeAWS) UploadPart(_ context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if *in.PartNumber == int32(f.failPart) {
		return nil, apiErr("InternalError", "injected")
	}
	f.uploads[*in.UploadId][*in.PartNumber] = b
	f.parts++
	return &s3.UploadPartOutput{ETag: aws.String(fmt.Sprintf(`"%d"`, *in.PartNumber))}, nil
}

func (f *fakeAWS) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b []byte
	for i, p := range in.MultipartUpload.Parts {
		if *p.PartNumber != int32(i+1) || *p.ETag != fmt.Sprintf(`"%d"`, i+1) {
			return nil, apiErr("InvalidPart", fmt.Sprint("part ", i+1))
		}
		b = append(b, f.uploads[*in.UploadId][*p.PartNumber]...)
	}
	f.objects[*in.Bucket+"/"+*in.Key] = b
	delete(f.uploads, *in.UploadId)
	return &s3.CompleteMultipartUploadOutput{}, nil
}

func (f *fakeAWS) AbortMultipartUpload(_ context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.uploads, *in.UploadId)
	f.aborted++
	return &s3.AbortMultipartUploadOutput{}, nil
}

func (f *fakeAWS) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.objects[*in.Bucket+"/"+*in.Key]
	if !ok {
		return nil, apiErr("NoSuchKey", *in.Key)
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b))}, nil
}

// ListObjectsV2 pages one key at a time, so the flow's paging is exercised.
func (f *fakeAWS) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var keys []string
	for k := range f.objects {
		bucket, key, _ := strings.Cut(k, "/")
		if bucket == *in.Bucket && strings.HasPrefix(key, aws.ToString(in.Prefix)) && key > aws.ToString(in.ContinuationToken) {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	out := &s3.ListObjectsV2Output{}
	if len(keys) > 0 {
		out.Contents = []s3types.Object{{Key: aws.String(keys[0])}}
		if len(keys) > 1 {
			out.NextContinuationToken = aws.String(keys[0])
		}
	}
	return out, nil
}

func (f *fakeAWS) CreateModelInvocationJob(_ context.Context, in *bedrock.CreateModelInvocationJobInput, _ ...func(*bedrock.Options)) (*bedrock.CreateModelInvocationJobOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.throttlePut > 0 {
		f.throttlePut--
		return nil, apiErr("ThrottlingException", "slow down")
	}
	if arn, ok := f.tokens[aws.ToString(in.ClientRequestToken)]; ok {
		return &bedrock.CreateModelInvocationJobOutput{JobArn: aws.String(arn)}, nil
	}
	f.creates++
	arn := fmt.Sprintf("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/job%04d", f.creates)
	f.jobs[arn] = &fakeJob{in: *in, arn: arn, status: btypes.ModelInvocationJobStatusSubmitted}
	f.tokens[aws.ToString(in.ClientRequestToken)] = arn
	return &bedrock.CreateModelInvocationJobOutput{JobArn: aws.String(arn)}, nil
}

func (f *fakeAWS) ListModelInvocationJobs(_ context.Context, in *bedrock.ListModelInvocationJobsInput, _ ...func(*bedrock.Options)) (*bedrock.ListModelInvocationJobsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.throttleList > 0 {
		f.throttleList--
		return nil, apiErr("ThrottlingException", "slow down")
	}
	out := &bedrock.ListModelInvocationJobsOutput{}
	for _, j := range f.jobs {
		if strings.Contains(aws.ToString(j.in.JobName), aws.ToString(in.NameContains)) {
			out.InvocationJobSummaries = append(out.InvocationJobSummaries, btypes.ModelInvocationJobSummary{JobArn: aws.String(j.arn), JobName: j.in.JobName, Status: j.status})
		}
	}
	return out, nil
}

func (f *fakeAWS) StopModelInvocationJob(_ context.Context, in *bedrock.StopModelInvocationJobInput, _ ...func(*bedrock.Options)) (*bedrock.StopModelInvocationJobOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[aws.ToString(in.JobIdentifier)]
	if !ok {
		return nil, apiErr("ResourceNotFoundException", "no such job")
	}
	f.stops++
	j.stop = true
	j.status = btypes.ModelInvocationJobStatusStopping
	return &bedrock.StopModelInvocationJobOutput{}, nil
}

func (f *fakeAWS) GetModelInvocationJob(_ context.Context, in *bedrock.GetModelInvocationJobInput, _ ...func(*bedrock.Options)) (*bedrock.GetModelInvocationJobOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	if f.throttleGet > 0 {
		f.throttleGet--
		return nil, apiErr("ThrottlingException", "slow down")
	}
	j, ok := f.jobs[aws.ToString(in.JobIdentifier)]
	if !ok {
		return nil, apiErr("ResourceNotFoundException", "no such job")
	}
	if !terminal(j.status) {
		j.polls++
		end := f.pollsToEnd
		if end == 0 {
			end = 2
		}
		switch {
		case j.stop:
			f.finish(j, btypes.ModelInvocationJobStatusStopped)
		case j.polls >= end:
			f.finish(j, f.end)
		default:
			j.status = btypes.ModelInvocationJobStatusInProgress
		}
	}
	return &bedrock.GetModelInvocationJobOutput{JobArn: aws.String(j.arn), Status: j.status, Message: aws.String(j.msg),
		ProcessedRecordCount: aws.Int64(j.done), ErrorRecordCount: aws.Int64(j.errs), TotalRecordCount: aws.Int64(j.total)}, nil
}

// finish ends j: it writes {output}/{jobId}/{file}.out (in reverse input
// order) and manifest.json.out. A Stopped or Expired job did the first
// half of each file; a Failed one wrote nothing.
func (f *fakeAWS) finish(j *fakeJob, status btypes.ModelInvocationJobStatus) {
	if status == btypes.ModelInvocationJobStatusFailed {
		j.status, j.msg = status, "the input failed validation: injected by the test"
		return
	}
	inURI := j.in.InputDataConfig.(*btypes.ModelInvocationJobInputDataConfigMemberS3InputDataConfig).Value.S3Uri
	outURI := j.in.OutputDataConfig.(*btypes.ModelInvocationJobOutputDataConfigMemberS3OutputDataConfig).Value.S3Uri
	in, _ := ParseS3URI(*inURI)
	out, _ := ParseS3URI(*outURI)
	id := JobID(j.arn)
	man := Manifest{}
	var keys []string
	for k := range f.objects {
		if strings.HasPrefix(k, in.Bucket+"/"+in.Prefix+"/") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		var lines []string
		sc := bufio.NewScanner(bytes.NewReader(f.objects[k]))
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		man.TotalRecordCount += int64(len(lines))
		if status == btypes.ModelInvocationJobStatusStopped || status == btypes.ModelInvocationJobStatusExpired {
			lines = lines[:len(lines)/2]
		}
		var b bytes.Buffer
		for _, l := range slices.Backward(lines) {
			var rec batchLine
			json.Unmarshal([]byte(l), &rec)
			man.ProcessedRecordCount++
			if f.recordErr != nil && f.recordErr(rec.RecordID) {
				man.ErrorRecordCount++
				fmt.Fprintf(&b, `{"recordId":%q,"modelInput":%s,"error":{"errorCode":400,"errorMessage":"Malformed input request: injected"}}`+"\n", rec.RecordID, rec.ModelInput)
				continue
			}
			man.SuccessRecordCount++
			man.InputTokenCount += 10
			man.OutputTokenCount += 5
			fmt.Fprintf(&b, `{"recordId":%q,"modelInput":%s,"modelOutput":{"content":[{"type":"text","text":"answer %s"}],"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":5}}}`+"\n", rec.RecordID, rec.ModelInput, rec.RecordID)
		}
		name := k[strings.LastIndexByte(k, '/')+1:]
		f.objects[out.Bucket+"/"+out.Key(id+"/"+name+".out")] = b.Bytes()
	}
	mb, _ := json.Marshal(man)
	f.objects[out.Bucket+"/"+out.Key(id+"/manifest.json.out")] = mb
	j.done, j.errs, j.total = man.ProcessedRecordCount, man.ErrorRecordCount, man.TotalRecordCount
	switch {
	case status != "":
		j.status = status
	case man.ErrorRecordCount > 0:
		j.status = btypes.ModelInvocationJobStatusPartiallyCompleted
	default:
		j.status = btypes.ModelInvocationJobStatusCompleted
	}
}
