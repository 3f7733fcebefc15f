package admission

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// eps absorbs float rounding in bucket levels (a thousandth of a token).
const eps = 1e-3

// Estimate correction: an EWMA of real/estimated input per target, with a
// margin of its mean absolute deviation. Until it has learned, the margin is
// startDev.
const (
	alpha     = 0.1
	startDev  = 0.25
	minSample = 0.05
	maxSample = 20
)

// limiter is one target's state. Every field below mu is guarded by it.
type limiter struct {
	g      *Governor
	target Target
	model  Model
	p      policy

	mu   sync.Mutex
	last time.Time // time of the last refill
	born time.Time // when the Governor began to watch the target

	limit float64 // tokens per minute in force; +Inf while unknown
	level float64 // tokens in the bucket (capacity: limit)
	rpm   float64 // requests per minute; 0: not limited
	rlvl  float64 // requests in the request bucket

	pausedUntil time.Time

	// CUBIC state: the limit at the last throttle, when it came, and a
	// generation counting the shrinks.
	wmax  float64
	epoch time.Time
	gen   uint64

	// Estimate correction, and the EWMA of settled/held used to expect
	// refunds from the calls in flight.
	ratio, dev float64
	nRatio     int
	settleFrac float64
	nSettle    int

	inflight     int
	inflightHold float64
	flight       flight // the calls in flight's grant times
	reserved     window // tokens granted
	settled      window // tokens settled
	offered      window // what the calls asking for admission would hold

	// taken counts what Bedrock's bucket has given the target: holds
	// granted, less what came back (refunds, throttled and cancelled
	// calls), plus debits. Its change since a throttle episode's anchor
	// bounds the quota at the next throttle (see bound).
	taken      float64
	writtenOff float64 // what the last fresh throttle took out of the bucket
	anchor     syncPoint
	lastThrott time.Time // the last fresh throttle

	// Upper quantiles of the attempts' durations (seconds, grant to
	// settle) and of the calls' holds: how long a reply may take, and how
	// large the target's large calls are (see bounds and judged). quick is
	// a low quantile of the durations (about the time to a first token);
	// perTok a high quantile of the seconds per output token beyond it.
	reply, quick, perTok, bigHold quantile

	queues [numClasses]fifo
	streak int     // Interactive grants in a row while Batch waited
	head   *waiter // the next call to serve, once told it is

	n counters
}

// syncPoint is a moment when Bedrock's bucket was known to be (about)
// empty: a fresh throttle that started an episode.
type syncPoint struct {
	at    time.Time
	taken float64 // limiter.taken then
	level float64 // the bucket's level once emptied (≤ 0: a debt)
	gen   uint64  // the generation it began
}

// Quantile estimates (see quantile).
const (
	replyQuantile = 0.95
	holdQuantile  = 0.99
	trackStep     = 0.05
	// warmValues is how many values a quantile keeps to start from.
	warmValues = 20
)

// quantile is a running estimate of the q-quantile of a series of positive
// values. Its first warmValues values are kept and it is their exact
// (nearest-rank) quantile: for q = 0.95, the largest value until the
// twentieth, then the second largest. After that it moves one step towards
// each value: up by a factor 1+step×q when the value is above it, down by
// 1−step×(1−q) otherwise, so that it settles where a share 1−q of the
// values lie above it. (Stepping from the first value alone took some 40
// values to climb from a quick first reply to the slow ones: in keel bench
// quota, calls granted meanwhile kept no time for their reply and missed
// their deadlines.)
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

type counters struct {
	settled, cancelled, throttles, decreases, resyncs, tooLarge int64
	class                                                       [numClasses]ClassStats
}

func newLimiter(g *Governor, t Target, p policy, now time.Time) *limiter {
	m, _ := lookupModel(g.opts.Models, t.Model)
	l := &limiter{g: g, target: t, model: m, p: p, last: now, born: now,
		limit: p.limit, rpm: p.rpm, rlvl: p.rpm,
		wmax: p.limit, ratio: 1, dev: startDev, settleFrac: 1,
		reply: newQuantile(replyQuantile), quick: newQuantile(1 - replyQuantile),
		perTok: newQuantile(replyQuantile), bigHold: newQuantile(holdQuantile)}
	if !math.IsInf(p.limit, 1) {
		l.level = p.limit
		// Start on the CUBIC plateau: the limit holds, and a learning
		// limit probes upwards slowly at first.
		l.epoch = now.Add(-time.Duration(g.recovery * float64(time.Second)))
	}
	return l
}

func (l *limiter) unlimited() bool { return math.IsInf(l.limit, 1) }

// refill adds what the buckets gained since the last refill.
func (l *limiter) refill(now time.Time) {
	d := now.Sub(l.last)
	if d <= 0 {
		return
	}
	l.last = now
	s := d.Seconds()
	if !l.unlimited() {
		l.level = min(l.limit, l.level+s*l.limit/60)
	}
	if l.rpm > 0 {
		l.rlvl = min(l.rpm, l.rlvl+s*l.rpm/60)
	}
}

// fits reports whether a call holding hold tokens may start now. A call
// larger than the bucket (possible only while a learned limit is below it)
// starts when the bucket is full, and leaves it in debt.
func (l *limiter) fits(hold float64, now time.Time) bool {
	if now.Before(l.pausedUntil) {
		return false
	}
	if l.rpm > 0 && l.rlvl < 1-eps {
		return false
	}
	return l.unlimited() || l.level >= min(hold, l.limit)-eps
}

