// Package admission is keel's quota governor: it stands in front of every
// attempt to a target (a model in a region) and lets it go only when
// Bedrock's tokens-per-minute quota has room for it, so that nearly all of
// the quota is used and Bedrock almost never throttles.
//
// Bedrock counts tokens in two steps, and so does a Governor. When a request
// starts, Bedrock reserves its input tokens plus its max tokens (the model's
// maximum output when the request sets none). When it ends, the reservation
// is replaced by input + cache-write input + output × burndown, where the
// burndown is 5 for Claude 3.7 Sonnet, Sonnet 4 and 4.5 and Opus 4 (and its
// point releases), 1 otherwise. Admit holds exactly what Bedrock will reserve,
// with the input estimated from the body (EstimateBody) and corrected by what
// the target's past usage taught; Ticket.Settle replaces the hold with what
// the response reports, giving back or taking the difference, as Bedrock
// does. The Governor's bucket (capacity: the quota, refilled at quota/60 a
// second) thus follows Bedrock's, a little behind when giving back and a
// little ahead when taking, so what fits in it fits in Bedrock's.
//
// A call that does not fit waits in a queue: first come, first served within
// a class, Interactive ahead of Batch, with one Batch grant after every
// BatchEvery Interactive grants while Batch calls wait, so neither a large
// call nor the Batch class starves. A call that can never fit, or whose wait
// would cross its deadline, fails at once with ErrTooLarge or
// ErrWouldExceedDeadline.
//
// The limit adapts (learn.go, first.go, suspect.go, debt.go, start.go).
// Until an unknown quota's first confirmed throttle, Batch calls open in a
// window that doubles every startRound. A throttle is a quota signal only
// when a call granted after it is throttled too (Bedrock also throttles a
// few percent of calls whatever their pace); a confirmed throttle empties the
// bucket, and repeated ones pause the target for a doubling, jittered
// cool-down. The limit itself comes from what Bedrock's bucket gave: an
// unknown quota's first limit from what the target took before the first
// confirmed throttle, doubled by slow start until the next; then what the
// bucket gave over a minute in which the target wanted more; successes grow
// it along the CUBIC curve of the AWS SDK's adaptive retry mode, counted in
// tokens. A known quota is the ceiling of this. A bucket that holds less
// than a minute of quota is learned from the bursts it refuses.
//
// The engine's use, per attempt:
//
//	est, _ := admission.EstimateBody(body) // once per call; on error it is still a cautious estimate
//	tk, err := gov.Admit(ctx, target, est, admission.Interactive)
//	if err != nil {
//		// ErrTooLarge or ErrWouldExceedDeadline: try the route's next target,
//		// or fail the call with this error.
//	}
//	resp, err := send()
//	switch {
//	case throttled:
//		tk.Throttled()
//	case usage known:
//		tk.Settle(usage) // at the end of the response or stream
//	default:
//		tk.Cancel() // not sent, or failed without being charged
//	}
//
// # The parts
//
// The Governor (governor.go, with options.go, ticket.go, stats.go and
// errors.go for its API) keeps one limiter per target (limiter.go: its state
// and the Ticket's ends). A limiter's parts, each in its own file:
//
//   - the buckets: the token and request buckets, the state Governors in
//     several processes sharing one quota would share. A limiter reads and
//     changes them only through its Governor's Store (store.go, with its
//     contract; view.go holds the calls), keyed by the target: levels,
//     limit, burst and peak. MemStore (memstore.go), a Governor's own, keeps
//     them in memory; bucket.go has the arithmetic (refill, whether and
//     when a call fits, taking, giving back, draining), and package
//     storetest is the conformance suite every Store must pass. Each
//     granted call is held under a lease (lease.go) that the Store
//     expires, giving back what the call would have, if its process dies
//     before ending it. Governors that share a Store (Options.Store;
//     package redisstore keeps the buckets in Redis) share what they learn
//     (shared.go): a limit one sets is the others' learners' own, and a
//     throttle confirmed by several in one episode empties the bucket
//     once.
//   - the limit learner (learn.go, first.go, suspect.go, debt.go,
//     start.go): confirmed throttles, the first limit (first.go) and slow
//     start, the minute's rate, the CUBIC curve, bursts, the pause after
//     repeated throttles, probes, and what the bucket may owe after
//     replies that cost more than they held.
//   - the estimates (reply.go): the reply-time and hold quantiles, a queued
//     call's deadline bound, the input correction; estimate.go and
//     estimate_scan.go estimate a request body's tokens.
//   - the queue and the admission decision: admit.go (Admit's wait and
//     refusals), queue.go (the two classes' queues, dispatch, the wait
//     estimate), overload.go (judging entries, overload shedding).
//   - flight.go: the calls in flight (grant times and holds), and the
//     one-minute windows (internal/window rings).
//   - discover.go: quotas read from outside (Options.Discover: keel's
//     Service Quotas discovery; SetQuota), and where each limit comes from
//     (Stats.Source).
//
// Every constant that steers the Governor is in tunables.go, with its
// reason. docs/governor.md gives the arithmetic, the queueing rules, the
// adaptation, the configuration and the measurements behind the constants
// in full.
package admission
