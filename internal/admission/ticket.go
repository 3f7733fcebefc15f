package admission

import (
	"time"
)

// Usage is what a finished call used, as Bedrock reports it (Converse
// "usage", Anthropic "usage", or the stream's metadata event).
type Usage struct {
	// InputTokens are the input tokens not read from or written to the
	// prompt cache. Zero, with both cache fields zero, means the input is
	// not known (a stream cut before its usage arrived): the Governor then
	// charges its own estimate and learns nothing from it.
	InputTokens           int
	OutputTokens          int
	CacheReadInputTokens  int
	CacheWriteInputTokens int
}

// Ticket holds one admitted call's share of its target's quota. End it with
// exactly one of Settle, Cancel or Throttled; after that its methods do
// nothing. A Ticket is a small value: keep it in one variable and do not
// end copies of it. The zero Ticket (from a nil or non-governing Governor)
// holds nothing, and its methods do nothing.
type Ticket struct {
	l      *limiter
	gen    uint64    // the limiter's throttle generation when admitted
	seq    uint64    // its place in the limiter's flight
	at     time.Time // when it was granted
	taken  float64   // the limiter's taken before it was granted
	debits float64   // the limiter's debits when it was granted
	probe  bool      // granted as a probe, without room in the bucket (see limiter.probe)
	owed   float64   // a probe's: what the bucket lacked for its hold when it was granted (see limiter.settle)
	hold   float64
	input  float64 // corrected input estimate (part of hold)
	raw    int     // the caller's raw input estimate
	max    int     // max tokens held (part of hold)
	class  Class
	waited time.Duration
	lease  Lease // its lease in the Store
}

// Tokens returns the tokens the Ticket holds: its input estimate plus its
// max tokens.
func (t *Ticket) Tokens() int { return int(t.hold) }

// InputTokens returns the input estimate the Ticket holds, after the
// target's correction.
func (t *Ticket) InputTokens() int { return int(t.input) }

// Waited returns how long Admit waited for the Ticket.
func (t *Ticket) Waited() time.Duration { return t.waited }

// Governed reports whether the Ticket holds a share of a quota, that is,
// whether it came from a Governor that governs its target and has not been
// ended yet. The zero Ticket is not governed.
func (t *Ticket) Governed() bool { return t.l != nil }

// Settle ends the Ticket with what the call really used: it replaces the
// hold with input + cache-write input + output × the model's burndown
// (cache reads are free), giving back what it held beyond that, or taking
// what it used beyond it. It also teaches the Governor the target's ratio of
// real to estimated input. Negative counts are taken as zero.
func (t *Ticket) Settle(u Usage) {
	if l := t.l; l != nil {
		t.l = nil
		l.settle(t, u)
	}
}

// Cancel ends the Ticket of a call that was not sent, or that failed without
// Bedrock charging it: everything it held goes back, its request included.
func (t *Ticket) Cancel() {
	if l := t.l; l != nil {
		t.l = nil
		l.cancel(t)
	}
}

// Throttled ends the Ticket of a call Bedrock throttled: everything it held
// goes back (Bedrock reserved nothing). A throttle confirmed by one of a
// call granted after it empties the target's bucket and may pause it and
// set its limit (see the package doc); throttles of calls granted before the
// last confirmed one were sent before the Governor knew, and are counted
// but change nothing.
func (t *Ticket) Throttled() {
	if l := t.l; l != nil {
		t.l = nil
		l.throttle(t)
	}
}