// readyAt returns when a call holding hold tokens will fit if nothing is
// given back meanwhile.
func (l *limiter) readyAt(hold float64, now time.Time) time.Time {
	at := now
	if l.pausedUntil.After(at) {
		at = l.pausedUntil
	}
	if l.rpm > 0 && l.rlvl < 1-eps {
		at = later(at, now, (1-eps/2-l.rlvl)/(l.rpm/60))
	}
	if !l.unlimited() {
		if need := min(hold, l.limit) - eps/2; l.level < need {
			at = later(at, now, (need-l.level)/(l.limit/60))
		}
	}
	return at
}

// maxWaitSeconds bounds a computed wait (about 31 years), so that a huge
// deficit over a tiny rate cannot overflow a time.Duration.
const maxWaitSeconds = 1e9

// later returns the later of at and now+sec seconds, rounded up to the nanosecond.
func later(at, now time.Time, sec float64) time.Time {
	t := now.Add(time.Duration(math.Ceil(min(sec, maxWaitSeconds) * 1e9)))
	if t.After(at) {
		return t
	}
	return at
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

func (l *limiter) tooLarge(est Estimate, class Class, input float64, maxTok int, hold float64) error {
	if hold <= l.p.ceil {
		return nil
	}
	l.n.tooLarge++
	return &Error{Target: l.target, Class: class, Reason: ErrTooLarge, Tokens: int64(hold),
		Input: int64(input), MaxTokens: int64(maxTok), Capacity: int64(l.p.ceil)}
}

// take grants a call: it takes its tokens and request and returns its Ticket.
func (l *limiter) take(est Estimate, input float64, maxTok int, hold float64, now time.Time) Ticket {
	if !l.unlimited() {
		l.level -= hold
	}
	if l.rpm > 0 {
		l.rlvl--
	}
	l.inflight++
	l.inflightHold += hold
	l.taken += hold
	l.reserved.add(now, hold)
	seq := l.flight.push(now)
	return Ticket{l: l, gen: l.gen, seq: seq, at: now, hold: hold, input: input, raw: est.InputTokens, max: maxTok}
}

func (l *limiter) queued() bool { return l.queues[Interactive].len() > 0 || l.queues[Batch].len() > 0 }

func (l *limiter) admit(ctx context.Context, est Estimate, class Class, by time.Time) (Ticket, error) {
	clk := l.g.clk
	now := clk.Now()
	l.mu.Lock()
	l.refill(now)
	input, maxTok, hold := l.size(est)
	if by.IsZero() {
		// A call's first admission; a retry was counted then.
		l.offered.add(now, hold)
	}
	if err := l.tooLarge(est, class, input, maxTok, hold); err != nil {
		l.mu.Unlock()
		return Ticket{}, err
	}
	if !l.queued() && l.fits(hold, now) {
		l.n.class[class].Admitted++
		tk := l.take(est, input, maxTok, hold, now)
		l.mu.Unlock()
		return tk, nil
	}

	// Queue, unless the wait would cross the deadline anyway. On the way
	// in, the call is judged as if it were as large as the target's large
	// calls (see judged); once queued, by its own size.
	start := now
	w := &waiter{class: class, est: est, input: input, maxTok: maxTok, hold: hold, since: now, ctx: ctx, by: by,
		ch: make(chan struct{}, 1)}
	b := l.bound(w, now)
	var entry bound
	w.judge, entry = l.judged(class, hold, b, now)
	offered, shed := l.overloaded(class, by, now)
	l.queues[class].push(w)
	if err := l.expire(w, now, start, entry); err != nil {
		l.mu.Unlock()
		return Ticket{}, err
	}
	if shed {
		if wait := l.estimateWait(w, now); wait > l.g.opts.QueueTarget {
			e := l.shedErr(w, wait, offered)
			l.mu.Unlock()
			return Ticket{}, e
		}
	}
	w.judge = hold
	l.dispatch(now, false)
	for {
		// l.mu is held here.
		if w.granted {
			l.mu.Unlock()
			return w.tk, nil
		}
		// What the reply may take is learned as calls end: judge again.
		b = l.bound(w, now)
		if err := l.expire(w, now, start, b); err != nil {
			l.dispatch(now, false)
			l.mu.Unlock()
			return Ticket{}, err
		}
		// Every notification is sent under l.mu: one sent before this point
		// is stale, since the state it signalled has been read above.
		select {
		case <-w.ch:
		default:
		}
		wake := b.by
		if l.head == w {
			if at := l.readyAt(hold, now); wake.IsZero() || at.Before(wake) {
				wake = at
			}
		}
		l.mu.Unlock()

		var timer clock.Timer
		var tc <-chan time.Time
		if !wake.IsZero() {
			timer = clk.NewTimer(wake.Sub(clk.Now()))
			tc = timer.C()
		}
		var done bool
		select {
		case <-w.ch:
		case <-tc:
		case <-ctx.Done():
			done = true
		}
		if timer != nil {
			timer.Stop()
		}
		now = clk.Now()
		l.mu.Lock()
		if done {
			if w.granted {
				tk := w.tk
				l.cancelLocked(&tk, now)
				l.n.cancelled++
			}
			err := ctx.Err()
			if !w.granted && errors.Is(err, context.DeadlineExceeded) {
				// The context's deadline, seen through its Done channel
				// rather than the timer: the same refusal as expire's.
				e := l.expireErr(w, now, start, b, 0)
				e.Err = err
				l.dispatch(now, false)
				l.mu.Unlock()
				return Ticket{}, e
			}
			if !w.granted {
				l.queues[class].remove(w)
				l.clearHead(w)
			}
			l.n.class[class].Cancelled++
			l.dispatch(now, true)
			l.mu.Unlock()
			return Ticket{}, fmt.Errorf("admission: %s: gave up after waiting %v for quota: %w", l.target, now.Sub(start), err)
		}
		l.dispatch(now, false)
	}
}

// bound is when a queued call must be granted by to be of use.
type bound struct {
	by      time.Time     // the earliest of the three below; zero: none
	ctx     time.Time     // the context's deadline; zero: none
	reply   time.Duration // the reply time subtracted from ctx's deadline
	fromCtx bool          // by is ctx's deadline less reply
	guess   bool          // reply is blindGuess's: no reply has come back yet
}

// minPerTok is the least output a reply must have to teach the time per
// output token.
const minPerTok = 32

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
// of the first calls have ended the percentile alone is too low: in keel
// bench quota, calls granted in the first ten seconds by it alone kept too
// little time for their replies, and 2-10 of them missed their deadlines.
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
		return max(l.reply.v, 2*age)
	}
	return max(l.reply.v, min(age, 2*l.reply.v))
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
// time. With nothing known, a reply was taken to be instant, and calls
// waited in the queue for as long as their deadlines allowed, to be refused
// when the first replies showed how long replies take. In keel bench quota,
// after the first call's throttle had emptied the bucket, ten calls waited
// 7 s behind a 64,000-token one and were then refused, and one granted
// behind them missed its deadline by 0.4 s. Kept to half its time, such a
// call is refused at once when the queue is that long, and the calls
// behind it move up.
func blindGuess(start, d time.Time) time.Duration { return max(d.Sub(start)/2, 0) }

