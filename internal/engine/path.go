package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/retry"
)

// The engine's path, one stage a method of pass:
//
//	route → adapt the body → admit → pass the breaker → spend the budget → send → classify → decide
//
// A pass is one walk over a call's route (the call, or the continuation of a
// broken stream); do runs it.

// verdict is what a stage decides.
type verdict int

const (
	goOn   verdict = iota // the next stage
	again                 // retry on the same target
	next                  // the route's next target
	finish                // the call ends: resp and err say how
)

// pass is the state of one walk over a route, shared by its stages.
type pass struct {
	e    *Engine
	ctx  context.Context
	call *Call
	rep  *Report
	sb   *streamBody // nil unless streaming
	rd   round
	// wait is ctx for the waits before an attempt is sent, also ended when
	// the call's Stop is closed (stop.go); endWait releases it.
	wait    context.Context
	endWait func()

	targets  []attempt.Target
	ad       adapted // the body for the current target (adapt.go)
	governed bool
	// ownTier is the service tier the request names ("" for none).
	ownTier string
	est     admission.Estimate
	req     *attempt.Request
	onAdmit func()

	last     *Error
	lastResp *http.Response
	sent     int
	// by bounds the next admission's wait: set for the retry of a throttled
	// attempt, whose backoff the governor's pacing replaces.
	by time.Time
	// free exempts the next target's first attempt from the retry budget:
	// it follows an attempt that timed out. The budget stops retry storms,
	// and a hung target cannot make one: each of its calls reaches the next
	// target only after a whole attempt timeout, and goes elsewhere.
	free bool

	// The current target.
	ti      int
	t       attempt.Target
	br      *breaker.Breaker
	delay   time.Duration // the wait before the next attempt
	charged bool          // the budget already paid for the next attempt, or need not
	n       int           // the attempt's number on this target, from 1
}

// try is one attempt in the making.
type try struct {
	tk       admission.Ticket
	governed bool // the quota governor admitted it (the ticket forgets once ended)
	permit   breaker.Permit
	a        Attempt
	resp     *http.Response
	body     []byte // a non-streaming reply, read whole
	res      classify.Result
	ok       bool
	err      error
	firm     bool // a timeout here says the target is unhealthy
}

// route checks the call and lays out its targets.
func (e *Engine) route(ctx context.Context, call *Call, rep *Report, sb *streamBody, rd round) (*pass, error) {
	if !call.Op.Valid() {
		return nil, fmt.Errorf("engine: unknown operation %q", call.Op)
	}
	if call.Model == "" {
		return nil, errors.New("engine: call has no model id")
	}
	if call.Priority != Interactive && call.Priority != Batch {
		return nil, fmt.Errorf("engine: unknown priority %d", call.Priority)
	}
	if call.Tier != "" && !bedrock.ValidTier(call.Tier) {
		return nil, fmt.Errorf("engine: unknown service tier %q; want one of %s", call.Tier, strings.Join(bedrock.Tiers(), ", "))
	}
	own := RequestTier(call.Op, call.Header, rd.body)
	tier := cmp.Or(call.Tier, own)
	if tier == "" && call.Priority == Batch {
		tier = e.opts.BatchTier
	}
	p := &pass{e: e, ctx: ctx, call: call, rep: rep, sb: sb, rd: rd, ownTier: own, governed: e.governs(call.Op),
		targets: e.routes.TargetsFor(call.Op, call.Model, call.Region, tier, call.Priority.String())}
	// A body that is not JSON still gets a cautious estimate; Bedrock will
	// say what is wrong with it. Its max tokens also pick the attempt
	// timeout's class.
	p.est, _ = admission.EstimateBody(rd.body)
	if !rd.resume {
		p.onAdmit = call.OnAdmit
	}
	p.req = &attempt.Request{Op: call.Op, Body: rd.body, Header: call.Header, Endpoints: call.Endpoints, Credentials: call.Credentials}
	if e.opts.Credentials != nil || call.Credentials != nil {
		p.req.BodySHA256 = attempt.PayloadHash(rd.body)
	}
	if e.budget != nil && !rd.resume {
		e.budget.RequestContext(ctx)
	}
	p.wait, p.endWait = p.waitContext()
	return p, nil
}

