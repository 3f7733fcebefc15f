package engine

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/cache"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/retry"
	"github.com/keel-run/keel/internal/route"
)

// gatedUpstream answers in memory, each request after gate lets it (nil:
// at once), with the replies of script in order (the last repeats): "" is
// a Converse reply, "filtered" one blocked by a content filter, a catalog
// code that error.
type gatedUpstream struct {
	gate   chan struct{}
	script []string
	sent   atomic.Int32
	models sync.Map // model → requests
}

func (u *gatedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	n := int(u.sent.Add(1))
	model, _, _ := attempt.ParsePath(r.URL.EscapedPath())
	c, _ := u.models.LoadOrStore(model, new(atomic.Int32))
	c.(*atomic.Int32).Add(1)
	if u.gate != nil {
		select {
		case <-u.gate:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	what := ""
	if len(u.script) > 0 {
		what = u.script[min(n, len(u.script))-1]
	}
	h := http.Header{"Content-Type": {"application/json"}, "X-Amzn-Requestid": {fmt.Sprint("req-", n)}}
	status, body := 200, fmt.Sprintf(`{"output":{"message":{"role":"assistant","content":[{"text":"reply %d from %s"}]}},"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":5,"totalTokens":8}}`, n, model)
	switch what {
	case "":
	case "filtered":
		body = `{"output":{"message":{"role":"assistant","content":[]}},"stopReason":"content_filtered","usage":{"inputTokens":3,"outputTokens":0,"totalTokens":3}}`
	default:
		e := catalog.Must(what)
		h.Set("X-Amzn-ErrorType", e.WireCode())
		status, body = e.Status, fmt.Sprintf(`{"message":%q}`, e.DefaultMessage)
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

func (u *gatedUpstream) to(model string) int {
	c, ok := u.models.Load(model)
	if !ok {
		return 0
	}
	return int(c.(*atomic.Int32).Load())
}

const (
	coldBody = `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"temperature":0}}`
	// coldBody as another SDK writes it: other key order and spacing.
	coldBodyOther = `{ "inferenceConfig" : { "temperature" : 0 }, "messages" : [ { "content" : [ { "text" : "hi" } ], "role" : "user" } ] }`
	warmBody      = `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"temperature":0.7}}`
)

func newCachedEngine(t testing.TB, up *gatedUpstream, mode cache.Mode, mod func(*Options)) (*Engine, *cache.Cache) {
	t.Helper()
	c, err := cache.New(cache.Options{Mode: mode, Store: cache.NewMemory(1<<20, nil)})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("http://bedrock.test")
	opts := Options{Endpoints: attempt.FixedEndpoint{URL: u}, HTTPClient: &http.Client{Transport: up}, Cache: c,
		Retry: retry.Policy{MaxAttempts: 1}}
	if mod != nil {
		mod(&opts)
	}
	eng, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return eng, c
}

// do runs one Converse call and returns its body.
func do(ctx context.Context, eng *Engine, body string, model string) (string, *Report, error) {
	resp, rep, err := eng.Do(ctx, &Call{Op: attempt.Converse, Model: model, Body: []byte(body)})
	if resp == nil {
		return "", rep, err
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(resp.Body)
	return string(b), rep, errors.Join(err, rerr)
}

func TestCacheCoalescesThenHits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &gatedUpstream{gate: make(chan struct{})}
		gov, err := admission.New(admission.Options{Default: admission.Quota{TokensPerMinute: 1 << 30}})
		if err != nil {
			t.Fatal(err)
		}
		eng, c := newCachedEngine(t, up, cache.ModeDeterministic, func(o *Options) { o.Governor = gov })
		const n = 100
		bodies := make([]string, n)
		outcomes := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				b := coldBody
				if i%2 == 1 {
					b = coldBodyOther
				}
				var rep *Report
				var err error
				bodies[i], rep, err = do(t.Context(), eng, b, m1)
				if err != nil {
					t.Errorf("call %d: %v", i, err)
				}
				outcomes[i] = rep.Cache
			})
		}
		synctest.Wait() // all 100 in flight: one upstream, 99 waiting for it
		if got, waiting := up.sent.Load(), eng.CacheWaiting(); got != 1 || waiting != n-1 {
			t.Fatalf("%d upstream requests and %d calls waiting for it; want 1 and %d", got, waiting, n-1)
		}
		close(up.gate)
		wg.Wait()
		count := map[string]int{}
		for i := range n {
			count[outcomes[i]]++
			if bodies[i] != bodies[0] || !strings.Contains(bodies[0], "reply 1") {
				t.Fatalf("call %d got %q, call 0 %q", i, bodies[i], bodies[0])
			}
		}
		if count["miss"] != 1 || count["coalesced"] != n-1 {
			t.Errorf("outcomes %v; want 1 miss and %d coalesced", count, n-1)
		}
		st, _ := gov.Stats(attempt.Target{Model: m1, Region: "us-east-1"})
		if st.Settled != 1 {
			t.Errorf("the governor settled %d calls; want 1: followers are not charged", st.Settled)
		}
		// A rerun hits, whichever serialisation it sends.
		for _, b := range []string{coldBody, coldBodyOther} {
			got, rep, err := do(t.Context(), eng, b, m1)
			if err != nil || rep.Cache != "hit" || got != bodies[0] || rep.Sent() != 0 {
				t.Errorf("rerun: %q, cache %q, %d sent, %v; want a hit of the stored reply", got, rep.Cache, rep.Sent(), err)
			}
		}
		if got := up.sent.Load(); got != 1 {
			t.Errorf("%d upstream requests after the reruns; want 1", got)
		}
		if s := c.Stats(t.Context()); s.Hits != 2 || s.Misses != 1 || s.Coalesced != n-1 || s.Stored != 1 {
			t.Errorf("cache stats %+v", s)
		}
	})
}

