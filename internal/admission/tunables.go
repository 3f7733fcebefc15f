package admission

import "time"

// Every constant that steers the Governor's behaviour, with the reason for
// its value. docs/governor.md ("Tuning") gives the measurements that chose
// them.

// Buckets.
const (
	// eps absorbs float rounding in bucket levels: a call fits within a
	// thousandth of a token of its hold.
	eps = 1e-3
	// maxWaitSeconds bounds a computed wait (about 31 years), so that a
	// huge deficit over a tiny rate cannot overflow a time.Duration.
	maxWaitSeconds = 1e9
)

// Input-estimate correction: an EWMA of real/estimated input per target,
// with a margin of its mean absolute deviation.
const (
	// alpha is the EWMAs' weight of a new call (after the first 1/alpha,
	// which are averaged evenly): about the last ten calls count.
	alpha = 0.1
	// startDev is the margin added to the ratio until the deviation is
	// learned: a quarter, so that an unseen target's estimates err high.
	startDev = 0.25
	// minSample and maxSample clip one call's real/estimated ratio, so that
	// one absurd estimate cannot swing the correction.
	minSample = 0.05
	maxSample = 20
)

// Reply-time and hold quantiles (see quantile).
const (
	// replyQuantile is the share of replies a call's deadline keeps room
	// for: one in twenty may take longer.
	replyQuantile = 0.95
	// holdQuantile sets the target's large calls, the size a call entering
	// a busy queue is judged by: all but the largest one in a hundred.
	holdQuantile = 0.99
	// trackStep is how far a warmed-up quantile moves per value: small
	// enough to stay put on noise, large enough to follow a change in tens
	// of calls.
	trackStep = 0.05
	// warmValues is how many values a quantile keeps to start from, exact:
	// enough for a 95th percentile to see the slow replies of the first
	// calls.
	warmValues = 20
	// minPerTok is the least output a reply must have to teach the time
	// per output token: shorter replies are mostly time to first token.
	minPerTok = 32
	// youngFlightWeight: until warmValues replies are seen, a call in
	// flight counts for this many times its age, being as likely past
	// halfway through its reply as not.
	youngFlightWeight = 2
	// maxFlightStretch: after that, the calls in flight may at most double
	// the reply percentile, so that one long call among a few cannot refuse
	// every queued call.
	maxFlightStretch = 2
	// maxSettleFrac caps one call's settled/held ratio in the EWMA of the
	// refunds expected from calls in flight, so that one call that used
	// far more than it held cannot swing it.
	maxSettleFrac = 2
)

// The queue's judgement and overload shedding.
const (
	// minJudged is how many calls a target must have seen before its large
	// calls' hold is used to judge others: a quantile's warm values.
	minJudged = warmValues
	// overloadSpan is how far back a target's offered load is looked at:
	// the bucket holds a minute of quota, so load below a minute of it
	// within a minute is a burst the bucket absorbs.
	overloadSpan = time.Minute
)

