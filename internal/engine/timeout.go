package engine

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// Per-attempt timeouts of non-streaming calls. Bedrock answers a Converse
// or InvokeModel call only when the whole reply is generated, so the time
// an attempt may take grows with its output: keel learns, per model and per
// class of max tokens, how long healthy replies take, and times an attempt
// out after a multiple of that. docs/policies.md has the measurements.
const (
	// attemptTimeoutMultiple times the p99 of similar replies is the
	// learned timeout: the p99 is already the slow tail, so a healthy reply
	// is cut only when it is several times slower than any recent one.
	attemptTimeoutMultiple = 4
	// DefaultAttemptTimeoutFloor is the shortest learned timeout: a history
	// of fast replies (a few hundred ms) must not cut a healthy reply that
	// a GC pause, a cold connection or a busy region makes slower.
	DefaultAttemptTimeoutFloor = 10 * time.Second
	// DefaultAttemptTimeoutCeiling is the longest: transport's
	// ResponseHeaderTimeout, which follows AWS's advice of up to 60 minutes
	// for long Claude replies.
	DefaultAttemptTimeoutCeiling = 60 * time.Minute
	// Before replySamplesMin replies of a class have been seen, the
	// timeout is priorBase plus priorPerToken per max token: 20 output
	// tokens a second, slower than any model Bedrock serves generates, on
	// top of a generous time to the first token.
	priorBase     = 30 * time.Second
	priorPerToken = 50 * time.Millisecond
	// perInputToken is added for each input token, learned or not: a
	// prefill of 5,000 tokens a second, so that a long prompt is not cut by
	// a history of short ones (200K tokens: 40 s more).
	perInputToken = 200 * time.Microsecond
	// replySamples replies are kept per model and class (the most recent);
	// replySamplesMin of them make a learned timeout.
	replySamples    = 128
	replySamplesMin = 8
	// attemptShare is the share of the time left before the caller's
	// deadline that an attempt with targets after it in the route may take
	// (never less than the p99 of similar replies): a hung target leaves
	// time for the next one instead of taking the whole deadline.
	attemptShare = 0.5
)

// replyTimes learns how long healthy non-streaming replies take. It is safe
// for concurrent use. The zero value is not usable; use newReplyTimes.
type replyTimes struct {
	mu      sync.Mutex
	fixed   time.Duration // >0: every attempt gets this timeout
	floor   time.Duration
	ceiling time.Duration
	classes map[replyClass]*replyRing
}

// replyClass groups calls of one model whose max tokens are of the same
// order: powers of 4 (≤256, ≤1024, ≤4096, ...); class 0 holds calls that
// set no max tokens, which is never learned: their replies may be as long
// as the model allows, so short ones say nothing of the next.
type replyClass struct {
	model string
	size  int
}

type replyRing struct {
	d    [replySamples]time.Duration
	n    int           // samples written, ever
	p99  time.Duration // of the samples when n was p99n
	p99n int
}

func newReplyTimes(fixed time.Duration) *replyTimes {
	return &replyTimes{fixed: fixed, floor: DefaultAttemptTimeoutFloor, ceiling: DefaultAttemptTimeoutCeiling,
		classes: map[replyClass]*replyRing{}}
}

func classOf(model string, maxTokens int) replyClass {
	if maxTokens <= 0 {
		return replyClass{model: model}
	}
	return replyClass{model: model, size: 1 + (bits.Len(uint(maxTokens-1))+1)/2}
}

// observe records a healthy reply's duration.
func (r *replyTimes) observe(model string, maxTokens int, d time.Duration) {
	if r.fixed > 0 || d < 0 || maxTokens <= 0 {
		return
	}
	c := classOf(model, maxTokens)
	r.mu.Lock()
	defer r.mu.Unlock()
	ring := r.classes[c]
	if ring == nil {
		if len(r.classes) >= maxReplyClasses {
			// Many distinct model ids (each call naming a new ARN): forget
			// the history rather than grow without bound.
			clear(r.classes)
		}
		ring = &replyRing{}
		r.classes[c] = ring
	}
	ring.d[ring.n%replySamples] = d
	ring.n++
}

// maxReplyClasses bounds the classes kept: far more than the models and
// size classes one process calls.
const maxReplyClasses = 4096

// p99 returns the 99th percentile of the class's recent replies, and
// whether there are enough of them.
func (r *replyTimes) p99(c replyClass) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ring := r.classes[c]
	if ring == nil || ring.n < replySamplesMin {
		return 0, false
	}
	n := min(ring.n, replySamples)
	if ring.p99n != ring.n {
		// Recomputed only when a reply was added since, which under load
		// is every call: the 99th percentile of at most replySamples is
		// among the largest two, found in one pass rather than a sort.
		ring.p99 = kthLargest(ring.d[:n], n-int(math.Ceil(0.99*float64(n)))+1)
		ring.p99n = ring.n
	}
	return ring.p99, true
}

// kthLargest returns the k-th largest of d (k from 1 to len(d)), in one
// pass keeping the k largest seen in order: k is 1 or 2 for a p99 of
// replySamples, so this costs a comparison or two per sample.
func kthLargest(d []time.Duration, k int) time.Duration {
	var buf [4]time.Duration
	top := buf[:0] // descending
	if k > len(buf) {
		top = make([]time.Duration, 0, k)
	}
	for _, v := range d {
		if len(top) == k {
			if v <= top[k-1] {
				continue
			}
			top = top[:k-1]
		}
		i := len(top)
		top = append(top, v)
		for ; i > 0 && top[i-1] < v; i-- {
			top[i] = top[i-1]
		}
		top[i] = v
	}
	return top[k-1]
}

// timeout returns the timeout of an attempt of model with maxTokens (0:
// unset) and an input of about inputTokens. left is the time before the
// caller's deadline (0: none) and more reports that the route has targets
// after this one. firm is false when the deadline share cut the timeout
// below a prior, which is no evidence that the target is slow: an attempt
// cut there says nothing of the target's health.
func (r *replyTimes) timeout(model string, maxTokens, inputTokens int, left time.Duration, more bool) (to time.Duration, firm bool) {
	if r.fixed > 0 {
		return r.fixed, true
	}
	p, learned := r.p99(classOf(model, maxTokens))
	switch {
	case learned:
		to = attemptTimeoutMultiple * p
	case maxTokens > 0:
		to = priorBase + time.Duration(maxTokens)*priorPerToken
	default:
		to = r.ceiling
	}
	to += time.Duration(max(inputTokens, 0)) * perInputToken
	to = min(max(to, r.floor), r.ceiling)
	if more && left > 0 {
		if shared := max(time.Duration(float64(left)*attemptShare), p); shared < to {
			return shared, learned
		}
	}
	return to, true
}