// bound returns the queued w's bound at now.
func (l *limiter) bound(w *waiter, now time.Time) bound {
	return l.bounds(w.ctx, w.since, now, w.by, w.maxTok)
}

// judged returns what a call entering the queue is judged by, its hold and
// its bound. When calls of its class already wait (the target is
// overloaded; an Interactive call does not queue behind Batch calls), it is
// judged as the target's large calls would be: by their hold (the 99th
// percentile of recent holds, once minJudged calls have shown it) if larger
// than its own, and by the reply time of the target's slow replies (its
// 95th percentile) even if its max tokens would cut its reply shorter. So
// whether a call gets into the queue does not depend on its size, and the
// queue does not fill with small calls that leave no time for a large one.
// Once queued, a call is judged by its own hold and bound.
//
// Under 2x overload in keel bench quota, judged by their own size, the
// largest quarter of calls completed 0.45 times as often as the smallest;
// judged by the 95th percentile hold alone, 0.55-0.6 times; judged as
// above, 0.8 times (150 s window, seed 1), with the same goodput (103%):
// a token bucket that is never full loses nothing to a shorter queue. A
// call is judged by its own size with Options.SmallFirst, and without a
// context deadline. l.mu must be held, and the call not queued yet.
func (l *limiter) judged(class Class, hold float64, b bound, now time.Time) (float64, bound) {
	if l.g.opts.SmallFirst || l.bigHold.n < minJudged || l.queues[class].len() == 0 || !b.fromCtx || l.unlimited() {
		return hold, b
	}
	if r := time.Duration(l.slowReply(now) * float64(time.Second)); r > b.reply {
		b.reply, b.by, b.guess = r, b.ctx.Add(-r), false
	}
	return max(hold, l.bigHold.v), b
}

// overloadSpan is how far back a target's offered load is looked at.
const overloadSpan = time.Minute

// overloaded reports whether a call of class joining the queue at now (its
// first admission when by is zero) is held to Options.QueueTarget: it is
// Interactive, Interactive calls already wait, and the calls that asked for
// admission over the last overloadSpan would settle more per minute than
// the limit. It also returns that offered load ÷ the limit. Once calls ask
// for more than the quota, the bucket is used as fully with a short queue
// as with a long one, and a long one only delays every reply (in keel bench
// quota at 2x load, waits of 2-5 s before replies of up to 10 s). Calls that
// asked for less than a minute of quota over the last minute are a burst
// the bucket (a minute of quota) absorbs: they wait their turn. What a call
// asks for is its hold × the tokens settled per token held (see
// offeredRate): the refunds of large reservations come back.
//
// In a target's first slot (5 s), the rate is read over too short a time to
// tell such a burst from overload, and calls queue; but not once a throttle
// has emptied the bucket (a process started on a spent quota): then no
// bucket absorbs a burst, and calls asked for beyond the refill wait for it.
// In keel bench quota, where the bucket starts spent, calls of the first
// 2.5 s waited 4-6 s behind the first call's throttle, and made most of
// keel's p99 on seed 1 (12.2 s; replies alone 10.3 s). l.mu must be held,
// and the call not queued yet.
func (l *limiter) overloaded(class Class, by, now time.Time) (float64, bool) {
	if class != Interactive || !by.IsZero() || l.queues[class].len() == 0 || l.unlimited() {
		return 0, false
	}
	rate, span := l.offeredRate(now)
	if span < slotLen && l.lastThrott.IsZero() {
		return 0, false // too soon to tell a burst the bucket absorbs from overload
	}
	ratio := rate / l.limit
	return ratio, ratio > 1
}