func TestCacheStoresOnlyCompleteReplies(t *testing.T) {
	tests := []struct {
		name   string
		mode   cache.Mode
		script []string
		body   string
		call   func(*Call)
		mod    func(*Options)
		first  string // the first call's Report.Cache
		ok     bool   // the first call succeeds
	}{
		{name: "an error", mode: cache.ModeAll, script: []string{catalog.CodeInternalServer, ""}, body: coldBody, first: "miss"},
		{name: "a validation error", mode: cache.ModeAll, script: []string{catalog.CodeValidation, ""}, body: coldBody, first: "miss"},
		{name: "a filtered reply", mode: cache.ModeAll, script: []string{"filtered", ""}, body: coldBody, first: "miss", ok: true},
		{name: "a degraded reply", mode: cache.ModeAll, script: []string{"filtered", ""}, body: coldBody, first: "miss", ok: true,
			mod: func(o *Options) { o.ContentFilterMessage = "blocked" }},
		{name: "a body that is not JSON", mode: cache.ModeAll, body: "hi there", first: "bypass", ok: true},
		{name: "not deterministic", mode: cache.ModeDeterministic, body: warmBody, first: "bypass", ok: true},
		{name: "a fallback model's reply", mode: cache.ModeAll, script: []string{catalog.CodeInternalServer, ""}, body: coldBody, first: "miss", ok: true,
			mod: func(o *Options) {
				o.Routes = route.New("us-east-1", map[string][]attempt.Target{m1: {{Model: "other-model"}}})
			}},
		{name: "count tokens", mode: cache.ModeAll, body: coldBody, first: "bypass", ok: true,
			call: func(c *Call) { c.Op = attempt.CountTokens }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &gatedUpstream{script: tt.script}
			eng, c := newCachedEngine(t, up, tt.mode, tt.mod)
			for i := range 2 {
				call := &Call{Op: attempt.Converse, Model: m1, Body: []byte(tt.body)}
				if tt.call != nil {
					tt.call(call)
				}
				resp, rep, err := eng.Do(t.Context(), call)
				if resp != nil {
					resp.Body.Close()
				}
				if i == 0 && (rep.Cache != tt.first || (err == nil) != tt.ok) {
					t.Errorf("first call: cache %q, err %v; want %q, success %v", rep.Cache, err, tt.first, tt.ok)
				}
				if s := c.Stats(t.Context()); i == 0 && s.Stored != 0 {
					t.Errorf("the first call stored %d entries; want none", s.Stored)
				}
				if i == 1 && (rep.Cache == "hit" || rep.Sent() == 0) {
					t.Errorf("the second call was served from the cache: the first reply was stored")
				}
			}
		})
	}
}

