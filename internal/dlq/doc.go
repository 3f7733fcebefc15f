// Package dlq is keel's dead-letter queue: a durable place for Bedrock
// calls that ended in a terminal failure, so that nothing is lost and each
// one can be looked at, redriven or purged later.
//
// A call's failure is terminal when keel's engine has given up on it: the
// error cannot be retried (ValidationException, access errors), its retries
// or the shared retry budget were used up, every target's circuit breaker
// was open, or its remedy is a long wait (the catalog's LongWait class, such
// as the 15 minutes an AWS Marketplace agreement takes). A call the caller
// itself cancelled is not a failure and is never parked.
//
// Each Entry holds the request (operation, model, region, body), the error
// (catalog code, status, message, request id), the whole attempt history
// across every redrive, timestamps, and a not-before time for scheduled
// redrive: for a LongWait failure, the time of the failure plus the entry's
// Wait; otherwise no wait.
//
// A Store keeps entries. SQLite (OpenSQLite) is the default: one file in WAL
// mode with synchronous=FULL, so an entry whose Put has returned survives
// kill -9, and a power cut too. Memory is for tests and short-lived
// processes. Other backends implement Store and run the conformance suite in
// package dlqtest.
//
// Most callers want a Recorder (or the Record shortcut) after a failed call:
//
//	resp, _, err := eng.Do(ctx, call) // eng: an *engine.Engine, such as keelx.Engine(k)
//	if err != nil {
//		e, derr := dlq.Record(ctx, store, call, err) // e is nil when err was not terminal
//		...
//	}
//
// Redrive sends entries again through keel's engine (any Sender, such as
// the *engine.Engine keelx.Engine returns for a *keel.Keel): a reply is saved with RedriveOptions.Save before
// its entry is removed, and an entry that fails again stays, its attempt
// history extended. Entries whose not-before time has not come are left
// alone unless forced. RedriveOptions.Lock keeps two redrives of one store
// from sending the same entries twice.
//
// Request bodies can hold sensitive data (prompts, documents, personal
// data); a Recorder with Redact set replaces the text of messages and system
// prompts with "[redacted N chars]" before storing, at the price of not
// being able to redrive the entry.
package dlq
