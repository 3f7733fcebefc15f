// Package bench measures how well Bedrock clients use a tokens-per-minute
// quota (`keel bench quota`), what keel does in a region outage
// (`keel bench outage`), how well keel learns a quota it was not told
// (`keel bench learn`), and what keel's gateway costs (`keel bench
// gateway`).
//
// Run starts one emulator per contender (keel, the SDK's standard retryer,
// the SDK's adaptive retry mode), each with its own quota meter, and offers
// every contender the same seeded, open-loop workload at the same moments:
// a Poisson stream of Converse calls with a realistic mix of prompt sizes and
// max tokens, worth Load × the quota in settled tokens, each call with a
// deadline. Everything runs in real time, so backoffs, the quota's refill
// and the emulated model's latency share one clock. What each contender got
// done is read from its emulator's quota meter, not from the client.
//
// With Config.Replicas, the contenders keel-redis and keel-local each run
// several keel instances against one emulator, calls dealt to them in
// turn; keel-redis's share state through a Redis (a redis-server Run
// starts, or one named by URL), which Config.RedisOutage kills for a while
// in the middle of the arrivals.
//
// Most callers want Run with a Config; Result.WriteTable and JSON print it.
// See docs/bench.md for the workload, the measures and how fairness is kept.
//
// RunOutage, `keel bench outage`, shows what keel does when a region fails:
// it plays a scenario (region-outage.yaml) on one emulator per contender
// and sends an open-loop Poisson stream of Converse calls through keel
// with a route from us-east-1 to us-west-2, and sums each phase of the
// scenario's outage windows: where calls went, how long they took, when
// the breaker skipped the failing region, and keel's attempt timeouts.
//
// RunLearn, `keel bench learn`, runs the batch runner with keel against
// in-process emulators in the cases of issue 16: random throttles that are
// not a quota (noise), a run killed and resumed (resume), a small quota
// (tight), and quota buckets of other shapes (shapes), and reports each
// measure beside its goal.
//
// RunGateway, `keel bench gateway`, sends a closed loop of calls to an
// emulator with no latency directly, through a bare re-signing reverse
// proxy, and through keel's gateway (internal/gateway), and reports each
// one's calls per second, latency percentiles and allocations per call.
package bench