// offeredRate returns what the calls that asked for admission over the last
// overloadSpan (or since the target was first seen) would settle, per
// minute, and the time it was measured over: what they would hold, at the
// ratio of settled to held tokens of the last minute's calls (tokens, not
// calls: a 64,000-token reservation that settles 10,000 weighs as much as
// it holds, where the mean of the calls' ratios would count it as a small
// call's near 1, and read 2x load as 3-4x in keel bench quota).
func (l *limiter) offeredRate(now time.Time) (float64, time.Duration) {
	sum, span := l.offered.recent(now, overloadSpan)
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
	settled := l.settled.sum(now)
	held := l.reserved.sum(now) - l.inflightHold
	if settled <= 0 || held <= 0 {
		return l.settleFrac
	}
	return settled / held
}

// shedErr removes the queued w and returns its ErrOverloaded refusal. l.mu
// must be held.
func (l *limiter) shedErr(w *waiter, wait time.Duration, offered float64) *Error {
	ahead := l.ahead(w)
	l.queues[w.class].remove(w)
	l.clearHead(w)
	l.n.class[w.class].Shed++
	return &Error{Target: l.target, Class: w.class, Reason: ErrOverloaded, Tokens: int64(w.hold),
		Input: int64(w.input), MaxTokens: int64(w.maxTok), Wait: wait, Ahead: ahead, Offered: offered,
		QueueTarget: l.g.opts.QueueTarget}
}

// minJudged is how many calls a target must have seen before its large
// calls' hold is used to judge others.
const minJudged = warmValues

// expire removes the queued w and returns its *Error when its bound has
// passed or its estimated wait crosses it. l.mu must be held.
func (l *limiter) expire(w *waiter, now, start time.Time, b bound) error {
	if b.by.IsZero() {
		return nil
	}
	var wait time.Duration
	if now.Before(b.by) {
		if wait = l.estimateWait(w, now); !now.Add(wait).After(b.by) {
			return nil
		}
	}
	e := l.expireErr(w, now, start, b, wait)
	if b.fromCtx && !now.Before(b.ctx) {
		e.Err = context.DeadlineExceeded
	}
	return e
}

// expireErr removes the queued w and returns its refusal. l.mu must be held.
func (l *limiter) expireErr(w *waiter, now, start time.Time, b bound, wait time.Duration) *Error {
	ahead := l.ahead(w)
	l.queues[w.class].remove(w)
	l.clearHead(w)
	l.n.class[w.class].Expired++
	e := &Error{Target: l.target, Class: w.class, Reason: ErrWouldExceedDeadline, Tokens: int64(w.hold),
		Input: int64(w.input), MaxTokens: int64(w.maxTok), Wait: wait, Left: max(b.by.Sub(now), 0),
		Waited: now.Sub(start), Ahead: ahead}
	if b.fromCtx {
		e.Left, e.Reply, e.ReplyGuessed = max(b.ctx.Sub(now), 0), b.reply, b.guess
	}
	return e
}

func (l *limiter) clearHead(w *waiter) {
	if l.head == w {
		l.head = nil
	}
}

// next returns the call to serve next: the head of the Interactive queue,
// unless Batch calls wait and BatchEvery Interactive grants in a row have
// passed them.
func (l *limiter) next() *waiter {
	wi, wb := l.queues[Interactive].front(), l.queues[Batch].front()
	switch {
	case wi == nil:
		return wb
	case wb == nil:
		return wi
	case l.streak >= l.g.batchEvery:
		return wb
	}
	return wi
}

// dispatch grants the calls that fit, in order, and tells the next one it
// is next; with poke, it tells it even if it knew, because tokens came back
// and it may fit sooner than it planned. l.mu must be held.
func (l *limiter) dispatch(now time.Time, poke bool) {
	l.refill(now)
	for {
		w := l.next()
		if w == nil {
			l.head = nil
			return
		}
		if !l.fits(w.hold, now) {
			if l.head != w || poke {
				l.head = w
				w.notify()
			}
			return
		}
		if b := l.bound(w, now); !b.by.IsZero() && !now.Before(b.by) {
			// Too late for it now: what replies take grew while it
			// waited (see slowReply). It refuses itself when it wakes,
			// and serves the next call.
			w.notify()
			return
		}
		l.queues[w.class].pop()
		l.clearHead(w)
		if w.class == Interactive && l.queues[Batch].len() > 0 {
			l.streak++
		} else {
			l.streak = 0
		}
		wait := now.Sub(w.since)
		w.tk = l.take(w.est, w.input, w.maxTok, w.hold, now)
		w.tk.waited = wait
		w.granted = true
		cs := &l.n.class[w.class]
		cs.Admitted++
		cs.Waited++
		cs.WaitTotal += wait
		cs.WaitMax = max(cs.WaitMax, wait)
		w.notify()
	}
}

