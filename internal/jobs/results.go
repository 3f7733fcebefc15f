package jobs

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	btypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keel-run/keel/internal/batch"
	"github.com/keel-run/keel/internal/dlq"
)

// Result-line codes for records the job did not answer.
const (
	// CodeRecordError: Bedrock answered the record with an error (its
	// errorCode is the line's status, its errorMessage the message).
	CodeRecordError = "BatchRecordError"
	// CodeNotProcessed: the job ended (Failed, Stopped, Expired) before the
	// record was done, or its output has no line for it.
	CodeNotProcessed = "BatchRecordNotProcessed"
)

// outLine is one line of a job's .out file.
type outLine struct {
	RecordID    string          `json:"recordId"`
	ModelOutput json.RawMessage `json:"modelOutput"`
	Error       *struct {
		ErrorCode    json.RawMessage `json:"errorCode"`
		ErrorMessage string          `json:"errorMessage"`
	} `json:"error"`
}

// Results downloads the ended job's output, joins it to the input by
// recordId and writes one result line per input record, in input order, to
// Out (whole, then renamed into place); records without a successful
// answer are parked in the DLQ, keyed by job and record so doing it again
// parks nothing twice. When the state does not record the job as ended,
// Results asks Bedrock once and returns ErrNotEnded (wrapped) if it has
// not. It returns a *JobError (with the Summary) for a job that ended
// Failed, Stopped or Expired.
//
// On a run already done, Results returns the recorded summary and changes
// nothing: parking again would bring back dead letters that keel dlq
// redrive has answered since, and pay for them twice.
func (r *Runner) Results(ctx context.Context) (*Summary, error) {
	st := r.St
	if st.JobARN == "" {
		return nil, ErrNoJob
	}
	if st.Step == StepDone {
		return r.done()
	}
	if st.Step == StepCreated {
		// The state may be behind Bedrock (nothing polled since the job
		// ended, as after a stop): ask once.
		now, err := r.Status(ctx)
		if err != nil {
			return nil, err
		}
		r.St, st = now, now
	}
	if st.Step != StepEnded {
		return nil, fmt.Errorf("%w: job %s is %s (%d/%d records processed); wait for it first (keel jobs wait)", ErrNotEnded, st.JobID, st.Status, st.Processed, st.Total)
	}
	inf, err := r.loadInput()
	if err != nil {
		return nil, err
	}
	defer inf.Close()
	outs, man, err := r.download(ctx)
	if err != nil {
		return nil, err
	}
	done, err := r.loadRedriven()
	if err != nil {
		return nil, err
	}
	sum := &Summary{JobID: st.JobID, Status: st.Status, Message: st.Message, Records: len(r.input.Records), Manifest: man}
	results := make([]*batch.ResultLine, len(r.input.Records))
	parked := map[int64]int{} // dead-letter id → record index
	for i, rec := range r.input.Records {
		line := &batch.ResultLine{}
		line.SetID(rec)
		results[i] = line
		ol, ok := outs[r.sentID(i, rec)]
		if ok && ol.ok() {
			line.Attempts = 1
			if err := r.answered(line, rec, ol.ModelOutput); err != nil {
				return nil, err
			}
			continue
		}
		if rd, ok := done[rec.ID]; ok {
			// Answered by an earlier redrive on demand; its dead letter may
			// still be there if the kill came before it was removed.
			if err := r.unpark(ctx, rd.DLQID, rec); err != nil {
				return nil, err
			}
			if err := fromRedrive(line, rec, rd); err != nil {
				return nil, err
			}
			continue
		}
		le := &batch.LineError{Code: CodeNotProcessed, Message: fmt.Sprintf("job %s ended %s without this record's answer", st.JobID, st.Status)}
		if st.Message != "" {
			le.Message += ": " + st.Message
		}
		if ok && ol.Error != nil {
			line.Attempts = 1
			le.Code = CodeRecordError
			le.Status, _ = strconv.Atoi(strings.Trim(string(ol.Error.ErrorCode), `"`))
			le.Message = fmt.Sprintf("job %s: %s", st.JobID, ol.Error.ErrorMessage)
		}
		bl, err := inf.line(i)
		if err != nil {
			return nil, err
		}
		if err := r.park(ctx, rec, bl, le); err != nil {
			return nil, err
		}
		line.Error = le
		if le.DLQID != 0 {
			parked[le.DLQID] = i
		}
	}
	if err := r.unparkReplaced(ctx); err != nil {
		return nil, err
	}
	if err := r.point("parked"); err != nil {
		return nil, err
	}
	if r.o.Redrive != nil && r.o.DLQ != nil && len(parked) > 0 {
		if err := r.redrive(ctx, parked, results); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	for _, line := range results {
		b, err := batch.EncodeResultLine(line)
		if err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
		buf.Write(b)
		if line.Error == nil {
			sum.OK++
		} else {
			sum.Failed++
		}
	}
	if err := writeAtomic(st.Out, buf.Bytes()); err != nil {
		return nil, err
	}
	if err := r.point("written"); err != nil {
		return nil, err
	}
	st.Step, st.ResultsOK, st.ResultsFailed, st.Manifest = StepDone, sum.OK, sum.Failed, man
	if err := r.save(); err != nil {
		return nil, err
	}
	// Its replies are in Out now; left behind, the file could only mislead.
	if err := os.Remove(r.redrivePath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return sum, r.jobError()
}

// done is Results of a run already done: the summary the state records.
func (r *Runner) done() (*Summary, error) {
	st := r.St
	if _, err := os.Stat(st.Out); err != nil {
		return nil, fmt.Errorf("jobs: the run of %s is done, but its results file: %w; keel does not write it again from a done run, since that would park its failures again (run with another --state to download the job's output anew)", r.o.State, err)
	}
	sum := &Summary{JobID: st.JobID, Status: st.Status, Message: st.Message, Records: st.Records,
		OK: st.ResultsOK, Failed: st.ResultsFailed, Manifest: st.Manifest}
	return sum, r.jobError()
}

// jobError is the *JobError of a job that ended Failed, Stopped or Expired, else nil.
func (r *Runner) jobError() error {
	st := r.St
	switch btypes.ModelInvocationJobStatus(st.Status) {
	case btypes.ModelInvocationJobStatusFailed, btypes.ModelInvocationJobStatusStopped, btypes.ModelInvocationJobStatusExpired:
		return &JobError{JobID: st.JobID, Status: st.Status, Message: st.Message}
	}
	return nil
}

// sentID is the recordId the record at index i was uploaded with.
func (r *Runner) sentID(i int, rec batch.Record) string {
	if r.St.KeelRecordIDs {
		return wireID(i)
	}
	return rec.ID
}

// answered fills a success line from the record's modelOutput.
func (r *Runner) answered(line *batch.ResultLine, rec batch.Record, out json.RawMessage) error {
	rp, err := batch.ParseReply(r.callOp(), nil, out)
	if err != nil {
		return fmt.Errorf("jobs: job %s: record %s: %w", r.St.JobID, rec.RawID, err)
	}
	line.Reply, line.StopReason, line.Usage, line.Target = &rp.Text, rp.StopReason, &rp.Usage, r.St.Model
	if rec.Format == batch.FormatBedrock {
		line.ModelOutput = out
	}
	return nil
}

// deadLetterKey is the DLQ key of a record of the run's job.
func (r *Runner) deadLetterKey(rec batch.Record) string { return "jobs:" + r.St.JobID + ":" + rec.ID }

// unpark removes the dead letter id if it is still there and is rec's, of
// this job: an id saved by a redrive names an entry of the DLQ that run
// used, and in another DLQ the same id is someone else's entry.
func (r *Runner) unpark(ctx context.Context, id int64, rec batch.Record) error {
	if r.o.DLQ == nil {
		return nil
	}
	e, err := r.o.DLQ.Get(ctx, id)
	if errors.Is(err, dlq.ErrNotFound) || (err == nil && e.Key != r.deadLetterKey(rec)) {
		return nil
	}
	if err == nil {
		err = r.o.DLQ.Delete(ctx, id)
	}
	if err != nil && !errors.Is(err, dlq.ErrNotFound) {
		return fmt.Errorf("jobs: %w", err)
	}
	return nil
}

// unparkReplaced removes the dead letters of the jobs this run's job
// replaced (Options.NewJob): their records are this job's now, answered
// or parked anew, and sending the old ones too would pay twice.
func (r *Runner) unparkReplaced(ctx context.Context) error {
	if r.o.DLQ == nil || len(r.St.Replaced) == 0 {
		return nil
	}
	all, err := r.o.DLQ.List(ctx, dlq.Filter{})
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	for _, e := range all {
		for _, id := range r.St.Replaced {
			if strings.HasPrefix(e.Key, "jobs:"+id+":") {
				if err := r.o.DLQ.Delete(ctx, e.ID); err != nil && !errors.Is(err, dlq.ErrNotFound) {
					return fmt.Errorf("jobs: %w", err)
				}
			}
		}
	}
	return nil
}

// park puts a record that got no answer in the DLQ, as the call it stands
// for, so keel dlq redrive can send it on demand.
func (r *Runner) park(ctx context.Context, rec batch.Record, batchLineJSON []byte, le *batch.LineError) error {
	if r.o.DLQ == nil {
		return nil
	}
	var bl batchLine
	if err := json.Unmarshal(batchLineJSON, &bl); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	now := r.clk.Now()
	e := &dlq.Entry{Key: r.deadLetterKey(rec), Source: "jobs", Op: string(r.callOp()), Model: r.St.Model,
		Region: cmp.Or(r.St.Region, r.o.Region), Body: bl.ModelInput, Code: le.Code, Status: le.Status, Message: le.Message,
		Attempts: []dlq.Attempt{}, CreatedAt: now, FailedAt: now}
	if r.o.Redact {
		e.Body, e.Redacted = dlq.RedactBody(e.Body), true
	}
	id, err := r.o.DLQ.Put(ctx, e)
	if err != nil {
		return fmt.Errorf("jobs: parking record %s: %w", rec.RawID, err)
	}
	le.DLQID = id
	return nil
}

// download reads every .out file under the job's output folder (of the
// lines of one recordId, the first answer wins, else the first line) and
// its manifest.json.out, if any.
func (r *Runner) download(ctx context.Context) (map[string]outLine, *Manifest, error) {
	loc, err := ParseS3URI(r.St.OutputURI)
	if err != nil {
		return nil, nil, err
	}
	prefix := loc.Key(r.St.JobID) + "/"
	outs := map[string]outLine{}
	var man *Manifest
	in := &s3.ListObjectsV2Input{Bucket: aws.String(loc.Bucket), Prefix: aws.String(prefix)}
	for {
		page, err := r.o.S3Client.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, nil, fmt.Errorf("jobs: listing %s: %w", loc.URI(prefix), err)
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			var read func(io.Reader) error
			switch {
			case strings.HasSuffix(key, "/manifest.json.out"):
				man = &Manifest{}
				read = func(rd io.Reader) error { return json.NewDecoder(rd).Decode(man) }
			case strings.HasSuffix(key, ".out"):
				read = func(rd io.Reader) error { return readOut(rd, outs) }
			default:
				continue
			}
			if err := r.read(ctx, loc.Bucket, key, read); err != nil {
				return nil, nil, err
			}
		}
		if aws.ToString(page.NextContinuationToken) == "" {
			return outs, man, nil
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

// read downloads s3://bucket/key into read as it comes: an output file is
// as long as its input (up to 1 GB) and more, and is never held whole.
func (r *Runner) read(ctx context.Context, bucket, key string, read func(io.Reader) error) error {
	out, err := r.o.S3Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("jobs: downloading s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	if err := read(out.Body); err != nil {
		return fmt.Errorf("jobs: s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// readOut adds the lines of one .out file to outs.
func readOut(rd io.Reader, outs map[string]outLine) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(nil, 1<<30)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var l outLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("line %d: %v", n, err)
		}
		if was, dup := outs[l.RecordID]; !dup || (!was.ok() && l.ok()) {
			outs[l.RecordID] = l
		}
	}
	return sc.Err()
}

// ok reports whether the line is an answer: a modelOutput and no error.
func (l outLine) ok() bool { return l.Error == nil && len(l.ModelOutput) > 0 }
