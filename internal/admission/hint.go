package admission

// Hint makes tokensPerMinute the first guess of t's limit, for a target
// whose quota is unknown (none configured in Options, none discovered or
// set) and that the Governor has not seen yet: t then starts as a quota told
// with Learn would, from a bucket holding startBurst of it and warming up
// (even with FullStart: the bucket an earlier process used may be spent),
// and goes on learning from there (Stats.Source reports "learned"). A limit
// an earlier process learned on the same work is such a guess: keel batch
// run keeps its learned limits in its state file and hints them when it
// resumes, so that a resumed run does not learn its quota again from
// nothing. A configured or discovered quota wins over a hint, and so does
// a first guess configured with Learn (Options.Default or Targets); a
// target already seen, or configured in Targets (made by New), keeps what
// it has. Hint does nothing when tokensPerMinute is not positive.
func (g *Governor) Hint(t Target, tokensPerMinute int) {
	if g == nil || tokensPerMinute <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, seen := (*g.targets.Load())[t]; seen {
		return
	}
	if g.hints == nil {
		g.hints = map[Target]int{}
	}
	g.hints[t] = tokensPerMinute
}

// hinted returns q with t's hint as its first guess, and true, when t has
// one and q tells no quota. g.mu must be held.
func (g *Governor) hinted(t Target, q Quota) (Quota, bool) {
	h, ok := g.hints[t]
	if !ok || q.TokensPerMinute > 0 {
		return q, false
	}
	delete(g.hints, t) // used once: the limiter keeps what it learns
	if q.MaxTokensPerMinute > 0 {
		h = min(h, q.MaxTokensPerMinute)
	}
	q.TokensPerMinute, q.Learn = max(h, q.MinTokensPerMinute), true
	return q, true
}
