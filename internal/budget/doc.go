// Package budget bounds the retries that all calls together may send, so that
// a total outage does not triple the load on an upstream that is already
// failing.
//
// A Budget allows retries up to a fixed share (Ratio, 10% by default) of the
// first attempts seen over a sliding window, plus a small minimum rate so a
// quiet client can still retry now and then. It is the retry-budget design of
// Finagle and of gRPC's retry throttling, reduced to two counters per
// window slot; the AWS SDK's retry quota (a token bucket refilled only by
// successes) is compared in docs/policies.md.
//
// The engine calls Request once per call, before its first attempt, and
// TryAcquire before every retry; a false answer means "do not retry, return
// the last error". Neither call blocks or allocates:
//
//	b.Request()
//	for attempt := 1; ; attempt++ {
//		err := send()
//		d := policy.Decide(attempt, classify(err), retryAfter, nil)
//		if !d.Retry || !b.TryAcquire() {
//			return err
//		}
//		...
//	}
//
// Under a total outage with N calls over a time T, the retries sent are at
// most Ratio×N + MinPerSecond×(T+Window) (see Budget for the argument), so
// the attempts are at most about 1.1×N with the defaults.
//
// Processes that call the same upstream can share one budget through a
// Shared store (Options.Shared; redisbudget keeps it in Redis): each
// Request and TryAcquire is then one round trip, and a retry is granted
// against the first attempts and retries of all of them. While the store
// fails, each process decides by its own counts with its share of the
// MinPerSecond reserve. Without Shared, Request and TryAcquire do not
// allocate.
package budget
