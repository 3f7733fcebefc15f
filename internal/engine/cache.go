package engine

// The cache stage, before the route: a call whose reply is stored is
// answered from the store; identical calls in flight share one upstream
// call (the leader's), so the quota governor, the breakers and the budget
// see it once; a complete successful reply is stored. docs/cache.md.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/cache"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
)

// CacheMode is one call's use of the response cache (WithCache).
type CacheMode int

// Cache modes of a call.
const (
	// CacheDefault: the configuration decides.
	CacheDefault CacheMode = iota
	// CacheBypass: the cache is neither read nor written, and the call
	// does not join identical calls in flight.
	CacheBypass
	// CacheRefresh: the cache is not read; the call goes upstream and its
	// reply replaces the stored one.
	CacheRefresh
)

type cacheModeKey struct{}

// WithCache returns a context whose calls use the response cache as m
// says.
func WithCache(ctx context.Context, m CacheMode) context.Context {
	return context.WithValue(ctx, cacheModeKey{}, m)
}

func cacheModeOf(ctx context.Context) CacheMode {
	m, _ := ctx.Value(cacheModeKey{}).(CacheMode)
	return m
}

// cacheStage is the engine's cache and the calls it coalesces.
type cacheStage struct {
	c       *cache.Cache
	flights cache.Group[*shared]

	mu      sync.Mutex
	streams map[cache.Key]*streamFlight // cache_stream.go
}

// shared is what a leader hands its followers: the reply (or, for a
// failure every identical request gets, the error response and the error).
type shared struct {
	ent  *cache.Entry // nil when the failure had no response
	fail *Error
}

// family returns the cache's operation family of op; "" for an operation
// never cached (CountTokens: counting is cheap, and not a reply). A stream
// is stored as the events its reader got, so streams are a family of their
// own: a stream is served from a stored stream, a reply from a stored
// reply.
func family(op attempt.Op) string {
	switch op {
	case attempt.Converse:
		return "converse"
	case attempt.ConverseStream:
		return "converse-stream"
	case attempt.Invoke:
		return "invoke"
	case attempt.InvokeWithResponseStream:
		return "invoke-stream"
	}
	return ""
}

// keyHeaders are the request headers that change an InvokeModel reply
// (Converse carries the same settings in its body): the guardrail, its
// trace, the latency profile, and the reply's content type (Accept for
// InvokeModel, X-Amzn-Bedrock-Accept for the chunks of its stream).
var keyHeaders = [...]string{"X-Amzn-Bedrock-Guardrailidentifier", "X-Amzn-Bedrock-Guardrailversion", "X-Amzn-Bedrock-Trace",
	"X-Amzn-Bedrock-Performanceconfig-Latency", "Accept", "X-Amzn-Bedrock-Accept"}

// cacheRequest is what the call is keyed by.
func (e *Engine) cacheRequest(call *Call) cache.Request {
	tier := cmp.Or(call.Tier, RequestTier(call.Op, call.Header, call.Body))
	if tier == "" && call.Priority == Batch {
		tier = e.opts.BatchTier
	}
	r := cache.Request{Family: family(call.Op), Model: call.Model, Tier: tier, Caller: call.Caller, Body: call.Body}
	for _, h := range keyHeaders {
		if v := call.Header.Get(h); v != "" {
			r.Header = append(r.Header, h, v)
		}
	}
	return r
}

