package scenario

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/scenario/glob"
)

// Jobs is a scenario's batch inference settings: the pace of jobs, the
// quotas they are validated against, and job faults. Zero fields keep the
// emulator's defaults.
type Jobs struct {
	// Step is how long a job stays in each status.
	Step time.Duration
	// Limits are the batch inference quotas.
	Limits fault.JobLimits
	// Faults apply to the jobs they match; the first match wins.
	Faults []JobFault
}

// JobFault is what goes wrong for the jobs it matches.
type JobFault struct {
	// Name and Model are '*' patterns the job's name and model id must
	// match; empty means "*".
	Name, Model string
	// CreateError answers CreateModelInvocationJob with this catalog code
	// (ThrottlingException, ServiceQuotaExceededException, ...);
	// CreateErrorMessage overrides its message. Times, when above zero,
	// limits it to the first Times matching creates, so a client's retry
	// then succeeds.
	CreateError, CreateErrorMessage string
	Times                           int
	// FailValidation ends a matching job Failed while Validating, with
	// this message.
	FailValidation string
	// RecordErrors is the share of records answered with an error.
	RecordErrors float64
	// Partial makes the job end PartiallyCompleted halfway through
	// InProgress, its timeout reached.
	Partial bool
	// Expire makes the job end Expired while Scheduled, with no output.
	Expire bool
}

// acts reports whether f changes anything.
func (f *JobFault) acts() bool {
	return f.CreateError != "" || f.FailValidation != "" || f.RecordErrors > 0 || f.Partial || f.Expire
}

// maxJobStep bounds Jobs.Step: a day per status is already far slower than
// any test or demo wants; more is more likely a slip than a plan.
const maxJobStep = 24 * time.Hour

func (p *parser) jobs(n *yaml.Node, at string) Jobs {
	var j Jobs
	p.fields(n, at, []field{
		{"step", func(v *yaml.Node, at string) {
			j.Step = p.duration(v, at)
			p.check(v, at, checkJobStep(j.Step))
		}},
		{"limits", func(v *yaml.Node, at string) {
			l := &j.Limits
			p.fields(v, at, []field{
				{"min_records_per_job", func(v *yaml.Node, at string) { l.MinRecordsPerJob = p.count(v, at) }},
				{"max_records_per_file", func(v *yaml.Node, at string) { l.MaxRecordsPerFile = p.count(v, at) }},
				{"max_records_per_job", func(v *yaml.Node, at string) { l.MaxRecordsPerJob = p.count(v, at) }},
				{"max_file_bytes", func(v *yaml.Node, at string) { l.MaxFileBytes = p.limit(v, at) }},
				{"max_job_bytes", func(v *yaml.Node, at string) { l.MaxJobBytes = p.limit(v, at) }},
			})
		}},
		{"faults", func(v *yaml.Node, at string) {
			p.list(v, at, func(v *yaml.Node, at string) { j.Faults = append(j.Faults, p.jobFault(v, at)) })
		}},
	})
	return j
}

func (p *parser) jobFault(n *yaml.Node, at string) JobFault {
	var f JobFault
	p.fields(n, at, []field{
		{"name", func(v *yaml.Node, at string) { f.Name = p.str(v, at) }},
		{"model", func(v *yaml.Node, at string) { f.Model = p.str(v, at) }},
		{"create_error", func(v *yaml.Node, at string) { f.CreateError = p.code(v, at, useReply) }},
		{"create_error_message", func(v *yaml.Node, at string) { f.CreateErrorMessage = p.str(v, at) }},
		{"times", func(v *yaml.Node, at string) { f.Times = p.count(v, at) }},
		{"fail_validation", func(v *yaml.Node, at string) { f.FailValidation = p.str(v, at) }},
		{"record_errors", func(v *yaml.Node, at string) { f.RecordErrors = p.probability(v, at) }},
		{"partial", func(v *yaml.Node, at string) { f.Partial = p.boolean(v, at) }},
		{"expire", func(v *yaml.Node, at string) { f.Expire = p.boolean(v, at) }},
	})
	switch {
	case resolve(n).Kind == yaml.MappingNode && !f.acts():
		p.fail(n, at, "the fault does nothing; give it create_error, fail_validation, record_errors, partial or expire")
	case f.Partial && f.Expire:
		p.fail(n, at, "partial (the job ends PartiallyCompleted while InProgress) and expire (it ends Expired before it begins) exclude each other")
	}
	return f
}

func checkJobStep(d time.Duration) error {
	if d < 0 || d > maxJobStep {
		return fmt.Errorf("step %v is not between 0 (the default) and %v", d, maxJobStep)
	}
	return nil
}

// validate checks j as Parse does.
func (j *Jobs) validate() error {
	var errs []error
	if err := checkJobStep(j.Step); err != nil {
		errs = append(errs, fmt.Errorf("scenario: jobs.step: %w", err))
	}
	l := j.Limits
	if l.MinRecordsPerJob < 0 || l.MaxRecordsPerFile < 0 || l.MaxRecordsPerJob < 0 || l.MaxFileBytes < 0 || l.MaxJobBytes < 0 {
		errs = append(errs, errors.New("scenario: jobs.limits: a limit is negative"))
	}
	for i, f := range j.Faults {
		at := fmt.Sprintf("scenario: jobs.faults[%d]", i)
		if !f.acts() {
			errs = append(errs, fmt.Errorf("%s: the fault does nothing", at))
		}
		if f.CreateError != "" {
			if _, err := checkCode(f.CreateError, useReply); err != nil {
				errs = append(errs, fmt.Errorf("%s.create_error: %w", at, err))
			}
		}
		if f.Times < 0 {
			errs = append(errs, fmt.Errorf("%s.times: %d is negative", at, f.Times))
		}
		if err := checkProbability(f.RecordErrors); err != nil {
			errs = append(errs, fmt.Errorf("%s.record_errors: %w", at, err))
		}
	}
	return errors.Join(errs...)
}

// JobPlan decides how the batch inference job r is treated under the
// scenario in force: its step and limits, and the first job fault that
// matches it. It is the emulator's Options.JobPlanner.
func (in *Injector) JobPlan(r fault.JobRequest) fault.Job {
	c := in.cur.Load()
	j := &c.s.Jobs
	plan := fault.Job{Step: j.Step, Limits: j.Limits}
	for i := range j.Faults {
		f := &j.Faults[i]
		if !glob.Match(orStar(f.Name), r.Name) || !glob.Match(orStar(f.Model), r.Model) {
			continue
		}
		if f.CreateError != "" && (f.Times == 0 || c.jobHits[i].Add(1) <= int64(f.Times)) {
			plan.CreateError, plan.CreateErrorMessage = canonical(f.CreateError), f.CreateErrorMessage
		}
		plan.FailValidation, plan.RecordErrors, plan.Partial, plan.Expire = f.FailValidation, f.RecordErrors, f.Partial, f.Expire
		break
	}
	return plan
}

// jobHitCounts returns a counter per job fault, for Times.
func jobHitCounts(s *Scenario) []atomic.Int64 {
	return make([]atomic.Int64, len(s.Jobs.Faults))
}

// boolean reads true or false.
func (p *parser) boolean(v *yaml.Node, at string) bool {
	v = resolve(v)
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
		p.fail(v, at, "want true or false, got %s", describe(v))
		return false
	}
	return v.Value == "true"
}