// estimateWait estimates how long the queued w will wait: until the calls
// ahead of it and w itself fit, counting the refill, the pause, and the
// tokens the calls in flight are expected to give back. While calls of the
// other class wait, they are taken to keep coming: as many of them count as
// the BatchEvery rule lets go first (for a Batch call, BatchEvery Interactive
// calls per Batch call up to and including it; for an Interactive call, one
// Batch call per BatchEvery Interactive ones ahead), at their current mean
// size.
func (l *limiter) estimateWait(w *waiter, now time.Time) time.Duration {
	sameT, sameN := l.queues[w.class].ahead(w)
	o := &l.queues[1-w.class]
	var otherN float64
	if o.len() > 0 {
		k := float64(l.g.batchEvery)
		if w.class == Interactive {
			otherN = math.Floor((float64(l.streak) + sameN) / k)
		} else {
			otherN = max(k-float64(l.streak), 0) + k*sameN
		}
	}
	var otherT float64
	if otherN > 0 {
		otherT = otherN * o.tokens / float64(o.len())
	}
	at := now
	if l.pausedUntil.After(at) {
		at = l.pausedUntil
	}
	if !l.unlimited() {
		refund := l.inflightHold * (1 - l.settleFrac)
		if deficit := sameT + otherT + min(w.judge, l.limit) - l.level - refund; deficit > 0 {
			at = later(at, now, deficit/(l.limit/60))
		}
	}
	if l.rpm > 0 {
		if deficit := sameN + otherN + 1 - l.rlvl; deficit > 0 {
			at = later(at, now, deficit/(l.rpm/60))
		}
	}
	return at.Sub(now)
}

// ahead returns the number of calls queued ahead of w in its class and in
// the other.
func (l *limiter) ahead(w *waiter) int {
	_, n := l.queues[w.class].ahead(w)
	return int(n) + l.queues[1-w.class].len()
}

// settle ends a Ticket with its usage.
func (l *limiter) settle(t *Ticket, u Usage) {
	in, out := max(u.InputTokens, 0), max(u.OutputTokens, 0)
	cr, cw := max(u.CacheReadInputTokens, 0), max(u.CacheWriteInputTokens, 0)
	now := l.g.clk.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	known := in+cr+cw > 0
	charged := float64(in + cw)
	if !known {
		charged = t.input
	}
	cost := charged + math.Ceil(float64(out)*l.model.Burndown)
	l.end(t, t.hold-cost)
	l.taken -= t.hold - cost
	l.settled.add(now, cost)
	l.n.settled++
	if !t.at.IsZero() {
		d := now.Sub(t.at).Seconds()
		l.reply.add(d)
		l.quick.add(d)
		if out >= minPerTok && d > l.quick.v {
			l.perTok.add((d - l.quick.v) / float64(out))
		}
	}
	if known && t.raw > 0 {
		s := min(max(float64(in+cr+cw)/float64(t.raw), minSample), maxSample)
		l.nRatio++
		a := max(alpha, 1/float64(l.nRatio))
		l.dev += a * (math.Abs(s-l.ratio) - l.dev)
		l.ratio += a * (s - l.ratio)
	}
	if t.hold > 0 {
		l.nSettle++
		a := max(alpha, 1/float64(l.nSettle))
		l.settleFrac += a * (min(cost/t.hold, 2) - l.settleFrac)
	}
	l.grow(now)
	l.dispatch(now, true)
}

// end takes a Ticket out of flight and gives back refund tokens (taking
// them if negative).
func (l *limiter) end(t *Ticket, refund float64) {
	l.inflight--
	l.inflightHold -= t.hold
	l.flight.end(t.seq)
	if l.inflight == 0 {
		l.inflightHold = 0 // no drift
	}
	if !l.unlimited() {
		l.level = min(l.limit, l.level+refund)
	}
}

func (l *limiter) cancel(t *Ticket) {
	now := l.g.clk.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cancelLocked(t, now)
	l.n.cancelled++
	l.dispatch(now, true)
}

func (l *limiter) cancelLocked(t *Ticket, now time.Time) {
	l.refill(now)
	// A Ticket from before the last fresh throttle may hold tokens that
	// the throttle already wrote off when it emptied the bucket (a call in
	// transit then, which Bedrock throttles too): giving them back would
	// count them twice. The write-off is what emptying the bucket took,
	// so only that much is kept back; a call long in flight that is
	// cancelled gives its tokens back as usual.
	refund := t.hold
	if t.gen != l.gen {
		w := min(refund, l.writtenOff)
		l.writtenOff -= w
		refund -= w
	}
	l.end(t, refund)
	// Bedrock took nothing for it. (A call granted before the episode's
	// anchor was counted in the anchor's taken too.)
	l.taken -= t.hold
	if t.gen < l.anchor.gen {
		l.anchor.taken -= t.hold
	}
	if l.rpm > 0 {
		l.rlvl = min(l.rpm, l.rlvl+1)
	}
}

// usage returns the tokens the target used over the last minute: what
// settled in it, plus what the calls in flight hold.
func (l *limiter) usage(now time.Time) float64 {
	return l.settled.sum(now) + l.inflightHold
}