// cached runs a call through the cache stage. done is false when the
// stage lets the call go its usual way (bypass): the request is not
// cacheable, or the call asked to bypass the cache. Otherwise resp and err
// are the call's, its outcome is recorded, and rep.Cache says how the cache
// served it.
func (e *Engine) cached(ctx context.Context, call *Call, rep *Report, start time.Time) (resp *http.Response, err error, done bool) {
	cs := e.cache
	mode := cacheModeOf(ctx)
	if mode == CacheBypass || family(call.Op) == "" {
		return e.bypass(rep)
	}
	key, ok := cs.c.Key(e.cacheRequest(call))
	if !ok {
		return e.bypass(rep)
	}
	if mode != CacheRefresh {
		ent, hit := cs.c.Get(ctx, key)
		if !hit {
			ent, hit = e.twin(ctx, call)
		}
		if hit {
			rep.Cache = string(cache.Hit)
			cs.c.Count(cache.Hit)
			e.admittedFromCache(call)
			e.served(ctx, call, rep, start, nil)
			if h := e.opts.OnStreamEnd; h != nil && call.Op.Streaming() {
				h(call, rep, nil)
			}
			return ent.Response(), nil, true
		}
	}
	rep.Cache = string(cache.Miss)
	if call.Op.Streaming() {
		return e.cachedStream(ctx, call, rep, start, key, mode)
	}
	lead := func() (*shared, error) {
		if mode != CacheRefresh {
			// Look again: the flight this call missed may have ended, and
			// stored its reply, between the lookup above and now.
			if ent, hit := cs.c.Get(ctx, key); hit {
				rep.Cache = string(cache.Hit)
				e.admittedFromCache(call)
				resp = ent.Response()
				return &shared{ent: ent}, nil
			}
		}
		resp, err = e.do(ctx, call, rep, nil, round{body: call.Body})
		sh := e.keep(ctx, call, rep, key, resp, err)
		if err == nil && sh.ent == nil {
			return sh, errNothingShared // the followers hand over
		}
		return sh, err
	}
	if mode == CacheRefresh {
		lead()
	} else if sh, ferr, role := cs.flights.Do(ctx, key.String(), lead, sameForAll); role == cache.Follower {
		rep.Cache = string(cache.Coalesced)
		e.admittedFromCache(call)
		resp, err = sh.reply(rep, ferr)
	}
	cs.c.Count(cache.Outcome(rep.Cache))
	e.served(ctx, call, rep, start, err)
	return resp, err, true
}

// served records the outcome of a call the cache stage ended.
func (e *Engine) served(ctx context.Context, call *Call, rep *Report, start time.Time, err error) {
	rep.Total = e.clk.Now().Sub(start)
	e.outcome(ctx, call, rep, err)
}

// CacheWaiting returns the calls waiting now for an identical call (or
// stream) in flight; 0 without a cache.
func (e *Engine) CacheWaiting() int {
	cs := e.cache
	if cs == nil {
		return 0
	}
	n := cs.flights.Waiting()
	cs.mu.Lock()
	for _, f := range cs.streams {
		n += f.readers - 1 // the leader's call reads too
	}
	cs.mu.Unlock()
	return n
}

func (e *Engine) bypass(rep *Report) (*http.Response, error, bool) {
	rep.Cache = string(cache.Bypass)
	e.cache.c.Count(cache.Bypass)
	return nil, nil, false
}

// admittedFromCache calls the call's OnAdmit hook for a call served
// without an attempt (a batch runner starts its next record then).
func (e *Engine) admittedFromCache(call *Call) {
	if call.OnAdmit != nil {
		call.OnAdmit()
	}
}

// errNothingShared ends a flight whose leader succeeded but has no reply to
// share (its body could not be read back): the followers hand over.
var errNothingShared = errors.New("engine: the coalesced call's reply could not be shared")

// sameForAll reports a failure every identical request would get: a
// validation error, which is about the body itself (not the caller's
// identity, nor a passing state of the service). A follower gets it rather
// than send the same bad request again.
func sameForAll(err error) bool {
	var ke *Error
	return errors.As(err, &ke) && ke.Entry != nil && ke.Entry.Category == catalog.Validation && ke.Entry.Retry == catalog.Never
}

// keep reads the leader's outcome into what its followers get, and stores
// the reply when it may be stored (storable). The leader's response keeps
// its body.
func (e *Engine) keep(ctx context.Context, call *Call, rep *Report, key cache.Key, resp *http.Response, err error) *shared {
	sh := &shared{}
	if err != nil {
		var ke *Error
		if !sameForAll(err) || !errors.As(err, &ke) {
			return sh
		}
		sh.fail = ke
	}
	if resp == nil {
		return sh
	}
	body, rerr := io.ReadAll(resp.Body) // in memory: read whole and bounded by send
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		return &shared{} // nothing to share; followers hand over
	}
	sh.ent = cache.NewEntry(resp.StatusCode, resp.Header, body, e.cache.c.Now())
	if err == nil && storable(call, rep, resp, body) {
		// The reply is stored even if the call's context ends now.
		e.cache.c.Put(context.WithoutCancel(ctx), key, sh.ent)
	}
	return sh
}

// storable reports whether a successful reply may be stored: a 2xx reply
// from the model the call named (not a fallback's: the call's model may
// answer again soon), not replaced by the content-filter message, and not
// blocked or cut by a filter or guardrail.
func storable(call *Call, rep *Report, resp *http.Response, body []byte) bool {
	return resp.StatusCode/100 == 2 && !rep.Degraded && rep.Target.Model == call.Model && !cache.Filtered(body)
}

