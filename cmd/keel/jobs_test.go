package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/jobs"
)

func TestJobsProgress(t *testing.T) {
	states := []jobs.State{
		{JobID: "j1", Status: "Validating", Step: jobs.StepCreated},
		{JobID: "j1", Status: "Validating", Step: jobs.StepCreated},
		{JobID: "j1", Status: "InProgress", Step: jobs.StepCreated, Processed: 50, Total: 200, Succeeded: 49, Errors: 1},
		{JobID: "j1", Status: "Completed", Step: jobs.StepEnded, Processed: 200, Total: 200, Succeeded: 198, Errors: 2},
	}
	tests := []struct {
		name string
		tty  bool
		want string
	}{
		{"lines: one per change", false, "job j1 Validating\njob j1 InProgress: 50/200 processed, 49 succeeded, 1 errors\n" +
			"job j1 Completed: 200/200 processed, 198 succeeded, 2 errors\n"},
		{"terminal: a bar that rewrites itself", true, "\r\033[Kjob j1 Validating\r\033[Kjob j1 Validating" +
			"\r\033[K[#######.......................] job j1 InProgress: 50/200 processed, 49 succeeded, 1 errors" +
			"\r\033[K[##############################] job j1 Completed: 200/200 processed, 198 succeeded, 2 errors\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			p := jobsProgress(&b, tt.tty)
			for i := range states {
				p(&states[i])
			}
			if b.String() != tt.want {
				t.Fatalf("got %q\nwant %q", b.String(), tt.want)
			}
		})
	}
}

func TestJobsReportExitCodes(t *testing.T) {
	done := &jobs.State{JobID: "j1", JobARN: "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/j1", Status: "Completed", Step: jobs.StepDone, Out: "out.jsonl"}
	tests := []struct {
		name   string
		sum    *jobs.Summary
		err    error
		code   int
		stdout string
		stderr string
	}{
		{"all answered", &jobs.Summary{Records: 3, OK: 3}, nil, 0, "3 records: 3 ok, 0 failed; results in out.jsonl", ""},
		{"some failed", &jobs.Summary{Records: 3, OK: 2, Failed: 1}, nil, 1, "failed records are in the dead-letter queue q.db", ""},
		{"job failed", &jobs.Summary{Records: 3, Failed: 3}, &jobs.JobError{JobID: "j1", Status: "Failed", Message: "bad input"}, 1,
			"3 records: 0 ok, 3 failed", "job j1 ended Failed: bad input\nkeel jobs run: to submit the same input again as a new job, run the same keel jobs run with --new"},
		{"bad input", nil, fmt.Errorf("%w: too few", jobs.ErrInvalid), 2, "", "too few"},
		{"interrupted", nil, context.Canceled, 130, "", "run the same command again"},
		{"a call failed", nil, errors.New("AccessDenied"), 1, "", "AccessDenied"},
		{"no credentials: the catalog's explanation", nil, errors.New("jobs: polling job j1: operation error Bedrock: GetModelInvocationJob, get identity: " +
			"get credentials: failed to refresh cached credentials, the SSO session has expired or is invalid"), 1, "", "No AWS credentials could be found or refreshed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := jobsReport(&out, &errb, "keel jobs run", done, tt.sum, tt.err, "q.db", false, false)
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Fatalf("code %d (want %d)\nstdout %q\nstderr %q", code, tt.code, out.String(), errb.String())
			}
		})
	}
}

// TestJobsBadSettings: settings Bedrock would refuse are refused before
// anything is uploaded, exit 2, no state file.
func TestJobsBadSettings(t *testing.T) {
	tests := []struct {
		name   string
		flags  []string
		stderr string
	}{
		{"timeout under 24 hours (review r5, finding 9)", []string{"--timeout-hours", "1"}, "--timeout-hours: jobs: a job's timeout is 24 to 168 hours, not 1"},
		{"timeout over 168 hours", []string{"--timeout-hours", "200"}, "not 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "results.jsonl")
			args := append([]string{"run", "--emulator", "--in", "../../examples/prompts-bedrock.jsonl", "--model", "anthropic.claude-3-haiku-20240307-v1:0", "--out", out}, tt.flags...)
			var stdout, stderr bytes.Buffer
			if code := runJobs(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want 2 saying %q", code, stderr.String(), tt.stderr)
			}
			if _, err := os.Stat(out + ".jobstate"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("state file: %v, want none", err)
			}
		})
	}
}