// minObserved is how long the Governor watches a target with an unknown
// quota before a throttle teaches it a limit. A throttle before that only
// pauses the target: a process that starts while the quota is spent (by
// others, or by its own previous run) is throttled at once, before what it
// used says anything about a rate. (Longer waits were measured: 2 s and
// 5 s of pauses alone let bursts through between them, and throttled more
// in keel bench quota.)
const minObserved = time.Second

// observedRate returns the tokens per minute the target was used at, extra
// tokens (a throttled call's hold) included. When the Governor has watched
// the target for less than a minute, what it used is extrapolated to a
// minute (from at least minObserved). Erring high costs a few throttles
// (each shrinks the limit to 0.7 of itself); erring low would leave the
// limit so far below the quota that the calls whose successes grow it back
// could not be admitted in time.
func (l *limiter) observedRate(now time.Time, extra float64) float64 {
	u := l.usage(now) + extra
	if age := now.Sub(l.born); age < time.Minute {
		u *= float64(time.Minute) / float64(max(age, minObserved))
	}
	return u
}

// grow raises the limit after a success along the CUBIC curve
// W(t) = Wmax × (1 + (1-β)((t-K)/K)³), where t is the time since the last
// throttle and K is Recovery: the limit climbs back to Wmax in K, slowly
// near it, then probes past it. A known quota caps it; a learning limit grows
// past its value only up to twice what the target really used over the last
// minute, so an idle target does not grow a limit it never tested.
func (l *limiter) grow(now time.Time) {
	if l.unlimited() {
		return
	}
	k := l.g.recovery
	x := (now.Sub(l.epoch).Seconds() - k) / k
	w := l.wmax * (1 + (1-l.g.beta)*x*x*x)
	if w <= l.limit {
		return
	}
	if l.p.learn {
		w = min(w, max(l.limit, 2*l.usage(now)))
	}
	w = min(w, l.p.ceil)
	if w > l.limit {
		l.limit = w
	}
}

// throttle reacts to a throttle of t's call (nil: a call without a Ticket).
// t's tokens go back, since Bedrock reserved nothing. Only a call admitted
// since the last fresh throttle (or, without a Ticket, a throttle after the
// pause) is news; the others were sent before the Governor knew.
func (l *limiter) throttle(t *Ticket) {
	now := l.g.clk.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	l.n.throttles++
	var fresh bool
	var hold float64
	if t != nil {
		fresh = t.gen == l.gen
		hold = t.hold
		l.cancelLocked(t, now)
	} else {
		fresh = !now.Before(l.pausedUntil)
	}
	if fresh {
		l.react(now, hold)
	}
	l.dispatch(now, true)
}

// episodeGap is how long after a throttle the next one still belongs to
// the same episode, whose anchor bounds the quota. Bedrock's bucket, below
// one call's hold at a throttle, cannot fill to a whole minute of quota
// (and lose refill to overflow, which would break the bound) in less than
// about a minute; 50 s leaves room for a call of a sixth of the quota.
const episodeGap = 50 * time.Second

// react is what a fresh throttle of a call that held hold tokens (0: one
// without a Ticket) does: it bounds the quota from what Bedrock gave since
// the episode's anchor, lowers the limit to that bound, empties the bucket
// (Bedrock's is empty, as far as this call could tell) and pauses
// admissions. l.mu must be held.
//
// The bound: at the anchor, Bedrock's bucket held about the level the
// Governor's was emptied to (≤ 0). Since then it refilled Q/60 a second and
// gave out taken−anchor.taken; now it had less than hold. So
// Q < 60 × (taken − anchor.taken + hold − anchor.level) / elapsed. It
// tightens as the episode goes on: over 30 s of a 1 M TPM quota, a 10,000
// token hold leaves it 2 % above the quota.
//
// A known quota's first throttle of an episode changes no limit: it says
// the Governor's bucket was fuller than Bedrock's (a process started on a
// spent quota, or another client), not that the quota is wrong; the bucket
// is emptied to match. A later throttle lowers a known limit to the bound,
// but by at most Decrease (0.7) at a time, climbing back along the CUBIC
// curve after such a cut. A learning (or unknown) quota's limit goes to what
// Bedrock gave per minute since the anchor, the bound less the throttled
// hold, the middle of what the anchor's unknown level leaves possible, but
// not below 0.7 of the bound: early in an episode, when a pause has kept
// the target idle, what was given is far below the quota. (The bound alone
// throttled 25 times per 100 attempts in keel bench quota, its hold term
// staying large for tens of seconds with 64,000-token calls; what was given
// alone learned a fifth of the quota from the first second.) With no bound
// yet (the episode's first throttle), see shrink.
func (l *limiter) react(now time.Time, hold float64) {
	if !l.lastThrott.IsZero() && now.Sub(l.lastThrott) > episodeGap {
		l.anchor = syncPoint{}
	}
	l.lastThrott = now
	bound, given := math.Inf(1), math.Inf(1)
	if a := l.anchor; !a.at.IsZero() {
		if d := now.Sub(a.at); d >= minObserved {
			given = 60 * (l.taken - a.taken - min(a.level, 0)) / d.Seconds()
			bound = max(given+60*hold/d.Seconds(), l.p.floor)
			given = max(given, bound*l.g.beta, l.p.floor)
		}
	}
	newEpisode := l.anchor.at.IsZero()
	wasUnlimited := l.unlimited()
	switch {
	case l.unlimited() && !math.IsInf(bound, 1):
		l.setLimit(now, min(given, l.p.ceil))
	case l.unlimited() && now.Sub(l.born) < minObserved:
		// Too soon to tell a rate from what was used: pause, learn nothing.
	case l.unlimited() || (l.p.learn && newEpisode):
		l.shrink(now, hold)
	case given < l.limit && l.p.learn:
		l.setLimit(now, given)
	case bound < l.limit*l.g.beta:
		// Far below a known quota: cut by Decrease and climb back along
		// the curve, as without a bound; the next throttle tells more.
		l.wmax, l.limit, l.epoch = l.limit, max(l.p.floor, l.limit*l.g.beta), now
		l.n.decreases++
	case bound < l.limit:
		l.setLimit(now, bound)
	default:
		l.n.resyncs++
	}
	switch {
	case wasUnlimited && !l.unlimited():
		// The new bucket starts empty, as Bedrock's is, without the holds
		// in flight taken out: those still in transit, which Bedrock will
		// throttle too, must not come back into it.
		l.writtenOff = l.inflightHold
	case !l.unlimited():
		l.writtenOff = max(l.level, 0)
		l.level = min(l.level, 0)
	}
	l.gen++
	if newEpisode {
		l.anchor = syncPoint{at: now, taken: l.taken, level: min(l.level, 0), gen: l.gen}
	}
	l.pause(now)
}