// admitted calls the call's OnAdmit hook, once.
func (p *pass) admitted() {
	if p.onAdmit != nil {
		p.onAdmit()
		p.onAdmit = nil
	}
}

// enter moves to target ti.
func (p *pass) enter(ti int) {
	p.ti, p.t = ti, p.targets[ti]
	if ti > 0 {
		p.rep.Fallbacks++
	}
	p.br = nil
	if p.e.breakers != nil {
		p.br = p.e.breakers.GetTier(p.t.Model, p.t.Region, p.t.Tier)
	}
	p.delay = 0
	if ti == 0 {
		p.delay = p.rd.delay
	}
	p.charged, p.free = p.free, false
}

// attempt runs the stages of one attempt on the current target.
func (p *pass) attempt() (verdict, *http.Response, error) {
	if p.stopped() {
		return p.stop("before its attempt was sent"), p.lastResp, p.failure()
	}
	var tr try
	for _, stage := range [...]func(*try) verdict{p.adapt, p.admit, p.passBreaker, p.spend, p.send} {
		if v := stage(&tr); v != goOn {
			return v, p.lastResp, p.failure()
		}
	}
	if tr.ok {
		resp, err := p.succeed(&tr)
		return finish, resp, err
	}
	p.classify(&tr)
	v := p.decide(&tr)
	return v, p.lastResp, p.failure()
}

// failure is the call's error so far (nil, not a nil *Error, when none).
func (p *pass) failure() error {
	if p.last == nil {
		return nil
	}
	return p.last
}

// admit waits for room in the target's quota, or is refused.
func (p *pass) admit(tr *try) verdict {
	e := p.e
	if !p.governed {
		p.admitted()
		return goOn
	}
	start := e.clk.Now()
	tk, err := e.gov.AdmitBy(p.wait, p.t, p.est, p.call.Priority, p.by)
	p.admitted()
	retried := !p.by.IsZero()
	p.by = time.Time{}
	if err == nil {
		tr.tk = tk
		e.admitted(&tr.tk, p.t, p.call.Priority)
		return goOn
	}
	if p.stopped() {
		return p.stop("while it waited for quota")
	}
	qe, ended := e.quotaRefusal(p.ctx, err, p.t, p.rep, retried)
	waited := e.clk.Now().Sub(start)
	p.rep.Attempts = append(p.rep.Attempts, Attempt{Target: p.t, Start: start, Skipped: true, Code: qe.Entry.Code,
		Delay: p.delay + waited, QuotaWait: waited, Resume: p.rd.resume})
	p.rep.Target = p.t
	e.noteError(p.t, qe.Entry.Code)
	e.logRefusal(p.ctx, p.call, p.t, p.n, qe)
	if ended && qe.Entry.Category != catalog.Quota && p.last != nil {
		// The caller gave up while the call waited: the last upstream
		// failure stands.
		p.last = contextEnded(p.last, err, "the context ended while waiting for quota")
		return finish
	}
	p.last = qe
	if ended {
		return finish
	}
	e.fallbackMetric(p.t, "quota")
	return next // its quota is its own
}

// passBreaker asks the target's circuit breaker; an open one skips the
// target.
func (p *pass) passBreaker(tr *try) verdict {
	if p.br == nil {
		return goOn
	}
	permit, err := p.br.AllowContext(p.ctx)
	if err == nil {
		tr.permit = permit
		return goOn
	}
	tr.tk.Cancel()
	p.rep.Attempts = append(p.rep.Attempts, Attempt{Target: p.t, Start: p.e.clk.Now(), Skipped: true, Code: catalog.CodeCircuitOpen})
	p.e.noteError(p.t, catalog.CodeCircuitOpen)
	if p.last == nil {
		p.last = p.e.openError(err, p.t, p.rep)
	}
	p.e.fallbackMetric(p.t, "breaker-open")
	return next
}