func TestCacheCallModes(t *testing.T) {
	up := &gatedUpstream{}
	eng, _ := newCachedEngine(t, up, cache.ModeAll, nil)
	ctx := context.Background()
	steps := []struct {
		ctx      context.Context
		want     string
		upstream int32
		reply    string
	}{
		{ctx, "miss", 1, "reply 1"},
		{ctx, "hit", 1, "reply 1"},
		{WithCache(ctx, CacheBypass), "bypass", 2, "reply 2"},
		{ctx, "hit", 2, "reply 1"}, // a bypass stores nothing
		{WithCache(ctx, CacheRefresh), "miss", 3, "reply 3"},
		{ctx, "hit", 3, "reply 3"}, // a refresh replaced the entry
	}
	for i, s := range steps {
		got, rep, err := do(s.ctx, eng, coldBody, m1)
		if err != nil || rep.Cache != s.want || up.sent.Load() != s.upstream || !strings.Contains(got, s.reply) {
			t.Errorf("step %d: cache %q, %d upstream, %q, %v; want %q, %d, %q", i, rep.Cache, up.sent.Load(), got, err, s.want, s.upstream, s.reply)
		}
	}
}

func TestCacheLeaderFailureHandsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The first upstream request fails with a 500 (no retries): the
		// followers are not given it; one of them leads the next request.
		up := &gatedUpstream{gate: make(chan struct{}), script: []string{catalog.CodeInternalServer, ""}}
		eng, _ := newCachedEngine(t, up, cache.ModeAll, nil)
		errs := make([]error, 5)
		outcomes := make([]string, 5)
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				var rep *Report
				_, rep, errs[i] = do(t.Context(), eng, coldBody, m1)
				outcomes[i] = rep.Cache
			})
			synctest.Wait()
		}
		close(up.gate)
		wg.Wait()
		failed := 0
		for i, err := range errs {
			if err != nil {
				failed++
				if outcomes[i] != "miss" {
					t.Errorf("a failed call's outcome %q; want the leader's miss", outcomes[i])
				}
			}
		}
		if failed != 1 || up.sent.Load() != 2 {
			t.Errorf("%d calls failed, %d upstream requests; want 1 (the first leader) and 2", failed, up.sent.Load())
		}
	})
}

func TestCacheFollowerLeavesAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &gatedUpstream{gate: make(chan struct{})}
		eng, _ := newCachedEngine(t, up, cache.ModeAll, nil)
		leader := make(chan error)
		go func() { _, _, err := do(t.Context(), eng, coldBody, m1); leader <- err }()
		synctest.Wait()
		ctx, cancel := context.WithCancel(t.Context())
		left := make(chan error)
		go func() {
			_, rep, err := do(ctx, eng, coldBody, m1)
			if rep.Cache != "coalesced" {
				t.Errorf("the follower's outcome %q", rep.Cache)
			}
			left <- err
		}()
		synctest.Wait()
		cancel()
		var ke *Error
		if err := <-left; !errors.Is(err, context.Canceled) || !errors.As(err, &ke) || ke.Entry.Code != catalog.CodeContextCanceled {
			t.Errorf("the follower that left: %v", err)
		}
		close(up.gate)
		if err := <-leader; err != nil {
			t.Errorf("the leader failed when a follower left: %v", err)
		}
	})
}