// setLimit sets a limit found from a bound, and starts its CUBIC curve on
// the plateau: the bound is above the quota, so the limit probes upwards
// only slowly. l.mu must be held.
func (l *limiter) setLimit(now time.Time, w float64) {
	if l.unlimited() {
		l.level = 0
	}
	l.wmax, l.limit = w, w
	l.epoch = now.Add(-time.Duration(l.g.recovery * float64(time.Second)))
	l.n.decreases++
}

// shrink cuts the limit at a throttle without a bound (the first of an
// episode) of a target whose quota is unknown or learning. l.mu must be held.
func (l *limiter) shrink(now time.Time, hold float64) {
	// Wmax is the limit that was just found too high. While the limit is
	// still unknown, it is the rate the target was used at: what it used
	// over the last minute plus the throttled call's hold (Bedrock could not
	// give that much in a minute), per minute. (Without the hold, one
	// throttle of a lone call on an idle target would set the limit to the
	// floor, far below any call it ever served.) A learned limit far above
	// what was used when Bedrock said no (the first, extrapolated one, say)
	// comes down to that use at once, as the AWS SDK's adaptive mode takes
	// the smaller of its rate and the measured one.
	w := min(l.limit, max(l.observedRate(now, hold), l.p.floor), l.p.ceil)
	if l.unlimited() {
		l.level = 0
	}
	l.wmax = w
	l.limit = max(l.p.floor, w*l.g.beta)
	l.epoch = now
	l.n.decreases++
}

// pause stops admissions for a jittered cool-down. l.mu must be held.
func (l *limiter) pause(now time.Time) {
	pause := time.Duration(float64(l.g.coolDown) * (0.5 + l.g.rand()))
	l.pausedUntil = now.Add(pause)
	// Every waiter looks again: the head at its new time, the others at
	// whether their deadline can still be met.
	for c := range l.queues {
		for _, w := range l.queues[c].live() {
			w.notify()
		}
	}
	l.head = nil
}

