// Package cache is keel's response cache: the key a request is stored
// under, the rule that says which requests may be cached, the entries
// (a reply's status, the headers that matter and its body), the stores
// that keep them (memory, SQLite, Redis: one Store interface, one
// conformance suite in cachetest), and the coalescing of identical
// requests in flight (Group).
//
// The key is a SHA-256 of the operation family (Converse, InvokeModel,
// and their streams, which are stored as the events their reader got), the
// model, the service tier, the caller when callers do not share the cache,
// the request headers that change the reply, and a canonical form of the
// JSON body: keys sorted, no insignificant whitespace, numbers kept as
// written, strings with one escaping. Two SDKs that serialise one request
// differently get one key; a body that is not JSON has none, and is never
// cached.
//
// Mode decides which requests are cached: ModeDeterministic only those
// that ask for deterministic output (temperature 0; see Deterministic and
// docs/cache.md), ModeAll every one. A Cache never returns a wrong reply
// for a failure of its store: a store that errs, an entry that does not
// decode, a corrupt SQLite file all read as a miss, logged once.
//
// The engine (internal/engine/cache.go) is the one user: it looks a call up
// before its route, coalesces the misses, and stores complete successful
// replies only.
package cache
