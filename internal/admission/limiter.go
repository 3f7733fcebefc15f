package admission

import (
	"context"
	"math"
	"time"

	"github.com/keel-run/keel/internal/window"
)

// limiter is one target's state. Every field below mu is guarded by it.
type limiter struct {
	g      *Governor
	target Target
	model  Model
	p      policy // changed only by setQuota, under mu

	// disc is the discovery of the target's model and region, nil when
	// it has none; set before the limiter is published.
	disc *discovery
	// source is SourceDiscovered once a discovered quota is set, else
	// empty (see limitSource). Guarded by mu.
	source string

	mu   ctxLock   // held across Store round trips; admit waits for it within the call's context
	born time.Time // when the Governor began to watch the target

	// view is the target's buckets as the Governor's Store last returned
	// them: read at each time the limiter acts (see load), and again after
	// each change it makes.
	view    Buckets
	freshAt time.Time // view is the Store's at this time (see load); zero: read again

	pausedUntil time.Time

	// CUBIC state: the limit at the last throttle, when it came, and a
	// generation counting the confirmed throttles.
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
	// What the limiter last saw of the Store's buckets that Governors
	// sharing the Store change too (see follow and joined): the whole
	// limit, and the drains.
	sharedLimit float64
	drains      uint64

	flight    flight               // the calls in flight's grant times
	reserved  window.Ring[float64] // tokens granted
	settled   window.Ring[float64] // tokens settled
	offered   window.Ring[float64] // what the calls asking for admission would hold
	given     window.Ring[float64] // changes of taken: what Bedrock's bucket gave
	confirmed window.Ring[float64] // confirmed throttles
	noisy     window.Ring[float64] // throttles cleared as noise

	// taken counts what Bedrock's bucket has given the target since it was
	// first seen: holds granted, less what came back (refunds, throttled and
	// cancelled calls), plus debits (see lifetimeRate); given holds the same
	// changes over the last minute.
	taken float64
	// debits counts what the target's settled calls cost beyond their
	// holds since it was first seen; pass is the latest call known to
	// have got through Bedrock's quota check by its settle (see
	// passDebits).
	debits float64
	pass   passMark
	// netBack counts what the target's settled calls gave back since it
	// was first seen: holds less costs, negative where they cost more.
	netBack    float64
	debts      debts     // what the last confirmed throttles' buckets may have owed
	writtenOff float64   // what the last confirmed throttle took out of the bucket
	capped     float64   // what through took out of the bucket since the last drain, which Bedrock did not give (see learnBurst)
	cappedPeak float64   // the bucket's peak when through last took out
	syncSeq    uint64    // the flight seq of the first call granted after the last confirmed throttle
	strikes    int       // confirmed throttles since a call got through
	struckAt   time.Time // the first confirmed throttle of the row of strikes
	slow       bool      // the limit grows by slow start (see grow)
	slowSeq    uint64    // the flight seq of the first call granted in slow start
	slowPassed bool      // a call granted in slow start got through
	slowFrom   float64   // the limit slow start began from
	first      first     // how the first limit was set (see retakeFirst)
	warmGap    float64   // what a full start would hold beyond the level; > 0 while warming up (see warm, lend)
	gone       bool      // forgotten to make room for another target (see Governor.limiter)
	measured   float64   // the limit last set from a measured rate (a minute's, or slow start's end); 0: none
	lastGrant  time.Time // when the last call was granted
	lastThrott time.Time // the last confirmed throttle
	// The call whose throttle was last confirmed: when it was granted,
	// taken when its throttle came back, and its hold (see dryLower).
	dryAt             time.Time
	dryTaken, dryHold float64
	climb             climb

	// Upper quantiles of the attempts' durations (seconds, grant to
	// settle) and of the calls' holds: how long a reply may take, and how
	// large the target's large calls are (see bounds and judged). quick is
	// a low quantile of the durations (about the time to a first token);
	// perTok a high quantile of the seconds per output token beyond it.
	// throttleLat is a high quantile of the throttles' round trips (grant
	// to throttle).
	reply, quick, perTok, bigHold, throttleLat quantile

	suspicion  suspicion  // an unconfirmed throttle (see suspect)
	settledTop settledTop // the latest calls that settled, by seq (see suspect)

	queues [numClasses]fifo
	streak int     // Interactive grants in a row while Batch waited
	head   *waiter // the next call to serve, once told it is

	n counters
}

// passMark is a call that got through Bedrock's quota check: its place in
// flight, and the target's debits when it was granted.
type passMark struct {
	ok     bool
	seq    uint64
	debits float64
}

// climb is a limit's way back from a safe limit (low) toward the one that
// met a confirmed throttle (high), begun at from.
type climb struct {
	active    bool
	from      time.Time
	low, high float64
}

type counters struct {
	settled, cancelled, throttles, decreases, resyncs, tooLarge, noise, bursts int64
	class                                                                      [numClasses]ClassStats
}

