package jobs

import (
	"fmt"
	"regexp"
	"strings"
)

// Bedrock's default batch-inference quotas, as the Service Quotas console
// names them (docs/jobs.md cites the pages). Accounts and models differ:
// set Limits from your own quotas (keel doctor shows them).
const (
	// DefaultMinRecordsPerJob is "Minimum number of records per batch
	// inference job": Bedrock fails a job with fewer at validation.
	DefaultMinRecordsPerJob = 100
	// DefaultRecordsPerFile is "Records per input file per batch inference job".
	DefaultRecordsPerFile = 50_000
	// DefaultRecordsPerJob is "Records per batch inference job".
	DefaultRecordsPerJob = 50_000
	// DefaultBytesPerFile is "Batch inference input file size" (1 GB).
	DefaultBytesPerFile = 1 << 30
	// DefaultBytesPerJob is "Batch inference job size" (5 GB).
	DefaultBytesPerJob = 5 << 30
)

// The range of a job's timeoutDurationInHours: CreateModelInvocationJob
// refuses another value with a ValidationException (the API reference), so
// keel refuses it first, before anything is uploaded.
const (
	MinTimeoutHours = 24
	MaxTimeoutHours = 168
)

// CheckTimeoutHours refuses a job timeout Bedrock would refuse; zero means
// Bedrock's default and passes.
func CheckTimeoutHours(h int) error {
	if h != 0 && (h < MinTimeoutHours || h > MaxTimeoutHours) {
		return fmt.Errorf("jobs: a job's timeout is %d to %d hours, not %d", MinTimeoutHours, MaxTimeoutHours, h)
	}
	return nil
}

// Limits bound how the input is split into files and what one job may hold.
// The zero value means Bedrock's defaults; each zero field takes its default.
type Limits struct {
	MinRecordsPerJob int   // fewer records than this are refused before upload
	RecordsPerFile   int   // at most this many records in one uploaded file
	BytesPerFile     int64 // at most this many bytes in one uploaded file; a record longer is refused
	RecordsPerJob    int   // more records than this are refused (split the input into several runs)
	BytesPerJob      int64 // more bytes than this are refused
}

func (l Limits) withDefaults() Limits {
	if l.MinRecordsPerJob <= 0 {
		l.MinRecordsPerJob = DefaultMinRecordsPerJob
	}
	if l.RecordsPerFile <= 0 {
		l.RecordsPerFile = DefaultRecordsPerFile
	}
	if l.BytesPerFile <= 0 {
		l.BytesPerFile = DefaultBytesPerFile
	}
	if l.RecordsPerJob <= 0 {
		l.RecordsPerJob = DefaultRecordsPerJob
	}
	if l.BytesPerJob <= 0 {
		l.BytesPerJob = DefaultBytesPerJob
	}
	return l
}

// span is the records [Start, End) of one input file, and its size.
type span struct {
	Start, End int
	Bytes      int64
}

// split cuts records, of the given line sizes (with their '\n'), into files
// of at most l.RecordsPerFile records and l.BytesPerFile bytes, in order.
// ids name the records in errors.
func split(sizes []int64, ids []string, l Limits) ([]span, error) {
	if len(sizes) < l.MinRecordsPerJob {
		return nil, fmt.Errorf("jobs: the input has %d records; a Bedrock batch job needs at least %d (the quota \"Minimum number of records per batch inference job\", Limits.MinRecordsPerJob); run fewer on demand with keel batch run", len(sizes), l.MinRecordsPerJob)
	}
	if len(sizes) > l.RecordsPerJob {
		return nil, fmt.Errorf("jobs: the input has %d records; one job holds at most %d (the quota \"Records per batch inference job\", Limits.RecordsPerJob); split the input", len(sizes), l.RecordsPerJob)
	}
	var spans []span
	var total int64
	cur := span{}
	for i, n := range sizes {
		if n > l.BytesPerFile {
			return nil, fmt.Errorf("jobs: record %s is %d bytes as a batch line; an input file holds at most %d (the quota \"Batch inference input file size\", Limits.BytesPerFile)", ids[i], n, l.BytesPerFile)
		}
		total += n
		if cur.End > cur.Start && (cur.End-cur.Start >= l.RecordsPerFile || cur.Bytes+n > l.BytesPerFile) {
			spans = append(spans, cur)
			cur = span{Start: i, End: i}
		}
		cur.End++
		cur.Bytes += n
	}
	if total > l.BytesPerJob {
		return nil, fmt.Errorf("jobs: the input is %d bytes as batch lines; one job holds at most %d (the quota \"Batch inference job size\", Limits.BytesPerJob); split the input", total, l.BytesPerJob)
	}
	return append(spans, cur), nil
}

// S3Location is a bucket and a key prefix without a trailing slash.
type S3Location struct {
	Bucket, Prefix string
}

// URI returns s3://bucket/prefix/key (key may be empty).
func (l S3Location) URI(key string) string { return "s3://" + l.Bucket + "/" + key }

// Key joins the prefix and name.
func (l S3Location) Key(name string) string {
	if l.Prefix == "" {
		return name
	}
	return l.Prefix + "/" + name
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ParseS3URI reads s3://bucket[/prefix].
func ParseS3URI(s string) (S3Location, error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return S3Location{}, fmt.Errorf("jobs: %q is not an S3 URI; want s3://bucket/prefix", s)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if !bucketName.MatchString(bucket) || strings.Contains(bucket, "..") {
		return S3Location{}, fmt.Errorf("jobs: %q: %q is not an S3 bucket name (3 to 63 lower-case letters, digits, dots and hyphens)", s, bucket)
	}
	return S3Location{Bucket: bucket, Prefix: strings.Trim(prefix, "/")}, nil
}

var roleARN = regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)

// CheckRole reports whether arn is the shape of an IAM role ARN, which
// CreateModelInvocationJob requires.
func CheckRole(arn string) error {
	if arn == "" {
		return fmt.Errorf("jobs: no service role: Bedrock runs the job as an IAM role that can read and write the S3 location (--role arn:aws:iam::ACCOUNT:role/NAME)")
	}
	if !roleARN.MatchString(arn) {
		return fmt.Errorf("jobs: role %q is not an IAM role ARN; want arn:aws:iam::ACCOUNT:role/NAME", arn)
	}
	return nil
}