// spend pays the shared retry budget for a retry or fallback (a call's
// first attempt is free), unless it was paid already.
func (p *pass) spend(tr *try) verdict {
	if p.sent == 0 || p.charged {
		p.charged = false
		return goOn
	}
	if err := p.e.spend(p.ctx, p.call, p.t, p.n, p.last); err != nil {
		tr.permit.Cancel()
		tr.tk.Cancel()
		p.last = budgetSpent(p.last, err)
		return finish
	}
	return goOn
}

// spend takes one retry from the shared budget. When it is spent, it
// returns the budget's *ExhaustedError (counted and logged).
func (e *Engine) spend(ctx context.Context, call *Call, t attempt.Target, n int, last *Error) error {
	if e.budget == nil {
		return nil
	}
	err := e.budget.AcquireContext(ctx)
	if err == nil {
		return nil
	}
	if e.m != nil {
		e.m.BudgetRejections.Inc()
	}
	e.logf(ctx, slog.LevelWarn, "retry budget exhausted", call, t, n, last)
	return err
}

// send signs and sends the attempt and reads its reply (a stream's up to
// its first content), within the attempt's timeout.
func (p *pass) send(tr *try) verdict {
	e := p.e
	if p.lastResp != nil {
		p.lastResp.Body.Close()
		p.lastResp = nil
	}
	p.req.Target = p.t
	p.useTier()
	qwait := tr.tk.Waited()
	tr.a = Attempt{Target: p.t, Delay: p.delay + qwait, QuotaWait: qwait, QuotaTokens: tr.tk.Tokens(), Start: e.clk.Now(), Resume: p.rd.resume,
		Adaptations: p.ad.changes}
	tr.firm, tr.governed = true, tr.tk.Governed()
	if p.sb != nil {
		tr.resp, tr.res, tr.ok, tr.err = p.sb.attempt(p.ctx, p.req, &tr.a, len(p.rep.Attempts))
	} else {
		var left time.Duration
		if d, ok := p.ctx.Deadline(); ok {
			left = time.Until(d)
		}
		var timeout time.Duration
		timeout, tr.firm = e.replies.timeout(p.t.Model, p.est.MaxTokens, p.est.InputTokens, left, p.ti < len(p.targets)-1)
		tr.resp, tr.body, tr.res, tr.ok, tr.err = e.send(p.ctx, p.req, &tr.a, timeout)
		if tr.ok && p.call.Op != attempt.CountTokens { // counting says nothing of replies' time
			e.replies.observe(p.t.Model, p.est.MaxTokens, tr.a.Duration)
		}
	}
	p.sent++
	return goOn
}

// succeed ends the call with the attempt's reply.
func (p *pass) succeed(tr *try) (*http.Response, error) {
	e := p.e
	tr.permit.DoneContext(p.ctx, breaker.Success)
	if p.sb != nil {
		p.sb.src.tk = tr.tk // settled when the stream ends or breaks
	} else if tr.governed {
		settleResponse(tr.resp, tr.body, tr.tk)
	}
	p.rep.Attempts = append(p.rep.Attempts, tr.a)
	p.rep.Target = p.t
	e.attemptMetric(&tr.a)
	e.logAttempt(p.ctx, p.call, &tr.a, p.n, nil)
	if e.opts.ContentFilterMessage != "" && p.call.Op == attempt.Converse {
		return e.degrade(tr.resp, p.rep)
	}
	return tr.resp, nil
}

// classify records a failed attempt under its catalog entry: the quota
// ticket, the breaker, the report, the metrics and logs.
func (p *pass) classify(tr *try) {
	e, entry := p.e, tr.res.Entry
	endFailed(&tr.tk, entry, tr.a.Usage, tr.a.Status)
	tr.permit.DoneContext(p.ctx, breakerOutcome(entry, tr.firm))
	tr.a.Code = entry.Code
	p.rep.Attempts = append(p.rep.Attempts, tr.a)
	p.rep.Target = p.t
	e.attemptMetric(&tr.a)
	p.last = &Error{Entry: entry, Code: tr.res.Code, Status: tr.res.Status, Message: tr.res.Message, RequestID: tr.res.RequestID, Report: p.rep, Err: tr.err}
	if tr.resp != nil {
		p.lastResp = tr.resp
	}
	e.logAttempt(p.ctx, p.call, &tr.a, p.n, entry)
}

