// Package retry decides whether a failed attempt is tried again on the same
// target, and how long to wait first.
//
// The decision is read from the failure's catalog entry: a transient failure
// (catalog.Backoff, such as a 5xx or ModelNotReadyException) is retried with
// exponential backoff and full jitter; a throttled attempt (catalog.Throttled)
// is retried the same way from a larger base and ceiling, because a quota needs
// time to refill; everything else (catalog.Never, catalog.Fallback,
// catalog.LongWait) is not retried on the same target. A Retry-After hint from
// the service is a floor under the jittered delay.
//
// Most callers want Policy.Decide after every failed attempt and Wait before
// the next one:
//
//	d := policy.Decide(attempt, entry, retryAfter, nil)
//	if !d.Retry {
//		return lastErr // or fall back, or dead-letter, per d.Reason and entry
//	}
//	if err := retry.Wait(ctx, clk, d.Delay, lastErr); err != nil {
//		return err // wraps lastErr: the deadline would have passed while waiting
//	}
//
// Decide does not count retries across calls; a shared budget (package
// budget) bounds how many retries all calls together may send.
package retry
