// Package jobs runs a JSONL file of Bedrock requests as an Amazon Bedrock
// batch-inference job (CreateModelInvocationJob), from input file to results
// file, so that a kill at any point loses no record, writes none twice and
// never pays for a second job.
//
// The flow is Submit (validate the input with package batch's reader, split
// it into files within Limits, upload them to S3, create the job), Wait
// (adaptive polling: see Polling) and Results (download
// {output}/{jobId}/*.out and manifest.json.out, join them to the input by
// recordId, write one result line per input record in keel batch run's
// shape, in input order, and park failed or unprocessed records in the
// dead-letter queue with the job id and Bedrock's error). Run does all three.
//
// Every step is recorded in a state file (0600, replaced atomically) before
// the next begins; it also records the region, which every later step
// uses. The job's name and clientRequestToken are derived from the run (the
// input's SHA-256, the model, the S3 location, the role, the limits and the
// timeout), and before creating a job the flow looks for one with that
// name: a crash between "create" and "checkpoint" finds the job it created
// instead of paying for a second. A job that ended Failed, Stopped or
// Expired is replaced only when asked (Options.NewJob). Records are sent
// with keel's own recordIds and joined back to the input's. Dead letters
// are keyed by job and record, the results file is written whole and
// renamed into place, and a run once done returns its recorded summary, so
// running a finished step again changes nothing.
//
// The AWS clients are interfaces (S3API, BedrockAPI): the method subsets of
// aws-sdk-go-v2's *s3.Client and *bedrock.Client the flow calls.
package jobs