// breakerOutcome is what a failed attempt under entry tells the target's
// breaker. firm is false for an attempt timeout that says nothing of the
// target's health (a deadline shorter than a healthy reply takes).
//
// A quota refusal (ThrottlingException, a bare 429, ServiceQuotaExceeded;
// keel's own quota refusals never reach a target) is Responsive: the target
// answered, so it ends a run of consecutive failures without counting as a
// success. A throttle storm brings a few 5xx among hundreds of throttles;
// counted as "in a row" they opened the breaker and stopped all sending for
// a whole cool-down (docs/policies.md). Caller mistakes (validation, access,
// auth) stay Ignored: they are each record's own, and a batch of bad
// records must not blunt the consecutive-failures rule for a target that
// goes down meanwhile.
func breakerOutcome(entry *catalog.Entry, firm bool) breaker.Outcome {
	switch {
	case entry.Unhealthy && (firm || entry.Code != catalog.CodeAttemptTimeout):
		return breaker.Failure
	case entry.Category == catalog.Quota:
		return breaker.Responsive
	}
	return breaker.Ignored
}

// decide retries the failed attempt on its target after a backoff, moves to
// the route's next target, or ends the call, as the catalog entry and the
// retry policy say.
func (p *pass) decide(tr *try) verdict {
	e, entry := p.e, tr.res.Entry
	if err := p.ctx.Err(); err != nil {
		p.last = contextEnded(p.last, err, "the context ended during the attempt")
		return finish
	}
	d := e.opts.Retry.Decide(p.n, entry, tr.res.RetryAfter, e.opts.Rand)
	if entry.Code == catalog.CodeAttemptTimeout && p.ti < len(p.targets)-1 {
		// A hung target costs a whole timeout per attempt, far more than a
		// 503: try the route's next target rather than wait on this one
		// again.
		d.Retry, p.free = false, true
	}
	if d.Retry && tr.governed && entry.Retry == catalog.Throttled && e.limited(p.t) {
		// The governor paces this retry: the target is paused after the
		// throttle and the retry waits its turn in the shrunk limit, so the
		// policy's throttle backoff is not added to it. A Retry-After hint
		// is still honoured; the wait for quota is bounded by the backoff's
		// own ceiling. (While the governor has no limit for the target yet,
		// only its pause holds the retry, and the jittered backoff spreads
		// the burst as it always did.)
		d.Delay = e.retryAfterFloor(tr.res.RetryAfter)
		p.by = e.clk.Now().Add(d.Delay + e.throttleCap())
	}
	if !d.Retry {
		// Not retried here (or retries used up): a route's next target may
		// serve it when the entry says so — not found, access denied, a
		// model error or an unfinished Marketplace agreement are about this
		// model here, not about the request.
		if entry.Retry == catalog.Fallback || entry.FallbackOK {
			e.fallbackMetric(p.t, string(entry.Retry))
			return next
		}
		return finish // never retried, nowhere else to go
	}
	// Charge the budget before waiting: when it is spent, fail now rather
	// than after a backoff that leads nowhere.
	if err := e.spend(p.ctx, p.call, p.t, p.n, p.last); err != nil {
		p.last = budgetSpent(p.last, err)
		return finish
	}
	p.charged = true
	// Wait is given no last error: last is what the caller gets, and it
	// wraps the wait's error, so a WaitError holding last would make the
	// chain a loop that errors.Is never leaves.
	if err := retry.Wait(p.wait, e.clk, d.Delay, nil); err != nil {
		if p.stopped() {
			return p.stop("while it waited to retry")
		}
		if !errors.Is(err, retry.ErrDeadline) {
			p.last = contextEnded(p.last, err, "the context ended while waiting to retry")
			return finish
		}
		p.last.Err = errors.Join(p.last.Err, err)
		p.last.GaveUp = "the next wait would cross the deadline"
		return finish
	}
	p.delay = d.Delay
	if e.m != nil {
		e.m.Retries.WithLabelValues(e.models.label(p.t.Model), e.regions.label(p.t.Region), string(entry.Retry)).Inc()
	}
	return again
}
