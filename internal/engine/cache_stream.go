package engine

// Streams through the cache stage. A stream that misses the store is read
// by a pump, on a context of its own, into a buffer every identical call
// in flight reads from: the call that started it (the leader) and the
// calls that joined it (followers) each get every event from the start,
// then live, at their own pace. The upstream stream is cancelled only when
// every reader has left. A stream that ends cleanly is stored as its
// events and replayed to later calls.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/cache"
	"github.com/keel-run/keel/internal/stream"
)

// pumpChunk is the pump's read size: a few events of a typical stream.
const pumpChunk = 16 << 10

// streamFlight is one upstream stream shared by identical calls.
type streamFlight struct {
	started chan struct{} // closed once the stream has its first content
	done    chan struct{} // closed when the flight ends (or failed to start)
	cancel  context.CancelFunc
	readers int // calls attached (the leader's included), under cacheStage.mu
	gone    bool

	// Set before started or done is closed.
	status   int
	header   http.Header
	startRep *Report        // the leader's report at the first content
	failResp *http.Response // the leader's, when the stream failed to start
	failErr  error
	failRep  *Report
	mu       sync.Mutex
	buf      []byte        // every byte of the stream so far
	end      error         // io.EOF or the failure, once the stream has ended
	endRep   *Report       // the leader's report at the end
	more     chan struct{} // closed at each change of buf or end, then replaced
}

// cachedStream runs a stream call that missed the store: it starts the
// stream for its key, or joins the one in flight, and reads it through a
// followBody. When the stream in flight fails before its first content,
// its followers try again, one of them starting a new one.
func (e *Engine) cachedStream(ctx context.Context, call *Call, rep *Report, start time.Time, key cache.Key, mode CacheMode) (*http.Response, error, bool) {
	cs := e.cache
	for {
		f, lead := cs.joinStream(key, mode)
		if lead {
			cs.c.Count(cache.Miss)
			go e.pump(ctx, call, start, key, f)
		}
		select {
		case <-f.started:
		case <-f.done:
		case <-ctx.Done():
			cs.leave(key, f)
			if !lead {
				rep.Cache = string(cache.Coalesced)
			}
			_, err := (*shared)(nil).reply(rep, context.Cause(ctx))
			e.served(ctx, call, rep, start, err)
			return nil, err, true
		}
		select {
		case <-f.started:
		default: // it failed before its first content
			cs.leave(key, f)
			if lead {
				*rep = *f.failRep
				return f.failResp, f.failErr, true
			}
			if ent, hit := cs.c.Get(ctx, key); hit {
				rep.Cache = string(cache.Hit)
				cs.c.Count(cache.Hit)
				e.served(ctx, call, rep, start, nil)
				return ent.Response(), nil, true
			}
			continue
		}
		if lead {
			*rep = *f.startRep
		} else {
			rep.Cache = string(cache.Coalesced)
			cs.c.Count(cache.Coalesced)
			e.admittedFromCache(call)
			e.served(ctx, call, rep, start, nil)
		}
		resp := &http.Response{Status: strconv.Itoa(f.status) + " " + http.StatusText(f.status), StatusCode: f.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: f.header.Clone(), ContentLength: -1,
			Body: &followBody{cs: cs, key: key, f: f, ctx: ctx, rep: rep, lead: lead}}
		return resp, nil, true
	}
}

