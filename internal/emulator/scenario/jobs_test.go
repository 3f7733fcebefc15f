package scenario

import (
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/emulator/fault"
)

func TestJobsParseAndPlan(t *testing.T) {
	s, err := Parse([]byte(`
jobs:
  step: 50ms
  limits:
    min_records_per_job: 10
    max_records_per_file: 1_000
    max_file_bytes: 1048576
  faults:
    - name: "throttled-*"
      create_error: ThrottlingException
      times: 2
    - name: "quota-*"
      create_error: ServiceQuotaExceededException
    - name: "bad-*"
      fail_validation: The role cannot read the input.
    - model: "*haiku*"
      record_errors: 25%
    - name: "slow-*"
      expire: true
    - name: "late-*"
      partial: true
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	in := NewInjector(s, 1, nil)
	limits := fault.JobLimits{MinRecordsPerJob: 10, MaxRecordsPerFile: 1000, MaxFileBytes: 1 << 20}
	tests := []struct {
		name, model string
		want        fault.Job
	}{
		{"throttled-1", "m", fault.Job{CreateError: "ThrottlingException"}},
		{"throttled-2", "m", fault.Job{CreateError: "ThrottlingException"}},
		{"throttled-3", "m", fault.Job{}}, // times: 2 — the third create goes through
		{"quota-1", "m", fault.Job{CreateError: "ServiceQuotaExceededException"}},
		{"quota-2", "m", fault.Job{CreateError: "ServiceQuotaExceededException"}},
		{"bad-1", "m", fault.Job{FailValidation: "The role cannot read the input."}},
		{"any", "anthropic.claude-3-haiku-20240307-v1:0", fault.Job{RecordErrors: 0.25}},
		{"slow-1", "m", fault.Job{Expire: true}},
		{"late-1", "m", fault.Job{Partial: true}},
		{"plain", "m", fault.Job{}},
	}
	for _, tc := range tests {
		tc.want.Step, tc.want.Limits = 50*time.Millisecond, limits
		if got := in.JobPlan(fault.JobRequest{Name: tc.name, Model: tc.model, Region: "us-east-1"}); got != tc.want {
			t.Errorf("JobPlan(%s, %s) = %+v, want %+v", tc.name, tc.model, got, tc.want)
		}
	}
}

func TestJobsParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "jobs:\n  speed: 1s\n", `unknown key "speed"`},
		{"unknown code", "jobs:\n  faults:\n    - create_error: NoSuchException\n", "create_error"},
		{"does nothing", "jobs:\n  faults:\n    - name: x\n", "the fault does nothing"},
		{"bad share", "jobs:\n  faults:\n    - record_errors: 1.5\n", "record_errors"},
		{"bad expire", "jobs:\n  faults:\n    - expire: soon\n", "want true or false"},
		{"bad partial", "jobs:\n  faults:\n    - partial: 1\n", "want true or false"},
		{"partial and expire", "jobs:\n  faults:\n    - partial: true\n      expire: true\n", "exclude each other"},
		{"step too long", "jobs:\n  step: 48h\n", "step 48h0m0s is not between"},
		{"negative limit", "jobs:\n  limits:\n    min_records_per_job: -1\n", "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
