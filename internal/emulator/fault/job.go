package fault

import "time"

// JobRequest identifies a batch inference job (CreateModelInvocationJob)
// that a Job is decided for.
type JobRequest struct {
	Name   string // the job's name
	Model  string // the model id as the request names it
	Region string
}

// Job is how a batch inference job is treated: the limits it is validated
// against, how fast it moves, and what goes wrong for it. A zero field
// takes the emulator's default (see emulator.DefaultJobLimits and
// emulator.DefaultJobStep).
type Job struct {
	// Step is how long the job stays in each status (Submitted,
	// Validating, Scheduled, InProgress, Stopping) before the next.
	Step time.Duration
	// Limits are the batch inference quotas the job is validated against.
	Limits JobLimits
	// CreateError answers CreateModelInvocationJob with this catalog code
	// (ThrottlingException, ServiceQuotaExceededException, ...) instead of
	// making the job; CreateErrorMessage overrides the catalog's message.
	CreateError, CreateErrorMessage string
	// FailValidation, when set, ends the job Failed while it is Validating,
	// with this as its message.
	FailValidation string
	// RecordErrors is the share of records, from 0 to 1, answered with an
	// error line instead of the model's output; the job still ends
	// Completed, with them in its errorRecordCount, as Bedrock's does.
	RecordErrors float64
	// Partial makes the job's timeout end it halfway through InProgress: it
	// ends PartiallyCompleted ("not all of your records could be processed
	// in time") with the records answered so far.
	Partial bool
	// Expire makes the job time out while Scheduled, before it begins: it
	// ends Expired with no output.
	Expire bool
}

// JobLimits are Bedrock's batch inference quotas, as Service Quotas names
// them. Zero means the emulator's default for each.
type JobLimits struct {
	MinRecordsPerJob  int   // "Minimum number of records per batch inference job"
	MaxRecordsPerFile int   // "Records per input file per batch inference job"
	MaxRecordsPerJob  int   // "Records per batch inference job"
	MaxFileBytes      int64 // "Batch inference input file size"
	MaxJobBytes       int64 // "Batch inference job size"
}