// reply is a follower's response and error: the leader's reply, or its
// failure with the follower's own report; ferr is what the flight gave
// the follower (its context's error when it left before the leader ended).
func (sh *shared) reply(rep *Report, ferr error) (*http.Response, error) {
	if sh == nil {
		res := classify.FromError(ferr)
		return nil, &Error{Entry: res.Entry, Message: res.Message, Report: rep, Err: ferr,
			GaveUp: "the context ended while waiting for an identical call in flight"}
	}
	var resp *http.Response
	if sh.ent != nil {
		resp = sh.ent.Response()
	}
	if sh.fail == nil {
		return resp, nil
	}
	f := *sh.fail
	f.Report = rep
	return resp, &f
}

// twin looks up the call's twin: for a Converse call, the stored stream of
// the same request made by ConverseStream, and the reverse; for an
// Anthropic model's InvokeModel, its InvokeModelWithResponseStream, and
// the reverse. The stored one is converted, when the conversion carries
// all it holds (cache/convert.go, cache/convert_invoke.go).
func (e *Engine) twin(ctx context.Context, call *Call) (*cache.Entry, bool) {
	r := e.cacheRequest(call)
	switch call.Op {
	case attempt.Converse:
		r.Family = family(attempt.ConverseStream)
	case attempt.ConverseStream:
		r.Family = family(attempt.Converse)
	case attempt.Invoke, attempt.InvokeWithResponseStream:
		if !invokeTwins(call) {
			return nil, false
		}
		r.Family, r.Header = family(attempt.InvokeWithResponseStream), twinHeader(r.Header)
		if call.Op == attempt.InvokeWithResponseStream {
			r.Family = family(attempt.Invoke)
		}
	default:
		return nil, false
	}
	k, ok := e.cache.c.Key(r)
	if !ok {
		return nil, false
	}
	ent, hit := e.cache.c.Get(ctx, k)
	if !hit {
		return nil, false
	}
	var body []byte
	h := http.Header{"Content-Type": {"application/json"}}
	switch call.Op {
	case attempt.Converse:
		body, ok = cache.ConverseReplyFromStream(ent.Body)
	case attempt.ConverseStream:
		body, ok = cache.ConverseStreamFromReply(ent.Body)
		h.Set("Content-Type", eventStreamType)
	case attempt.Invoke:
		var mh http.Header
		if body, mh, ok = cache.AnthropicReplyFromStream(ent.Body); ok {
			for k, v := range mh {
				h[k] = v
			}
		}
	case attempt.InvokeWithResponseStream:
		body, ok = cache.AnthropicStreamFromReply(ent.Body, ent.Header)
		h.Set("Content-Type", eventStreamType)
	}
	if !ok {
		return nil, false
	}
	if id := ent.Header.Get("X-Amzn-Requestid"); id != "" {
		h.Set("X-Amzn-Requestid", id)
	}
	return &cache.Entry{Status: ent.Status, Header: h, Body: body, Stored: ent.Stored}, true
}

// eventStreamType is the Content-Type of a stream's reply.
const eventStreamType = "application/vnd.amazon.eventstream"

// invokeTwins reports whether an InvokeModel call and its stream may
// answer each other: an Anthropic model's, whose reply and stream keel
// converts, with a body in the Messages API's format and the reply in
// JSON (the default Accept) either way.
func invokeTwins(call *Call) bool {
	if !strings.HasPrefix(bedrock.BaseModelID(call.Model), "anthropic.") || !bytes.Contains(call.Body, []byte(`"anthropic_version"`)) {
		return false
	}
	accept := call.Header.Get("X-Amzn-Bedrock-Accept") // the stream's reply type
	if call.Op == attempt.Invoke {
		accept = call.Header.Get("Accept")
	}
	return accept == "" || accept == "application/json" || accept == "*/*"
}

// twinHeader returns the key headers h without the reply types asked for:
// the twin was stored for a call that asked for the default (an SDK sends
// no Accept for either operation), and this call asks for it too
// (invokeTwins).
func twinHeader(h []string) []string {
	out := make([]string, 0, len(h))
	for i := 0; i+1 < len(h); i += 2 {
		if h[i] != "Accept" && h[i] != "X-Amzn-Bedrock-Accept" {
			out = append(out, h[i], h[i+1])
		}
	}
	return out
}
