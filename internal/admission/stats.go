package admission

import (
	"math"
	"time"
)

func (l *limiter) stats() Stats {
	now := l.g.clk.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.load(now)
	offered, _ := l.offeredRate(now)
	s := Stats{Target: l.target, Model: l.model, Floor: int64(l.p.floor), Learning: l.p.learn,
		RequestsPerMinute: int64(l.view.RequestsPerMinute), InFlight: l.inflight, InFlightTokens: int64(l.inflightHold),
		ReservedPerMinute: int64(l.reserved.Sum(now)), SettledPerMinute: int64(l.settled.Sum(now)),
		OfferedPerMinute: int64(offered),
		InputRatio:       l.ratio, Settled: l.n.settled, Cancelled: l.n.cancelled, Throttles: l.n.throttles,
		Decreases: l.n.decreases, Resyncs: l.n.resyncs, Noise: l.n.noise, TooLarge: l.n.tooLarge, Classes: l.n.class,
		ReplyTime: time.Duration(l.slowReply(now) * float64(time.Second)), LargeHold: int64(l.bigHold.v)}
	if !l.view.unlimited() {
		s.Limit = int64(math.Round(l.view.TokensPerMinute))
		s.Source = l.limitSource()
		s.Available = int64(math.Floor(l.view.Tokens))
	}
	if !math.IsInf(l.p.ceil, 1) {
		s.Ceiling = int64(l.p.ceil)
	}
	if l.pausedUntil.After(now) {
		s.PausedFor = l.pausedUntil.Sub(now)
	}
	for c := range l.queues {
		s.Classes[c].Queued = l.queues[c].len()
		s.Classes[c].QueuedTokens = int64(l.queues[c].tokens)
	}
	return s
}

// Stats are one target's figures.
type Stats struct {
	Target Target
	// Model holds the facts in use for the target's model.
	Model Model
	// Limit is the tokens-per-minute limit in force; zero while it is
	// unknown (no throttle seen yet).
	Limit int64
	// Source is where Limit comes from: SourceConfigured (Options),
	// SourceDiscovered (Options.Discover or SetQuota) or SourceLearned
	// (throttles, or a first guess that may grow); empty while Limit is
	// unknown.
	Source string
	// Floor and Ceiling bound the limit; Ceiling is zero when there is none.
	Floor, Ceiling int64
	// Learning reports that the limit may grow past its first value.
	Learning bool
	// Available is what the token bucket holds now; negative while a call
	// that used more than it held is paid back.
	Available int64
	// RequestsPerMinute is the request limit (zero: none).
	RequestsPerMinute int64
	// PausedFor is what is left of the pause after a throttle.
	PausedFor time.Duration
	// InFlight counts admitted Tickets not yet ended; InFlightTokens sums
	// what they hold.
	InFlight       int
	InFlightTokens int64
	// ReservedPerMinute sums the tokens granted over the last minute;
	// SettledPerMinute sums what the calls that ended in it really used.
	ReservedPerMinute int64
	SettledPerMinute  int64
	// OfferedPerMinute is what the calls that asked for admission over the
	// last minute would settle (their holds × the tokens the last minute's
	// calls settled per token they held), per minute; above Limit
	// (times this process's share, with a Store that is a Sharer), the
	// target is overloaded (see Options.QueueTarget).
	OfferedPerMinute int64
	// InputRatio is the learned ratio of real to estimated input tokens.
	InputRatio float64
	// Settled, Cancelled and Throttles count Tickets ended each way;
	// Decreases counts the confirmed throttles that set or lowered the
	// limit, Resyncs those that only emptied the bucket.
	Settled, Cancelled, Throttles, Decreases, Resyncs int64
	// Noise counts throttles taken for noise rather than a quota signal:
	// calls granted after them got through.
	Noise int64
	// ReplyTime is the time the target's replies take (the 95th percentile
	// of its attempts, admission to settlement, or the age of its calls in
	// flight while they show it is more) that Admit keeps before a call's
	// deadline; LargeHold what its large calls hold (the 99th
	// percentile of the calls' holds), the size a call entering the queue is
	// judged by. Zero until measured.
	ReplyTime time.Duration
	LargeHold int64
	// TooLarge counts calls refused with ErrTooLarge.
	TooLarge int64
	// Classes holds the queue figures per Class.
	Classes [2]ClassStats
}

// ClassStats are one class's queue figures for a target.
type ClassStats struct {
	// Queued and QueuedTokens are the calls waiting now and what they would hold.
	Queued       int
	QueuedTokens int64
	// Admitted counts granted calls; Waited those of them that had to wait.
	Admitted, Waited int64
	// Expired counts calls refused with ErrWouldExceedDeadline, Shed those
	// refused with ErrOverloaded; Cancelled those whose context was
	// cancelled while they waited.
	Expired, Shed, Cancelled int64
	// WaitTotal sums the waits of granted calls; WaitMax is the longest.
	WaitTotal, WaitMax time.Duration
}
