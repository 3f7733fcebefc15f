package admission

import "context"

// Test-only forms of the Governor's calls; production code has no use for
// them (issue 16: dead code used only by tests moves here).

// TryAdmit is Admit without the wait: it returns a Ticket and true when the
// call fits t's quota now and no call is queued ahead of it, and false
// otherwise, reserving nothing. It returns an *Error matching ErrTooLarge
// when the call can never fit.
func (g *Governor) TryAdmit(t Target, est Estimate, class Class) (Ticket, bool, error) {
	if g == nil {
		return Ticket{}, true, nil
	}
	if err := checkArgs(est, class); err != nil {
		return Ticket{}, false, err
	}
	l := g.limiter(t)
	if l == nil {
		return Ticket{}, true, nil
	}
	return l.tryAdmit(est, class)
}

// Throttled tells the Governor that Bedrock throttled a call to t that has
// no Ticket (one admitted by another process, say). Most callers use
// Ticket.Throttled instead. A throttle that arrives while t is paused after
// an earlier one is counted but changes nothing.
func (g *Governor) Throttled(t Target) {
	if g == nil {
		return
	}
	if l := g.limiter(t); l != nil {
		l.throttle(nil)
	}
}

// MaxTokens returns the max tokens the Ticket holds: the request's own, or
// the target model's maximum output when the request set none. A caller that
// sends a request without max tokens may set this value in it.
func (t *Ticket) MaxTokens() int { return t.max }

// LookupModel returns the built-in facts for a model id (a foundation model
// id, an inference profile id or an ARN), and whether an entry matched. An
// id no entry matches gets 8192 max output tokens and a burndown of 1; an
// application inference profile ARN, which does not name its model, is such
// an id, so list it in Options.Models.
func LookupModel(id string) (Model, bool) {
	return lookupModel(nil, id)
}

func (l *limiter) tryAdmit(est Estimate, class Class) (Ticket, bool, error) {
	now := l.g.clk.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.load(now)
	l.decideHeld(now) // as dispatch does
	input, maxTok, hold := l.size(est)
	l.offered.Add(now, hold)
	if err := l.tooLarge(est, class, input, maxTok, hold); err != nil {
		return Ticket{}, false, err
	}
	if l.queued() || !(l.fits(class, hold, now) || l.lend(class, hold, now)) {
		return Ticket{}, false, nil
	}
	tk, ok := l.take(context.Background(), est, class, input, maxTok, hold, now)
	if ok {
		l.n.class[class].Admitted++
	}
	return tk, ok, nil
}