// joinStream attaches the call to the stream in flight for key, or starts
// one that the call leads. A refresh always starts its own, unshared.
func (cs *cacheStage) joinStream(key cache.Key, mode CacheMode) (f *streamFlight, lead bool) {
	f = &streamFlight{started: make(chan struct{}), done: make(chan struct{}), more: make(chan struct{}), readers: 1}
	if mode == CacheRefresh {
		return f, true
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cur, ok := cs.streams[key]; ok {
		cur.readers++
		return cur, false
	}
	if cs.streams == nil {
		cs.streams = map[cache.Key]*streamFlight{}
	}
	cs.streams[key] = f
	return f, true
}

// leave detaches one reader from f. The last one to leave a stream that
// has not ended cancels it, and no call joins it any more.
func (cs *cacheStage) leave(key cache.Key, f *streamFlight) {
	cs.mu.Lock()
	f.readers--
	last := f.readers == 0 && !f.gone
	if last {
		f.gone = true
		if cs.streams[key] == f {
			delete(cs.streams, key)
		}
	}
	cancel := f.cancel
	cs.mu.Unlock()
	if last && cancel != nil {
		cancel()
	}
}

// finish takes f out of the flights: calls that come later look the store
// up, or start a stream of their own.
func (cs *cacheStage) finish(key cache.Key, f *streamFlight) {
	cs.mu.Lock()
	f.gone = true
	if cs.streams[key] == f {
		delete(cs.streams, key)
	}
	cs.mu.Unlock()
}

// pump runs the stream of flight f on a context of its own (the leader's
// values, not its end: the stream ends when its last reader leaves), and
// reads it into f's buffer until it ends. A stream that ends cleanly and
// may be stored is.
func (e *Engine) pump(ctx context.Context, call *Call, start time.Time, key cache.Key, f *streamFlight) {
	cs := e.cache
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	cs.mu.Lock()
	f.cancel = cancel
	gone := f.gone
	cs.mu.Unlock()
	if gone { // every reader left before the pump began
		cancel()
	}
	frep := &Report{Cache: string(cache.Miss)}
	resp, _, err := e.doStream(sctx, call, frep, start)
	if err != nil {
		f.failResp, f.failErr, f.failRep = resp, err, frep
		cs.finish(key, f)
		close(f.done)
		return
	}
	f.status, f.header, f.startRep = resp.StatusCode, resp.Header, frep.clone()
	close(f.started)
	var rerr error
	chunk := make([]byte, pumpChunk)
	for rerr == nil {
		var n int
		n, rerr = resp.Body.Read(chunk)
		f.mu.Lock()
		f.buf = append(f.buf, chunk[:n]...)
		f.mu.Unlock()
		if rerr != nil {
			// Stored, and out of the flights, before any reader hears of
			// the end: a call its reader makes next finds the entry.
			// (Only the pump writes buf; reading it here needs no lock.)
			resp.Body.Close()
			if rerr == io.EOF && int64(len(f.buf)) <= e.opts.MaxResponseBytes && storableStream(call, frep, f.buf) {
				cs.c.Put(context.WithoutCancel(ctx), key, cache.NewEntry(resp.StatusCode, resp.Header, f.buf, cs.c.Now()))
			}
			cs.finish(key, f)
		}
		f.mu.Lock()
		if rerr != nil {
			f.end, f.endRep = rerr, frep.clone()
		}
		close(f.more)
		f.more = make(chan struct{})
		f.mu.Unlock()
	}
	close(f.done)
}

// clone copies the report, its attempts apart from the original's.
func (r *Report) clone() *Report {
	c := *r
	c.Attempts = slices.Clone(r.Attempts)
	return &c
}

// followBody is one call's reader of a shared stream: every byte from the
// start, then each as the pump reads it. Read returns what the stream
// ended with (io.EOF, or its failure) once the reader has every byte, and
// the call's context's error if it ends first. Close detaches the reader.
type followBody struct {
	cs   *cacheStage
	key  cache.Key
	f    *streamFlight
	ctx  context.Context
	rep  *Report
	lead bool // the leader's report follows the stream's
	off  int
	left sync.Once
}

func (b *followBody) Read(p []byte) (int, error) {
	f := b.f
	for {
		f.mu.Lock()
		if b.off < len(f.buf) {
			n := copy(p, f.buf[b.off:])
			b.off += n
			f.mu.Unlock()
			return n, nil
		}
		if end := f.end; end != nil {
			if b.lead {
				*b.rep = *f.endRep
			}
			f.mu.Unlock()
			b.leave()
			return 0, end
		}
		more := f.more
		f.mu.Unlock()
		select {
		case <-more:
		case <-b.ctx.Done():
			b.leave()
			return 0, context.Cause(b.ctx)
		}
	}
}

func (b *followBody) Close() error {
	b.leave()
	return nil
}

func (b *followBody) leave() { b.left.Do(func() { b.cs.leave(b.key, b.f) }) }

// storableStream reports whether a stream that ended cleanly may be
// stored: not resumed (a continuation's reply is spliced, not one draw of
// the model), from the model the call named, and with no event saying a
// filter or guardrail stopped it.
func storableStream(call *Call, rep *Report, buf []byte) bool {
	if rep.Resumes > 0 || rep.Target.Model != call.Model {
		return false
	}
	format := stream.Converse
	if call.Op == attempt.InvokeWithResponseStream {
		format = stream.Invoke
	}
	fr := stream.NewReader(bytes.NewReader(buf))
	defer fr.Release()
	var p stream.Parser
	for {
		f, err := fr.Next()
		if err == io.EOF {
			return true
		}
		if err != nil || !f.IsEvent() {
			return false
		}
		payload := f.Payload
		if format == stream.Invoke {
			if ev := p.Parse(format, &f); ev.Unparsed {
				return false
			}
			payload = p.Inner()
		}
		if cache.EventFiltered(payload) {
			return false
		}
	}
}
