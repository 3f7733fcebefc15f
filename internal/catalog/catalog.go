// Package catalog is keel's table of every error a Bedrock user can meet: the
// service's modeled exceptions, the errors AWS returns before the service runs,
// the troubleshooting guide's codes, and transport and stream failures.
//
// Every decision keel makes about a failure (retry, slow down, fall back, wait,
// give up, dead-letter) is read from an Entry, never from string matching
// scattered through the code. The table is read-only after package init and is
// safe for concurrent use.
package catalog

import "time"

// Category groups entries by what went wrong.
type Category string

// Categories.
const (
	Auth          Category = "auth"           // the request's identity or signature was rejected
	Access        Category = "access"         // identity is fine, but not allowed or not subscribed
	Quota         Category = "quota"          // a rate or service quota was hit
	Validation    Category = "validation"     // the request itself is malformed
	NotFound      Category = "not-found"      // the model, profile or resource does not exist here
	Model         Category = "model"          // the model failed, timed out, or is not ready
	Server        Category = "server"         // Bedrock itself failed
	Network       Category = "network"        // no usable HTTP exchange happened
	Stream        Category = "stream"         // an event stream broke, was corrupt or stalled
	Client        Category = "client"         // the caller cancelled or ran out of time
	ContentFilter Category = "content-filter" // a reply came back, but blocked by a filter or guardrail
	Unknown       Category = "unknown"        // keel could not tell what went wrong
)

// RetryClass says whether and how a failure may be retried.
type RetryClass string

// Retry classes.
const (
	// Never: retrying the same request cannot succeed; fix the request or the account.
	Never RetryClass = "never"
	// Backoff: a transient failure; retry with exponential backoff and jitter.
	Backoff RetryClass = "backoff"
	// Throttled: a quota was hit; slow down (longer backoff, fewer tokens in flight), then retry.
	Throttled RetryClass = "throttled"
	// LongWait: only worth retrying after a long wait (Entry.Wait), such as the
	// 15 minutes an AWS Marketplace agreement takes; park the request, e.g. in the dead-letter queue.
	LongWait RetryClass = "long-wait"
	// Fallback: this target cannot serve the request, but another model or region may.
	Fallback RetryClass = "fallback"
)

// Entry is one catalog row. Entries are shared; callers must not modify them.
type Entry struct {
	// Code is the canonical error code, as the service spells it
	// (ThrottlingException), or a keel name for failures that have none
	// (ConnectionReset, StreamTruncated).
	Code string
	// Aliases are other spellings that mean the same failure: the
	// troubleshooting guide's short names, event-stream lowerCamelCase, Go
	// error names. Lookup is case-insensitive, so case variants need no alias.
	Aliases []string
	// Status is the HTTP status the failure arrives with; for a failure inside
	// an event stream it is the true status of the exception, never a blanket
	// 400. Zero means no HTTP response exists (connection refused, DNS, ...).
	Status int
	// Category groups the failure.
	Category Category
	// Retry says whether and how to retry.
	Retry RetryClass
	// Wait is the minimum wait before a retry can succeed, for LongWait entries.
	Wait time.Duration
	// Unhealthy reports that the failure says the target (model in a region)
	// is unhealthy, so it counts against the target's circuit breaker: 5xx,
	// timeouts, ModelNotReady, connection errors. A caller's mistakes never do.
	Unhealthy bool
	// FallbackOK reports that moving to the next target of a route may help
	// once retries on this target are used up (or at once, for RetryClass Fallback).
	FallbackOK bool
	// Summary is one line saying what happened.
	Summary string
	// Cause explains why it happens.
	Cause string
	// Fix lists concrete steps, most likely first.
	Fix []string
	// Source says where the code comes from: "bedrock-runtime" (modeled
	// exception), "aws-auth" (returned before the service runs), "guide"
	// (Bedrock troubleshooting guide), "transport", "stream", "sdk" (raised
	// by aws-sdk-go-v2 before a request is sent), "keel" (keel's own name for
	// an outcome or a fallback).
	Source string

	// DefaultMessage is the message the service typically sends with this
	// error; the emulator sends it. Empty for failures that have no service
	// message (connection errors, stalls).
	DefaultMessage string
	// Refines names the canonical code this failure arrives under when it
	// has no code of its own on the wire: the Anthropic use-case form error
	// arrives as a ResourceNotFoundException, Marketplace agreement errors
	// as an AccessDeniedException. The classifier tells them apart by Hints.
	Refines string
	// Hints are lower-case fragments of an error message or pasted error
	// text that identify this failure: "connection refused", "model use case
	// details have not been submitted". For an entry with Refines, a message
	// under the refined code that contains a hint is classified as this entry.
	Hints []string
	// Streamable reports that the exception can arrive inside an event
	// stream (ConverseStream, InvokeModelWithResponseStream) as an exception
	// frame whose :exception-type is StreamName.
	Streamable bool

	// Filled in by the package's init for table entries; methods fall back
	// to computing them for entries built elsewhere.
	wire, stream string
}