// The limit learner (learn.go).
const (
	// windowSpan is the time over which what Bedrock's bucket gave is
	// taken for the quota, between two confirmed throttles: a minute, the
	// quota's own period, so that one call's hold weighs little.
	windowSpan = time.Minute
	// maxPauseDoublings bounds the doubling of the pause after confirmed
	// throttles in a row: 2^5 × CoolDown (32 s by default) reaches a bucket
	// that refills once a minute within a few throttles.
	maxPauseDoublings = 5
	// pauseShare bounds a pause after confirmed throttles in a row by this
	// share of the time since the first of them: a bucket in debt (a
	// resumed run's, spent by the run before) is found refilled within
	// half again the debt's length, where doubling pauses overran it by
	// up to as much again (6 s of a 7 s debt in keel bench learn's resume
	// case); a bucket that refills once a minute is probed a few times
	// more each minute.
	pauseShare = 0.5
	// slowStartGain is what each call that gets through adds to a first
	// limit, times what it cost, until the next confirmed throttle: the
	// limit doubles every 3 s while calls keep up with it, so a first
	// limit learned from a spent bucket (a process resumed after another
	// used the quota up) reaches the quota from a hundredth of it in
	// about 20 s.
	slowStartGain = 20
	// probeEvery is how long a learning target with nothing in flight
	// waits at most before it sends a call whatever its bucket holds, and
	// how long the bucket must be about to keep it waiting for that: 5 s,
	// so that a limit learned far too low cannot stall a short run (30 s
	// stalled keel bench learn's shapes case in miniature), and a limit
	// learned right is overrun only by calls of over 5 s of quota.
	probeEvery = 5 * time.Second
	// learnedShare is the share of the rate Bedrock gave over a bound
	// minute that a limit above it is lowered to: the rate is measured to
	// a few percent, and a limit at it to the percent keeps Bedrock's
	// bucket at its edge, throttling a few calls a minute.
	learnedShare = 0.97
	// bindingShare is how much of its limit a target must have been given
	// over a bound minute for the limit, not the quota, to be what held
	// it back: below it, Bedrock gave less than the limit let through.
	bindingShare = 0.95
	// slowStartSpan is how far back slow start looks at what the target
	// used: a short span, so that its cap follows a limit that doubles
	// every few seconds.
	slowStartSpan = 10 * time.Second
	// minBurst is the least capacity, in time of quota, a learned burst
	// goes down to: a second, the shortest burst the emulator plays.
	minBurst = time.Second
	// burstMemory is how long a learned burst is kept without a confirmed
	// throttle: after that the bucket holds a minute of quota again.
	burstMemory = 5 * time.Minute
	// debtMarks is how many confirmed throttles' possible debts are kept
	// for the minute's rate: more than a minute of them at the pauses'
	// pace.
	debtMarks = 16
	// minDrySpan is the shortest span between two confirmed throttles
	// whose gift is read as a lower bound of the quota: over a shorter one
	// a call's hold weighs too much.
	minDrySpan = 5 * time.Second
	// dryCap bounds that lower bound by twice the limit that met the
	// throttle: calls in transit read as served made it 2.5-6 × the quota
	// in the quick start, while slow start, doubling its limit every few
	// seconds, may rightly sit below the bound.
	dryCap = 2
	// firstLimitCalls is how many of its hold a Batch call's first
	// confirmed throttle lets through a minute at least: one every 5 s, so
	// that a bucket found empty at the first call (one that starts empty,
	// or in debt) is probed often enough for slow start to grow the limit.
	firstLimitCalls = 12
	// startRound is the round of the window an unknown quota's Batch calls
	// open in before its first confirmed throttle, and the most a suspect
	// throttle holds it (see startAt): about a throttle's round trip, fixed
	// rather than learned, since injected throttles that came back in 400 ms
	// made the window take 2 s to open on a full bucket (keel bench learn's
	// noise case, seed 2), and two of them confirmed each other meanwhile:
	// 9.9 quota throttles per 100.
	startRound = 50 * time.Millisecond
	// startScan bounds how many of the latest calls the window looks at for
	// young ones: calls that ended without settling stay in flight's slots
	// behind a long call for up to flightHorizon, and 100,000 of them made
	// a Batch admission take 122 µs instead of 2-3 µs
	// (BenchmarkStartWindowAfterCancels). Missing young calls past it (over
	// 20,000 grants a second) only opens the window wider.
	startScan = 1024
	// startBurst is what a target's bucket holds when its quota is known
	// at the start: a second of quota, the least burst the emulator plays,
	// so that a bucket Bedrock holds spent or empty throttles few calls
	// (warm brings the level up where it is full).
	startBurst = time.Second
)

// Telling noise throttles from quota signals (suspect.go).
const (
	// confirmPasses is how many calls granted after a suspect throttle
	// must get through to clear it: with a share p of noise throttles, a
	// noise throttle is taken for a quota signal with probability
	// 1-(1-p)^confirmPasses (9 % at p = 3 %).
	confirmPasses = 3
	// throttleMargin and throttleSlack turn the 95th percentile of the
	// throttles' round trips into the time after which a call in flight
	// has got through Bedrock's quota check.
	throttleMargin = 1.5
	throttleSlack  = 50 * time.Millisecond
)

