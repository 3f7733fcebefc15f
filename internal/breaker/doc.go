// Package breaker is keel's circuit breaker: one per target (a model in a
// region), so that a target that keeps failing is skipped at once, and the
// route's next target is tried, instead of being sent call after call.
//
// A Breaker is closed while its target is healthy. It opens when, over a
// sliding time window, at least MinCalls outcomes were recorded and the share
// of failures among them reached FailureRate. An open breaker refuses every
// call with an *OpenError (errors.Is(err, ErrOpen)) naming the target and the
// time it will next be probed. After Cooldown it turns half-open and lets at
// most Probes calls through at once; Successes successful probes close it, one
// failed probe opens it again for another Cooldown.
//
// Only outcomes that say something about the target's health count. The
// engine records Failure for catalog entries marked Unhealthy (5xx, timeouts,
// ModelNotReady, connection errors) and Ignored for a caller's mistakes
// (ValidationException, AccessDenied, ...), which count neither way.
// Throttles (ThrottlingException, a bare 429) are Responsive: the target
// answered, so they end a run of consecutive failures, but they count
// neither way in the window; a throttled half-open probe frees its slot
// without closing or reopening the breaker.
//
// Most callers want Registry.Get and then, per attempt, Allow and Done:
//
//	br := reg.Get(model, region)
//	p, err := br.Allow()
//	if err != nil {
//		// skip this target; err is an *OpenError
//	}
//	resp, err := send()
//	p.Done(outcome) // breaker.Success, Failure, Responsive or Ignored
//
// Allow and Done do not allocate.
//
// Processes that call the same targets can share their breakers' states
// through a Shared store (Options.Shared; redisbreaker keeps it in Redis):
// each still judges a closed target by its own outcomes, but one that
// opens a breaker opens it for all, Allow reads the shared state with one
// round trip, a half-open breaker lets Probes probes through across all
// processes, each under a lease that lapses if its process dies, and a
// probe's outcome closes or reopens it for all. While the store fails,
// each breaker goes on from the state it saw last, by itself. Done makes a
// round trip only for a probe or when it opens the breaker.
package breaker
