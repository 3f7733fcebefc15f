// Package batch runs a JSONL file of Bedrock requests through keel's engine
// and writes one result line per record, so that nothing is lost and nothing
// is done twice, even across kill -9.
//
// Input lines are Amazon Bedrock batch-inference records
// ({"recordId": ..., "modelInput": {...}}, sent with InvokeModel) or simple
// records ({"id": ..., "prompt": ...}, sent with Converse). The whole file is
// validated before anything is sent.
//
// Concurrency is decided by a Limiter, with nothing to tune. When the
// engine has keel's quota governor (package admission; keel turns it on by
// default), Paced lets the governor set the pace: the next record starts as
// soon as the previous one's first attempt has been admitted, so the
// governor's queue holds the waiting and as many calls run as the target's
// tokens-per-minute quota has room for; every call is a Batch call, served
// behind interactive traffic. Without a governor, an AIMD limit grows while
// calls succeed and shrinks when Bedrock throttles or slows down. Records
// whose failure is retryable (throttling, 5xx, timeouts, no quota before
// the deadline) once the engine's retries are used up go back into the
// queue (a few times, with a growing wait) rather than failing; records
// that fail for good are parked in the dead-letter queue (package dlq) and
// written to the results file with their catalog code. A record whose call
// ended at an open circuit breaker is not requeued: it and the other
// records to its model wait until the breaker lets calls through (its
// probe time), without spending their requeue allowance; Stop ends the
// wait at once.
//
// A failure about the target rather than the record (no such model, no
// access to it) would fail every record: until a model has answered, at most
// a few calls go to it, and when that many records in a row fail so, the
// run stops with them left pending (ErrTargetFailing).
//
// Progress is checkpointed in a SQLite state file; Run documents the
// protocol. Running the same command again resumes; Options.Restart starts
// over. A run holds an exclusive lock on its state and results files, so a
// second run on them is refused (ErrRunning) rather than losing records.
package batch
