package admission

import (
	"time"
)

// eps absorbs float rounding in bucket levels (a thousandth of a token).
const eps = 1e-3

// Estimate correction: an EWMA of real/estimated input per target, with a
// margin of its mean absolute deviation. Until it has learned, the margin is
// startDev.
const (
	alpha     = 0.1
	startDev  = 0.25
	minSample = 0.05
	maxSample = 20
)

// Quantile estimates (see quantile).
const (
	replyQuantile = 0.95
	holdQuantile  = 0.99
	trackStep     = 0.05
	// warmValues is how many values a quantile keeps to start from.
	warmValues = 20
)

// maxWaitSeconds bounds a computed wait (about 31 years), so that a huge
// deficit over a tiny rate cannot overflow a time.Duration.
const maxWaitSeconds = 1e9

// minPerTok is the least output a reply must have to teach the time per
// output token.
const minPerTok = 32

// overloadSpan is how far back a target's offered load is looked at.
const overloadSpan = time.Minute

// minJudged is how many calls a target must have seen before its large
// calls' hold is used to judge others.
const minJudged = warmValues

// minObserved is how long the Governor watches a target with an unknown
// quota before a throttle teaches it a limit. A throttle before that only
// pauses the target: a process that starts while the quota is spent (by
// others, or by its own previous run) is throttled at once, before what it
// used says anything about a rate. (Longer waits were measured: 2 s and
// 5 s of pauses alone let bursts through between them, and throttled more
// in keel bench quota.)
const minObserved = time.Second

// episodeGap is how long after a throttle the next one still belongs to
// the same episode, whose anchor bounds the quota. Bedrock's bucket, below
// one call's hold at a throttle, cannot fill to a whole minute of quota
// (and lose refill to overflow, which would break the bound) in less than
// about a minute; 50 s leaves room for a call of a sixth of the quota.
const episodeGap = 50 * time.Second

const slotLen = 5 * time.Second

// flightHorizon is how long a call stays in a flight: one in flight longer
// is taken for a leaked Ticket (never settled) rather than a slow reply, so
// that it cannot keep every later call's slot, nor set the slow replies'
// time.
const flightHorizon = 10 * time.Minute

// Defaults for zero Options fields. docs/governor.md says why.
const (
	// DefaultBatchEvery: after 4 Interactive grants in a row while Batch
	// calls wait, the next grant goes to Batch.
	DefaultBatchEvery = 4
	// DefaultCoolDown is the mean pause after a throttle; each pause is drawn
	// from [CoolDown/2, 3×CoolDown/2).
	DefaultCoolDown = time.Second
	// DefaultRecovery is the time a shrunk limit takes to grow back to where
	// it was when the throttle came.
	DefaultRecovery = 30 * time.Second
	// DefaultDecrease is the share of the limit kept after a throttle, as in
	// the AWS SDK's adaptive retry mode (its beta).
	DefaultDecrease = 0.7
	// DefaultQueueTarget is how long an Interactive call joining the queue
	// of an overloaded target may expect to wait (see Options.QueueTarget).
	DefaultQueueTarget = time.Second
	// DefaultMaxTargets bounds the targets a Governor keeps state for.
	DefaultMaxTargets = 1024
	// DefaultFloor is the lowest tokens-per-minute limit a target's
	// adaptation goes down to when neither a quota nor a floor is set.
	DefaultFloor = 1000
)

// Fixed parts of an input estimate.
const (
	// BytesPerToken is the starting ratio of text to tokens: about four
	// characters of English per token. Counting UTF-8 bytes rather than
	// characters keeps the ratio sensible for other scripts too (a CJK
	// character is three bytes, close to one token). The governor corrects
	// the ratio per target from the usage Bedrock reports.
	BytesPerToken = 4
	// ImageTokens is counted for each image block. Claude charges about
	// width×height/750 tokens and scales images down to about 1,600 tokens;
	// the body does not say the size without decoding the image, so every
	// image counts as the largest.
	ImageTokens = 1600
	// DocumentTokens is counted for each document block (a PDF or a file):
	// a flat guess, since the pages are not known without decoding it.
	DocumentTokens = 3000
)

// maxDepth bounds the nesting EstimateBody follows, so a hostile body cannot
// exhaust the stack.
const maxDepth = 256
