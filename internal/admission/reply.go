package admission

import (
	"context"
	"math"
	"slices"
	"time"
)

// quantile is a running estimate of the q-quantile of a series of positive
// values. Its first warmValues values are kept and it is their exact
// (nearest-rank) quantile: for q = 0.95, the largest value until the
// twentieth, then the second largest. After that it moves one step towards
// each value: up by a factor 1+step×q when the value is above it, down by
// 1−step×(1−q) otherwise, so that it settles where a share 1−q of the
// values lie above it. Keeping the first values lets it reach the slow
// replies of a target's first calls at once (docs/governor.md, Tuning).
type quantile struct {
	q    float64
	v    float64 // the estimate; 0 before the first value
	n    int
	warm [warmValues]float64
}

func newQuantile(q float64) quantile { return quantile{q: q} }

func (e *quantile) add(x float64) {
	switch {
	case x <= 0 || math.IsNaN(x) || math.IsInf(x, 0):
	case e.n < warmValues:
		e.warm[e.n] = x
		e.n++
		vals := e.warm[:e.n]
		slices.Sort(vals)
		e.v = vals[max(int(math.Ceil(e.q*float64(e.n))), 1)-1]
	case x > e.v:
		e.v *= 1 + trackStep*e.q
	default:
		e.v *= 1 - trackStep*(1-e.q)
	}
}

// size returns the corrected input estimate, the max tokens and the hold of
// a call arriving for admission, and counts its hold in the estimate of the
// target's large calls (see judged). l.mu must be held.
func (l *limiter) size(est Estimate) (input float64, maxTok int, hold float64) {
	input = math.Ceil(float64(est.InputTokens) * (l.ratio + l.dev))
	maxTok = est.MaxTokens
	if maxTok == 0 {
		maxTok = l.model.MaxOutputTokens
	}
	hold = input + float64(maxTok)
	l.bigHold.add(hold)
	return input, maxTok, hold
}

// bound is when a queued call must be granted by to be of use.
type bound struct {
	by      time.Time     // the earliest of the three below; zero: none
	ctx     time.Time     // the context's deadline; zero: none
	reply   time.Duration // the reply time subtracted from ctx's deadline
	fromCtx bool          // by is ctx's deadline less reply
	guess   bool          // reply is blindGuess's: no reply has come back yet
}

// replyTime returns how long the reply of a call with max tokens maxTok may
// take at now: the slow replies' time (see slowReply), or less when its max
// tokens cut the reply short of that (its quick replies' time plus maxTok at
// the slow replies' pace per token). Zero before the target's first call.
func (l *limiter) replyTime(maxTok int, now time.Time) time.Duration {
	r := l.slowReply(now)
	if l.perTok.v > 0 {
		r = min(r, l.quick.v+float64(maxTok)*l.perTok.v)
	}
	return time.Duration(r * float64(time.Second))
}

// slowReply returns how long the target's slow replies take, in seconds:
// the 95th percentile of its replies' times, or the age of the calls in
// flight when more than one in twenty of them (at least one) is older than
// that. Replies that end first are the quick ones, so until the slow ones
// of the first calls have ended the percentile alone is too low.
// Until 20 replies have been seen, a call in flight counts for twice its
// age (it is as likely past halfway through its reply as not); after, the
// calls in flight may at most double the percentile, so that one long call
// among a few cannot refuse every queued call. (The calls in flight are
// length-biased, long ones staying longer, so once the percentile has seen
// the slow replies, far fewer than one in twenty of them is older than it:
// the percentile rules; and one hung call among twenty does not move the
// estimate.)
func (l *limiter) slowReply(now time.Time) float64 {
	k := 1 + int(float64(l.inflight)*(1-replyQuantile))
	at, ok := l.flight.oldest(k, now)
	if !ok {
		return l.reply.v
	}
	age := now.Sub(at).Seconds()
	if l.reply.n < warmValues {
		return max(l.reply.v, youngFlightWeight*age)
	}
	return max(l.reply.v, min(age, maxFlightStretch*l.reply.v))
}

// bounds returns when a call with max tokens maxTok that began waiting at
// start must be granted by: the earliest of its context's deadline less the
// time its reply may take (a call granted later would most likely not be
// answered in time), start+MaxWait, and by (zero: none). Until the target's
// first reply has come back, the reply may take half the time from start to
// the deadline, or longer if the calls in flight are older (see blindGuess).
func (l *limiter) bounds(ctx context.Context, start, now, by time.Time, maxTok int) bound {
	var b bound
	if d, ok := ctx.Deadline(); ok {
		b.reply = l.replyTime(maxTok, now)
		if l.reply.n == 0 {
			if g := blindGuess(start, d); g > b.reply {
				b.reply, b.guess = g, true
			}
		}
		b.ctx, b.by, b.fromCtx = d, d.Add(-b.reply), true
	}
	if m := l.g.opts.MaxWait; m > 0 {
		if t := start.Add(m); b.by.IsZero() || t.Before(b.by) {
			b.by, b.fromCtx = t, false
		}
	}
	if !by.IsZero() && (b.by.IsZero() || by.Before(b.by)) {
		b.by, b.fromCtx = by, false
	}
	return b
}

// blindGuess is the reply time a call that began waiting at start with
// deadline d keeps before it while no reply has come back from the target
// (a new target, or one whose first calls were all throttled): half its
// time. Kept to half its time, a call is refused at once when the queue is
// too long for a reply of that length, rather than waiting for the first
// replies to show how long replies take, and the calls behind it move up.
func blindGuess(start, d time.Time) time.Duration { return max(d.Sub(start)/2, 0) }

// bound returns the queued w's bound at now.
func (l *limiter) bound(w *waiter, now time.Time) bound {
	return l.bounds(w.ctx, w.since, now, w.by, w.maxTok)
}

// learnReply adds the reply time of t's call, which settled at now with out
// output tokens, to the reply-time estimates. l.mu must be held.
func (l *limiter) learnReply(t *Ticket, now time.Time, out int) {
	if !t.at.IsZero() {
		d := now.Sub(t.at).Seconds()
		l.reply.add(d)
		l.quick.add(d)
		if out >= minPerTok && d > l.quick.v {
			l.perTok.add((d - l.quick.v) / float64(out))
		}
	}
}

// learnInput corrects the input estimate with t's call, which settled cost
// tokens and reported input tokens of input (known: it reported any): the
// EWMAs of real/estimated input and of its mean absolute deviation, and of
// settled/held tokens. l.mu must be held.
func (l *limiter) learnInput(t *Ticket, known bool, input int, cost float64) {
	if known && t.raw > 0 {
		s := min(max(float64(input)/float64(t.raw), minSample), maxSample)
		l.nRatio++
		a := max(alpha, 1/float64(l.nRatio))
		l.dev += a * (math.Abs(s-l.ratio) - l.dev)
		l.ratio += a * (s - l.ratio)
	}
	if t.hold > 0 {
		l.nSettle++
		a := max(alpha, 1/float64(l.nSettle))
		l.settleFrac += a * (min(cost/t.hold, maxSettleFrac) - l.settleFrac)
	}
}
