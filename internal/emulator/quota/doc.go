// Package quota meters the emulator's traffic against Bedrock-style quotas:
// tokens per minute, and optionally requests per minute and tokens per day,
// each per model per region.
//
// Bedrock counts tokens in two steps, and so does a Meter. When a request
// starts, Admit reserves its input tokens plus its max tokens (the model's
// own maximum when the request sets none), and rejects the request with 429
// ThrottlingException when the reservation does not fit. When the request
// ends, Settle replaces the reservation with what the request really used:
// input + cache-write + output × burndown, where the burndown rate is 5 for
// the Claude models that burn output faster (Claude 3.7 Sonnet, Sonnet 4 and
// 4.5, Opus 4) and 1 otherwise. A request that used less than it reserved
// gives the difference back; one that used more (a burndown of 5 can do
// that) takes it from the window, which may then go below zero and hold
// back the next requests until it refills.
//
// # Window algorithm
//
// Each limit is a token bucket. By default (DefaultShape) a per-minute
// bucket holds the whole per-minute limit, starts full and refills
// continuously at limit/60 per second: a burst up to the full minute's quota
// is served at once, and once the quota is spent capacity comes back a
// little every second rather than all at once on a minute boundary. The
// per-day bucket holds a day's limit, starts full and refills at limit/86400
// per second.
//
// Bedrock does not publish the shape of its buckets, so a rule's Shape can
// change the per-minute ones: a capacity of less (or more) than a minute of
// quota (Burst), a bucket that starts part full or empty (StartLevel), and
// refills in steps aligned to the clock instead of continuously
// (RefillEvery). The long-run rate stays the limit per minute whatever the
// shape. A request that reserves more than a bucket's capacity is rejected
// every time, however long it waits.
//
// A bucket needs no per-request memory, which a sliding window of
// reservations would, and it lets Settle return or take tokens after the
// fact; what Settle returns never fills a bucket past its capacity.
//
// A Meter is safe for concurrent use. Each (model, region) has its own lock,
// and finding it takes no lock at all, so requests for different models or
// regions do not contend.
package quota