// Retryable reports whether the same request may be sent again after a delay.
func (e *Entry) Retryable() bool {
	return e.Retry == Backoff || e.Retry == Throttled
}

// WireCode returns the code as the service sends it in X-Amzn-ErrorType and
// the JSON body's __type: Code for AWS codes, the refined code for entries
// that arrive under another code (FTUFormNotFilled arrives as
// ResourceNotFoundException), and "" for failures keel names itself
// (connection errors, stream stalls, content filters, fallbacks).
func (e *Entry) WireCode() string {
	if e.wire != "" {
		return e.wire
	}
	return wireCode(e)
}

// StreamName returns the lowerCamelCase form of WireCode, as an event stream
// carries it in :exception-type ("throttlingException"), or "" when the
// entry has no wire code.
func (e *Entry) StreamName() string {
	if e.stream != "" {
		return e.stream
	}
	return lowerFirst(e.WireCode())
}

// Advice says in words whether and how to retry, e.g. "yes — slow down:
// back off longer and send fewer tokens".
func (e *Entry) Advice() string {
	var s string
	switch e.Retry {
	case Never:
		s = "no — retrying the same request cannot succeed; fix the request, the account or the setup"
	case Backoff:
		s = "yes — transient: back off exponentially with jitter, then retry"
	case Throttled:
		s = "yes — slow down: back off longer and send fewer tokens"
	case LongWait:
		s = "later — only after a long wait (" + e.Wait.String() + "); park the request, e.g. in the dead-letter queue"
	case Fallback:
		s = "not here — this target cannot serve it; send it to another model or region"
	default:
		s = "unknown retry class " + string(e.Retry)
	}
	if e.FallbackOK && e.Retry != Fallback {
		s += "; another model or region may serve it"
	}
	return s
}

// A Kind is an error value that stands for every failure whose catalog
// entry it matches: errors.Is(err, kind) holds when err's chain holds an
// error that reports that entry (keel's failures implement Is with
// Matches). Its zero value matches nothing.
type Kind struct {
	msg   string
	match func(*Entry) bool
}

// NewKind returns a Kind whose Error is msg and that matches the entries
// match accepts.
func NewKind(msg string, match func(*Entry) bool) *Kind { return &Kind{msg: msg, match: match} }

// KindOf returns a Kind that matches the entry of code, under any spelling
// Lookup accepts. It panics on an unknown code: a mistake of the program.
func KindOf(msg, code string) *Kind {
	want := Must(code)
	return NewKind(msg, func(e *Entry) bool { return e.Code == want.Code })
}

func (k *Kind) Error() string { return k.msg }

// Matches reports whether e is of the kind.
func (k *Kind) Matches(e *Entry) bool { return k != nil && k.match != nil && e != nil && k.match(e) }