// BenchmarkCacheHit measures a Converse call answered from the memory
// store, against the same call with the cache off (a canned upstream, no
// network): the hit path's cost is the key (canonical JSON, SHA-256), the
// store's lookup, the entry's decoding and the response built from it.
func BenchmarkCacheHit(b *testing.B) {
	prompt := strings.Repeat("a long prompt of some words ", 100) // about 2.8 KB
	body := `{"messages":[{"role":"user","content":[{"text":"` + prompt + `"}]}],"inferenceConfig":{"temperature":0,"maxTokens":512}}`
	for _, bc := range []struct {
		name string
		mode cache.Mode
	}{{"hit", cache.ModeDeterministic}, {"no-cache", cache.ModeOff}} {
		b.Run(bc.name, func(b *testing.B) {
			eng, _ := newCachedEngine(b, &gatedUpstream{}, bc.mode, nil)
			call := &Call{Op: attempt.Converse, Model: m1, Body: []byte(body)}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				resp, _, err := eng.Do(ctx, call)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

func TestCacheStreams(t *testing.T) {
	for _, tt := range []struct {
		name   string
		op     attempt.Op
		model  string
		body   []byte
		invoke bool
	}{
		{"converse stream", attempt.ConverseStream, haiku3, []byte(`{"messages":[{"role":"user","content":[{"text":"tell me of keels"}]}],"inferenceConfig":{"maxTokens":60,"temperature":0}}`), false},
		{"invoke stream", attempt.InvokeWithResponseStream, haiku3, []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":60,"temperature":0,"messages":[{"role":"user","content":"tell me of keels"}]}`), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The first reply stalls after its first content, so the reader
			// that leaves early leaves a stream that could never complete
			// (a fast complete one would be stored: it is not partial).
			em := startEmu(t, func(n int) fault.Plan {
				if n == 0 {
					return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall, After: 8}}
				}
				return fault.Plan{}
			})
			c, err := cache.New(cache.Options{Mode: cache.ModeDeterministic, Store: cache.NewMemory(1<<20, nil)})
			if err != nil {
				t.Fatal(err)
			}
			eng, _ := newStreamEngine(t, em.rn.URL, func(o *Options) { o.Cache = c })
			read := func(close bool) (decoded, *Report) {
				resp, rep, err := streamCall(t.Context(), eng, tt.op, tt.model, tt.body)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if close { // the reader leaves after the first bytes
					resp.Body.Read(make([]byte, 10))
					return decoded{}, rep
				}
				return readAll(t, resp.Body, tt.invoke), rep
			}
			if _, rep := read(true); rep.Cache != "miss" {
				t.Errorf("first call: %q", rep.Cache)
			}
			first, rep := read(false)
			if rep.Cache != "miss" || first.err != nil || first.text == "" {
				t.Fatalf("second call (the first was closed early, so not stored): %q, %v, %q", rep.Cache, first.err, first.text)
			}
			again, rep := read(false)
			if rep.Cache != "hit" || rep.Sent() != 0 || again.text != first.text || strings.Join(again.types(), ",") != strings.Join(first.types(), ",") {
				t.Errorf("rerun: %q, %d sent, %q %v; want a hit replaying %q %v", rep.Cache, rep.Sent(), again.text, again.types(), first.text, first.types())
			}
			if got := em.n.Load(); got != 2 {
				t.Errorf("the emulator served %d requests; want 2", got)
			}
			// A Converse call is served from the stored ConverseStream
			// (TestCacheConverseTwins), an Anthropic InvokeModel call from
			// the stored InvokeModelWithResponseStream: no request more.
			unary := attempt.Converse
			if tt.invoke {
				unary = attempt.Invoke
			}
			resp, rep2, err := eng.Do(t.Context(), &Call{Op: unary, Model: tt.model, Body: tt.body})
			if err != nil || rep2.Cache != "hit" {
				t.Fatalf("the non-stream call: %v, %q; want a hit", err, rep2.Cache)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			quoted, _ := json.Marshal(first.text) // as the reply's JSON writes it
			if !bytes.Contains(body, quoted[1:len(quoted)-1]) || em.n.Load() != 2 {
				t.Errorf("the non-stream call's reply %s (the emulator served %d); want the stream's text %q", body, em.n.Load(), first.text)
			}
		})
	}
}

// TestCacheStreamFollowers: identical stream calls that arrive while the
// first is in flight join it; the first call's reader leaving early cuts
// no one: the stream goes on for the others, and is stored at its end.
func TestCacheStreamFollowers(t *testing.T) {
	release := make(chan struct{})
	em := startEmu(t, func(n int) fault.Plan {
		if n == 0 {
			<-release
		}
		return fault.Plan{}
	})
	c, err := cache.New(cache.Options{Mode: cache.ModeAll, Store: cache.NewMemory(1<<20, nil)})
	if err != nil {
		t.Fatal(err)
	}
	eng, _ := newStreamEngine(t, em.rn.URL, func(o *Options) { o.Cache = c })
	body := converseBody("tell me of keels", 60)
	type result struct {
		d   decoded
		rep *Report
	}
	const followers = 5
	results := make(chan result, followers+1)
	call := func(closeEarly bool) {
		resp, rep, err := streamCall(t.Context(), eng, attempt.ConverseStream, haiku3, body)
		if err != nil {
			t.Error(err)
			results <- result{}
			return
		}
		defer resp.Body.Close()
		if closeEarly {
			resp.Body.Read(make([]byte, 10))
			results <- result{rep: rep}
			return
		}
		results <- result{readAll(t, resp.Body, false), rep}
	}
	go call(true) // the leader: its reader leaves early
	for em.n.Load() == 0 {
		time.Sleep(time.Millisecond) // until the leader's request reached the emulator
	}
	for range followers {
		go call(false)
	}
	for eng.CacheWaiting() < followers {
		time.Sleep(time.Millisecond)
	}
	close(release)
	count := map[string]int{}
	var text string
	for range followers + 1 {
		r := <-results
		if r.rep == nil {
			t.Fatal("a call failed")
		}
		count[r.rep.Cache]++
		if r.rep.Cache == "coalesced" && (r.d.err != nil || r.d.text == "" || text != "" && r.d.text != text) {
			t.Errorf("a follower read %q, %v (another %q)", r.d.text, r.d.err, text)
		}
		text = cmp.Or(text, r.d.text)
	}
	if count["miss"] != 1 || count["coalesced"] != followers || em.n.Load() != 1 {
		t.Errorf("outcomes %v, %d upstream requests; want 1 miss, %d coalesced, 1 request", count, em.n.Load(), followers)
	}
	resp, rep, err := streamCall(t.Context(), eng, attempt.ConverseStream, haiku3, body)
	if err != nil || rep.Cache != "hit" {
		t.Fatalf("after the flight: %v, %q; want a hit of the stored stream", err, rep.Cache)
	}
	if d := readAll(t, resp.Body, false); d.text != text {
		t.Errorf("the stored stream reads %q, the followers got %q", d.text, text)
	}
	resp.Body.Close()
}

// pipeUpstream answers every request with a ConverseStream body the test
// writes into, counting the requests.
type pipeUpstream struct {
	body *io.PipeReader
	sent atomic.Int32
}

func (u *pipeUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	u.sent.Add(1)
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/vnd.amazon.eventstream"}},
		Body: u.body, ContentLength: -1, Request: r}, nil
}

// collector reads a body to its end in the background.
type collector struct {
	mu   sync.Mutex
	got  []byte
	err  error
	done chan struct{}
}

func collect(r io.Reader) *collector {
	c := &collector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		buf := make([]byte, 64)
		for {
			n, err := r.Read(buf)
			c.mu.Lock()
			c.got = append(c.got, buf[:n]...)
			c.mu.Unlock()
			if err != nil {
				c.err = err
				return
			}
		}
	}()
	return c
}