func newLimiter(g *Governor, t Target, p policy, now time.Time) *limiter {
	m, _ := lookupModel(g.opts.Models, t.Model)
	l := &limiter{g: g, target: t, model: m, p: p, born: now,
		wmax: p.limit, ratio: 1, dev: startDev, settleFrac: 1,
		reply: newQuantile(replyQuantile), quick: newQuantile(1 - replyQuantile),
		perTok: newQuantile(replyQuantile), bigHold: newQuantile(holdQuantile),
		throttleLat: newQuantile(replyQuantile),
		reserved:    newWindow(), settled: newWindow(), offered: newWindow(), given: newWindow(),
		confirmed: newWindow(), noisy: newWindow()}
	open := Buckets{TokensPerMinute: p.limit, RequestsPerMinute: p.rpm}
	if !math.IsInf(p.limit, 1) {
		open.Tokens = p.limit // a full bucket
		if !g.opts.FullStart || p.hint {
			// Bedrock's bucket may be spent (another process used it
			// just now) or hold less than a minute: the Governor's
			// starts with startBurst of quota and warms up (see warm).
			open.Tokens = p.limit * startBurst.Minutes()
			l.warmGap = p.limit - open.Tokens
		}
		// Start on the CUBIC plateau: the limit holds, and a learning
		// limit probes upwards slowly at first.
		l.epoch = now.Add(-time.Duration(g.recovery * float64(time.Second)))
	}
	open.Requests = p.rpm // what Open makes, should the Store fail to tell
	l.view = open
	l.keep(open, g.store.Open(context.Background(), t, now, open))
	l.load(now)
	l.drains = l.view.Drains // earlier episodes are no one's now
	return l
}

func (l *limiter) tooLarge(est Estimate, class Class, input float64, maxTok int, hold float64) error {
	if hold <= l.p.ceil {
		return nil
	}
	l.n.tooLarge++
	return &Error{Target: l.target, Class: class, Reason: ErrTooLarge, Tokens: int64(hold),
		Input: int64(input), MaxTokens: int64(maxTok), Capacity: int64(l.p.ceil)}
}

// take grants a call that fits or may go anyway (a probe, a loan): it
// takes its tokens and request and returns its Ticket. ctx is the call's,
// whose deadline bounds the lease. A call granted on the room the view
// shows is taken only if the Store still has that room: otherwise take
// grants nothing, returns false, and l.view holds the buckets as they are.
func (l *limiter) take(ctx context.Context, est Estimate, class Class, input float64, maxTok int, hold float64, now time.Time) (Ticket, bool) {
	room := l.view.room(hold)
	probe := !room && l.probe(hold, now)
	owed := 0.0
	if probe {
		owed = max(hold-l.view.Tokens, 0) // what the bucket lacked for it
	}
	lease, ok := l.takeBuckets(hold, l.lease(ctx, hold, input, now), room, now)
	if !ok {
		return Ticket{}, false
	}
	l.inflight++
	l.inflightHold += hold
	l.lastGrant = now
	taken := l.taken
	l.taken += hold
	l.given.Add(now, hold)
	l.reserved.Add(now, hold)
	seq := l.flight.push(now, hold, l.debits)
	return Ticket{l: l, gen: l.gen, seq: seq, at: now, taken: taken, debits: l.debits, probe: probe, owed: owed, hold: hold, input: input, raw: est.InputTokens, max: maxTok, class: class, lease: lease}, true
}

func (l *limiter) queued() bool { return l.queues[Interactive].len() > 0 || l.queues[Batch].len() > 0 }

// settle ends a Ticket with its usage.
func (l *limiter) settle(t *Ticket, u Usage) {
	in, out := max(u.InputTokens, 0), max(u.OutputTokens, 0)
	cr, cw := max(u.CacheReadInputTokens, 0), max(u.CacheWriteInputTokens, 0)
	now := l.g.clk.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.load(now)
	known := in+cr+cw > 0
	charged := float64(in + cw)
	if !known {
		charged = t.input
	}
	cost := charged + math.Ceil(float64(out)*l.model.Burndown)
	l.end(t, t.hold-cost, 0, now)
	if floor := min(t.hold-cost, 0); t.probe && t.gen == l.gen && l.view.Tokens < floor {
		// A probe, sent without room, got through: Bedrock's bucket held
		// its hold when the Governor's owed, and owes now at most what
		// the probe cost beyond it. The debt it was granted under was the
		// Governor's own (a first limit read too low, the replies of a
		// burst counted against it) and is forgiven; debts taken on since
		// (by other processes sharing the Store) are not.
		l.keep(l.g.store.Give(context.Background(), l.target, now, min(floor-l.view.Tokens, t.owed), 0))
	}
	l.settledAfter(t.seq)
	l.settledTop.add(t.seq)
	if t.gen == l.gen {
		since := t.at.Add(l.throttleWait()) // it got through the quota check by then, or when it settled
		if since.After(now) {
			since = now
		}
		l.through(t.hold, since, now) // granted since the last confirmed throttle, and got through
	}
	l.taken -= t.hold - cost
	l.debits += max(cost-t.hold, 0)
	l.netBack += t.hold - cost
	if !l.pass.ok || t.seq > l.pass.seq {
		l.pass = passMark{ok: true, seq: t.seq, debits: t.debits}
	}
	l.given.Add(now, cost-t.hold)
	l.settled.Add(now, cost)
	l.n.settled++
	l.learnReply(t, now, out)
	l.learnInput(t, known, in+cr+cw, cost)
	l.warm(t, cost, now)
	l.grow(now, cost, t.seq)
	l.dispatch(now, true)
}

// end takes a Ticket out of flight, ends its lease and gives back refund
// tokens (taking them if negative) and requests.
func (l *limiter) end(t *Ticket, refund float64, requests int, now time.Time) {
	l.inflight--
	l.inflightHold -= t.hold
	l.flight.end(t.seq)
	if l.inflight == 0 {
		l.inflightHold = 0 // no drift
	}
	l.endLease(t, refund, requests, now)
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
	l.load(now)
	// A Ticket from before the last confirmed throttle may hold tokens that
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
	l.end(t, refund, 1, now) // Bedrock took no request for it either
	// Bedrock took nothing for it.
	l.taken -= t.hold
	l.given.Add(now, -t.hold)
}