// Windows and calls in flight (flight.go).
const (
	// slotLen is a window's slot: twelve of them make the minute that
	// rates are read over.
	slotLen = 5 * time.Second
	// windowSlots is how many slots make a window's minute.
	windowSlots = 12
	// flightHorizon is how long a call stays in a flight: one in flight
	// longer is taken for a leaked Ticket (never settled) rather than a slow
	// reply, so that it cannot keep every later call's slot, nor set the
	// slow replies' time.
	flightHorizon = 10 * time.Minute
)

// evictIdle is how long a target must have been idle (no call in flight or
// waiting, none granted) to be forgotten for a new one once MaxTargets are
// governed: a minute, the quota's period, after which what its bucket held
// has refilled anyway; what it learned is learned again.
const evictIdle = time.Minute

// Defaults for zero Options fields.
const (
	// DefaultBatchEvery: after 4 Interactive grants in a row while Batch
	// calls wait, the next grant goes to Batch, so that Batch never starves
	// and Interactive keeps four fifths of the grants.
	DefaultBatchEvery = 4
	// DefaultCoolDown is the mean pause after a throttle; each pause is drawn
	// from [CoolDown/2, 3×CoolDown/2): long enough for the calls in transit
	// to come back, short against a minute of quota.
	DefaultCoolDown = time.Second
	// DefaultRecovery is the time a limit takes to grow back to where it
	// was when it was last cut, and then how slowly it probes past it: a
	// minute, the quota's period, so that a limit learned from a minute of
	// what Bedrock gave is probed gently.
	DefaultRecovery = time.Minute
	// DefaultDecrease is the share of the limit kept after a throttle, as in
	// the AWS SDK's adaptive retry mode (its beta).
	DefaultDecrease = 0.7
	// DefaultQueueTarget is how long an Interactive call joining the queue
	// of an overloaded target may expect to wait (see Options.QueueTarget):
	// a short queue uses an overloaded quota as fully as a long one.
	DefaultQueueTarget = time.Second
	// DefaultMaxTargets bounds the targets a Governor keeps state for, so
	// that calls naming ever new models cannot grow it without end: past
	// it, the target idle longest is forgotten (see evictIdle).
	DefaultMaxTargets = 1024
	// DefaultFloor is the lowest tokens-per-minute limit a target's
	// adaptation goes down to when neither a quota nor a floor is set: below
	// it, ordinary calls could no longer be admitted.
	DefaultFloor = 1000
	// DefaultDiscoverEvery is how often a discovered quota is read again
	// (see Options.Discover): quota increases are granted by AWS support
	// in hours or days, so a quarter of an hour picks one up the same
	// working session, at four List calls an hour per region, far below
	// Service Quotas' request rate limits.
	DefaultDiscoverEvery = 15 * time.Minute
	// DefaultDiscoverWait is the longest a call waits for its target's
	// first quota read: Service Quotas answers in a few hundred
	// milliseconds, and without the read a burst at start would go out
	// unlimited until Bedrock throttles it; a read slower than this is
	// not waited for (the learner governs meanwhile).
	DefaultDiscoverWait = 2 * time.Second
)

// Reads of Options.Discover.
const (
	// discoverTimeout bounds one read, which runs in the background: a
	// Service Quotas that does not answer is given up on, and asked again
	// discoverRetry later.
	discoverTimeout = 30 * time.Second
	// discoverRetry is when a read that gave no quota (an error, or none
	// listed) is tried again, instead of DiscoverEvery: a network blip at
	// start should not leave a target to the learner for a quarter of an
	// hour, and a lasting refusal then costs a read a minute per target
	// (keel's side lists each region once for all of them).
	discoverRetry = time.Minute
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
	// maxDepth bounds the nesting EstimateBody follows, so a hostile body
	// cannot exhaust the stack.
	maxDepth = 256
)