func (c *collector) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// TestCacheStreamFollowersLive: a follower that joins a stream in flight
// gets the events so far at once, then each next one as it arrives, not
// only once the stream has ended.
func TestCacheStreamFollowersLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pr, pw := io.Pipe()
		up := &pipeUpstream{body: pr}
		eng, _ := newCachedEngine(t, &gatedUpstream{}, cache.ModeAll, func(o *Options) {
			o.HTTPClient = &http.Client{Transport: up}
		})
		frames := fakeConverse(t, "one ", "two ", "three").frames(0)
		body := []byte(coldBody)
		leader := make(chan *collector)
		go func() {
			resp, _, err := eng.Do(t.Context(), &Call{Op: attempt.ConverseStream, Model: m1, Body: body})
			if err != nil {
				t.Error(err)
				close(leader)
				return
			}
			leader <- collect(resp.Body)
		}()
		pw.Write(frames[0]) // messageStart
		pw.Write(frames[1]) // the first content: the leader's call returns
		lc := <-leader
		resp, rep, err := eng.Do(t.Context(), &Call{Op: attempt.ConverseStream, Model: m1, Body: body})
		if err != nil || rep.Cache != "coalesced" {
			t.Fatalf("the follower: %v, %q", err, rep.Cache)
		}
		fc := collect(resp.Body)
		synctest.Wait()
		so := bytes.Join(frames[:2], nil)
		if got := fc.bytes(); !bytes.Equal(got, so) {
			t.Fatalf("the follower has %d bytes before the stream goes on; want the %d so far", len(got), len(so))
		}
		pw.Write(frames[2])
		synctest.Wait()
		if got := fc.bytes(); !bytes.Equal(got, bytes.Join(frames[:3], nil)) {
			t.Errorf("the follower did not get the next event live: %d bytes", len(got))
		}
		for _, f := range frames[3:] {
			pw.Write(f)
		}
		pw.Close()
		<-lc.done
		<-fc.done
		all := bytes.Join(frames, nil)
		if !bytes.Equal(lc.bytes(), all) || !bytes.Equal(fc.bytes(), all) || lc.err != io.EOF || fc.err != io.EOF {
			t.Errorf("leader %d bytes (%v), follower %d (%v); want all %d, each ending with EOF", len(lc.bytes()), lc.err, len(fc.bytes()), fc.err, len(all))
		}
		if up.sent.Load() != 1 {
			t.Errorf("%d upstream requests; want 1", up.sent.Load())
		}
	})
}