func (l *limiter) stats() Stats {
	now := l.g.clk.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	offered, _ := l.offeredRate(now)
	s := Stats{Target: l.target, Model: l.model, Floor: int64(l.p.floor), Learning: l.p.learn,
		RequestsPerMinute: int64(l.rpm), InFlight: l.inflight, InFlightTokens: int64(l.inflightHold),
		ReservedPerMinute: int64(l.reserved.sum(now)), SettledPerMinute: int64(l.settled.sum(now)),
		OfferedPerMinute: int64(offered),
		InputRatio:       l.ratio, Settled: l.n.settled, Cancelled: l.n.cancelled, Throttles: l.n.throttles,
		Decreases: l.n.decreases, Resyncs: l.n.resyncs, TooLarge: l.n.tooLarge, Classes: l.n.class,
		ReplyTime: time.Duration(l.slowReply(now) * float64(time.Second)), LargeHold: int64(l.bigHold.v)}
	if !l.unlimited() {
		s.Limit = int64(math.Round(l.limit))
		s.Available = int64(math.Floor(l.level))
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

// waiter is a queued call.
type waiter struct {
	class  Class
	est    Estimate
	input  float64
	maxTok int
	hold   float64
	judge  float64 // the hold its wait is estimated with (see judged)
	since  time.Time
	ctx    context.Context // its deadline and by bound its wait (see bounds)
	by     time.Time
	cum    float64 // tokens pushed onto its queue up to and including it
	cumN   int64
	ch     chan struct{} // capacity 1; sent to under l.mu
	// Set under l.mu by dispatch.
	granted bool
	tk      Ticket
}

func (w *waiter) notify() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// fifo is one class's queue. It keeps running totals of the tokens pushed
// and of those that left, so the tokens ahead of a waiter cost nothing to
// find.
type fifo struct {
	w      []*waiter
	h      int     // index of the front
	tokens float64 // live total
	pushed float64
	left   float64
	pushN  int64
	leftN  int64
}

func (q *fifo) len() int { return len(q.w) - q.h }

func (q *fifo) live() []*waiter { return q.w[q.h:] }

func (q *fifo) front() *waiter {
	if q.len() == 0 {
		return nil
	}
	return q.w[q.h]
}

func (q *fifo) push(w *waiter) {
	q.pushed += w.hold
	q.pushN++
	w.cum, w.cumN = q.pushed, q.pushN
	q.tokens += w.hold
	q.w = append(q.w, w)
}

func (q *fifo) pop() {
	q.leave(q.w[q.h])
	q.w[q.h] = nil
	q.h++
	q.compact()
}

func (q *fifo) remove(w *waiter) {
	for i := q.h; i < len(q.w); i++ {
		if q.w[i] == w {
			q.leave(w)
			copy(q.w[i:], q.w[i+1:])
			q.w[len(q.w)-1] = nil
			q.w = q.w[:len(q.w)-1]
			q.compact()
			return
		}
	}
}

func (q *fifo) leave(w *waiter) {
	q.tokens -= w.hold
	q.left += w.hold
	q.leftN++
}

func (q *fifo) compact() {
	switch {
	case q.len() == 0:
		q.w, q.h, q.tokens = q.w[:0], 0, 0
	case q.h > 32 && q.h*2 > len(q.w):
		n := copy(q.w, q.w[q.h:])
		clear(q.w[n:])
		q.w, q.h = q.w[:n], 0
	}
}

// ahead returns the tokens and calls ahead of w. A call behind w that left
// early makes it count a little less than it should; the figure is an
// estimate's input.
func (q *fifo) ahead(w *waiter) (tokens, n float64) {
	return max(0, w.cum-w.hold-q.left), max(0, float64(w.cumN-1-q.leftN))
}

// window sums values over the last minute in twelve 5-second slots.
type window struct {
	slot [12]float64
	cur  int64 // index of the newest slot since the epoch
}

const slotLen = 5 * time.Second

func (w *window) advance(now time.Time) int {
	n := now.UnixNano() / int64(slotLen)
	if n > w.cur {
		for i := w.cur + 1; i <= n && i <= w.cur+int64(len(w.slot)); i++ {
			w.slot[i%int64(len(w.slot))] = 0
		}
		w.cur = n
	}
	return int(w.cur % int64(len(w.slot)))
}

func (w *window) add(now time.Time, v float64) { w.slot[w.advance(now)] += v }

// recent returns the sum of the newest slots covering d back from now (at
// most the whole window), and the time they cover: the current slot is
// partly over.
func (w *window) recent(now time.Time, d time.Duration) (float64, time.Duration) {
	cur := w.advance(now)
	n := min(int((d+slotLen-1)/slotLen), len(w.slot))
	var s float64
	for i := range n {
		s += w.slot[(cur-i+len(w.slot))%len(w.slot)]
	}
	into := time.Duration(now.UnixNano() % int64(slotLen))
	return s, time.Duration(n-1)*slotLen + into
}

// sum returns the sum of the whole window.
func (w *window) sum(now time.Time) float64 {
	s, _ := w.recent(now, time.Duration(len(w.slot))*slotLen)
	return s
}

// flight holds the grant times of a target's calls in flight, oldest first,
// so that the age of its slow calls can be read. Calls are granted in time
// order and end in any order: an ended call's slot is cleared, and cleared
// slots at the front are dropped. It reuses its array, so tracking a call
// allocates nothing once the array has grown to the calls in flight.
type flight struct {
	at   []time.Time // from the call with seq base; zero: ended
	head int         // at[head] is the oldest slot kept
	base uint64      // seq of at[head]
	next uint64      // seq of the next call
}

// flightHorizon is how long a call stays in a flight: one in flight longer
// is taken for a leaked Ticket (never settled) rather than a slow reply, so
// that it cannot keep every later call's slot, nor set the slow replies'
// time.
const flightHorizon = 10 * time.Minute

// push adds a call granted at t (not before the last one) and returns its
// seq.
func (f *flight) push(t time.Time) uint64 {
	for f.head < len(f.at) && (f.at[f.head].IsZero() || t.Sub(f.at[f.head]) > flightHorizon) {
		f.head++
		f.base++
	}
	if f.head > 0 && f.head >= len(f.at)/2 {
		n := copy(f.at, f.at[f.head:])
		f.at = f.at[:n]
		f.head = 0
	}
	f.at = append(f.at, t)
	seq := f.next
	f.next++
	return seq
}

// end clears the slot of the call seq.
func (f *flight) end(seq uint64) {
	if seq < f.base || seq >= f.next {
		return
	}
	f.at[f.head+int(seq-f.base)] = time.Time{}
	for f.head < len(f.at) && f.at[f.head].IsZero() {
		f.head++
		f.base++
	}
}

// oldest returns the grant time of the k-th oldest call in flight at now
// (k ≥ 1), false when fewer than k are. Calls past flightHorizon do not
// count.
func (f *flight) oldest(k int, now time.Time) (time.Time, bool) {
	for _, t := range f.at[f.head:] {
		if t.IsZero() || now.Sub(t) > flightHorizon {
			continue
		}
		if k--; k == 0 {
			return t, true
		}
	}
	return time.Time{}, false
}
