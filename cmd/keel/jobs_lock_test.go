package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/lockfile"
)

// jobsEmulator serves the emulator on 127.0.0.1 with jobs that stay in
// each status for step, and returns the flags that point keel jobs at it.
func jobsEmulator(t *testing.T, step time.Duration) []string {
	t.Helper()
	rn, err := emulator.Start(emulator.Options{Seed: 1, JobPlanner: func(fault.JobRequest) fault.Job { return fault.Job{Step: step} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rn.Close() })
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	return []string{"--endpoint", rn.URL, "--region", "us-east-1"}
}

// submitJob runs keel jobs submit of examples/prompts-bedrock.jsonl and
// returns the results file's path (the state file is it + ".jobstate").
func submitJob(t *testing.T, target []string, extra ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "results.jsonl")
	args := append([]string{"submit", "--in", "../../examples/prompts-bedrock.jsonl", "--model", "anthropic.claude-3-haiku-20240307-v1:0",
		"--out", out, "--s3", "s3://keel-jobs/lock", "--role", "arn:aws:iam::123456789012:role/r"}, target...)
	var stdout, stderr bytes.Buffer
	if code := runJobs(append(args, extra...), &stdout, &stderr); code != 0 {
		t.Fatalf("keel jobs submit: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	return out
}

// TestJobsStepsBesideARun (review r5, finding 5): while keel jobs run holds
// the state's lock, keel jobs stop and status (which write nothing) work,
// and the steps that write the state are refused.
func TestJobsStepsBesideARun(t *testing.T) {
	target := jobsEmulator(t, time.Hour) // the job waits in Submitted
	out := submitJob(t, target)
	lock, err := lockfile.Acquire(out+".jobstate.lock", "keel jobs run")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	tests := []struct {
		step   string
		code   int
		stderr string
	}{
		{"status", 0, ""},
		{"wait", 1, "is held by keel jobs run"},
		{"results", 1, "is held by keel jobs run"},
		{"stop", 0, "asked Bedrock to stop job"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runJobs(append([]string{tt.step, "--state", out + ".jobstate"}, target...), &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout %s\nstderr %s", code, tt.code, stdout.String(), stderr.String())
			}
		})
	}
}