// TestCacheConverseTwins: a Converse call is served from the stored
// ConverseStream of the same request, and the reverse.
func TestCacheConverseTwins(t *testing.T) {
	for _, first := range []attempt.Op{attempt.ConverseStream, attempt.Converse} {
		t.Run(string(first), func(t *testing.T) {
			em := startEmu(t, nil)
			c, err := cache.New(cache.Options{Mode: cache.ModeDeterministic, Store: cache.NewMemory(1<<20, nil)})
			if err != nil {
				t.Fatal(err)
			}
			eng, _ := newStreamEngine(t, em.rn.URL, func(o *Options) { o.Cache = c })
			body := []byte(`{"messages":[{"role":"user","content":[{"text":"tell me of keels"}]}],"inferenceConfig":{"maxTokens":60,"temperature":0}}`)
			text := func(op attempt.Op) (string, *Report) {
				resp, rep, err := eng.Do(t.Context(), &Call{Op: op, Model: haiku3, Body: body})
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if op.Streaming() {
					return readAll(t, resp.Body, false).text, rep
				}
				var out struct {
					Output struct {
						Message struct{ Content []struct{ Text string } }
					}
				}
				if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Output.Message.Content) == 0 {
					t.Fatalf("the reply does not decode: %v", err)
				}
				return out.Output.Message.Content[0].Text, rep
			}
			second := attempt.Converse
			if first == attempt.Converse {
				second = attempt.ConverseStream
			}
			t1, rep1 := text(first)
			t2, rep2 := text(second)
			if rep1.Cache != "miss" || rep2.Cache != "hit" || t1 == "" || t2 != t1 || em.n.Load() != 1 {
				t.Errorf("%s then %s: %q (%s), %q (%s), %d requests; want one reply, a miss then a hit, 1 request",
					first, second, t1, rep1.Cache, t2, rep2.Cache, em.n.Load())
			}
		})
	}
}

func TestInvokeTwins(t *testing.T) {
	anthropic := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[]}`)
	tests := []struct {
		name   string
		op     attempt.Op
		model  string
		body   []byte
		header http.Header
		want   bool
	}{
		{"Anthropic reply", attempt.Invoke, "anthropic.claude-3-haiku-20240307-v1:0", anthropic, http.Header{}, true},
		{"Anthropic stream through a profile", attempt.InvokeWithResponseStream, "us.anthropic.claude-sonnet-4-5-20250929-v1:0", anthropic, http.Header{}, true},
		{"JSON asked for", attempt.Invoke, "anthropic.claude-3-haiku-20240307-v1:0", anthropic, http.Header{"Accept": {"application/json"}}, true},
		{"another reply type", attempt.Invoke, "anthropic.claude-3-haiku-20240307-v1:0", anthropic, http.Header{"Accept": {"text/plain"}}, false},
		{"another chunk type", attempt.InvokeWithResponseStream, "anthropic.claude-3-haiku-20240307-v1:0", anthropic, http.Header{"X-Amzn-Bedrock-Accept": {"text/plain"}}, false},
		{"a Llama model", attempt.Invoke, "meta.llama3-1-8b-instruct-v1:0", []byte(`{"prompt":"hi"}`), http.Header{}, false},
		{"an Anthropic model, another body format", attempt.Invoke, "anthropic.claude-v2", []byte(`{"prompt":"\n\nHuman: hi\n\nAssistant:"}`), http.Header{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := invokeTwins(&Call{Op: tt.op, Model: tt.model, Body: tt.body, Header: tt.header}); got != tt.want {
				t.Errorf("invokeTwins = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTwinHeader(t *testing.T) {
	got := twinHeader([]string{"X-Amzn-Bedrock-Trace", "ENABLED", "Accept", "application/json", "X-Amzn-Bedrock-Accept", "*/*"})
	if want := []string{"X-Amzn-Bedrock-Trace", "ENABLED"}; !slices.Equal(got, want) {
		t.Errorf("twinHeader = %q, want %q", got, want)
	}
}
