package admission

import (
	"time"
)

// judged returns what a call entering the queue is judged by, its hold and
// its bound. When calls of its class already wait (the target is
// overloaded; an Interactive call does not queue behind Batch calls), it is
// judged as the target's large calls would be: by their hold (the 99th
// percentile of recent holds, once minJudged calls have shown it) if larger
// than its own, and by the reply time of the target's slow replies (its
// 95th percentile) even if its max tokens would cut its reply shorter. So
// whether a call gets into the queue does not depend on its size, and the
// queue does not fill with small calls that leave no time for a large one.
// Once queued, a call is judged by its own hold and bound. A token bucket
// that is never full loses nothing to a shorter queue. A call is judged by its own size with Options.SmallFirst, and without a
// context deadline. l.mu must be held, and the call not queued yet.
func (l *limiter) judged(class Class, hold float64, b bound, now time.Time) (float64, bound) {
	if l.g.opts.SmallFirst || l.bigHold.n < minJudged || l.queues[class].len() == 0 || !b.fromCtx || l.view.unlimited() {
		return hold, b
	}
	if r := time.Duration(l.slowReply(now) * float64(time.Second)); r > b.reply {
		b.reply, b.by, b.guess = r, b.ctx.Add(-r), false
	}
	return max(hold, l.bigHold.v), b
}

// overloaded reports whether a call of class joining the queue at now (its
// first admission when by is zero) is held to Options.QueueTarget: it is
// Interactive, Interactive calls already wait, and the calls that asked for
// admission over the last overloadSpan would settle more per minute than
// this process's part of the limit (the limit × share). It also returns
// that offered load ÷ that part. Once calls ask for more than the quota,
// the bucket is used as fully with a short queue as with a long one, and a
// long one only delays every reply. Calls that asked for less than a
// minute of quota over the last minute are a burst the bucket (a minute of
// quota) absorbs: they wait their turn. What a call asks for is its hold ×
// the tokens settled per token held (see offeredRate): the refunds of
// large reservations come back.
//
// In a target's first slot (5 s), the rate is read over too short a time to
// tell such a burst from overload, and calls queue; but not once a throttle
// has emptied the bucket (a process started on a spent quota): then no
// bucket absorbs a burst, and calls asked for beyond the refill wait for it.
// l.mu must be held, and the call not queued yet.
func (l *limiter) overloaded(class Class, by, now time.Time) (float64, bool) {
	if class != Interactive || !by.IsZero() || l.queues[class].len() == 0 || l.view.unlimited() {
		return 0, false
	}
	rate, span := l.offeredRate(now)
	if span < slotLen && l.lastThrott.IsZero() {
		return 0, false // too soon to tell a burst the bucket absorbs from overload
	}
	ratio := rate / (l.view.TokensPerMinute * l.share())
	return ratio, ratio > 1
}

// share returns the part of the target's limit this process's calls can
// expect while every process sharing its buckets asks for more than its
// own part: the Store's Share when it is a Sharer holding the whole limit
// (a shared one, counting the processes), else 1. Buckets that hold a
// part already (a Failover's local ones while Redis fails) are this
// process's alone: 1. Each process sees only the calls sent to it, so
// without this N replicas behind a load balancer that spreads N times the
// quota would each read their own load as the quota, never overloaded,
// and let their queues grow until the callers gave up. l.mu must be held.
func (l *limiter) share() float64 {
	sh, ok := l.g.store.(Sharer)
	if !ok || l.view.Share != 0 {
		return 1
	}
	if s := sh.Share(); s > 0 && s < 1 {
		return s
	}
	return 1
}

// offeredRate returns what the calls that asked for admission over the last
// overloadSpan (or since the target was first seen) would settle, per
// minute, and the time it was measured over: what they would hold, at the
// ratio of settled to held tokens of the last minute's calls (tokens, not
// calls: a 64,000-token reservation that settles 10,000 weighs as much as
// it holds, where the mean of the calls' ratios would count it as a small
// call's near 1, and overstate the load).
func (l *limiter) offeredRate(now time.Time) (float64, time.Duration) {
	sum, span := l.offered.Recent(now, overloadSpan)
	span = min(span, now.Sub(l.born))
	if span <= 0 {
		return 0, 0
	}
	return sum * l.settledPerHeld(now) / span.Minutes(), span
}

// settledPerHeld returns the ratio of what the target's calls settled over
// the last minute to what they held: the calls granted in it and ended, as
// the calls still in flight are left out. Before any has ended, the
// running mean of the calls' ratios.
func (l *limiter) settledPerHeld(now time.Time) float64 {
	settled := l.settled.Sum(now)
	held := l.reserved.Sum(now) - l.inflightHold
	if settled <= 0 || held <= 0 {
		return l.settleFrac
	}
	return settled / held
}
