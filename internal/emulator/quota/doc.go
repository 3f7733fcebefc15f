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
// Each limit is a continuous token bucket: its capacity is the per-minute
// limit and it refills at limit/60 per second (the daily limit refills at
// limit/86400 per second). A bucket starts full. This is what a client sees
// from Bedrock: a burst up to the full minute's quota is served at once; once
// the quota is spent, capacity comes back a little every second rather than
// all at once on a minute boundary, so a client that backs off for a few
// seconds gets a few seconds' worth of tokens back, and a request that
// reserves more than the whole per-minute quota is rejected every time, however
// long it waits. A bucket needs no per-request memory, which a sliding window of
// reservations would, and it lets Settle return or take tokens after the fact.
//
// A Meter is safe for concurrent use. Each (model, region) has its own lock,
// and finding it takes no lock at all, so requests for different models or
// regions do not contend.
package quota
