package hostile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"go.uber.org/goleak"

	"github.com/keel-run/keel/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// onBoth runs f against a Server on a 127.0.0.1 socket and against a Pipe
// inside a synctest bubble.
func onBoth(t *testing.T, f func(t *testing.T, start func(http.Handler) *Server)) {
	t.Run("socket", func(t *testing.T) { f(t, Listen) })
	t.Run("pipe", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) { f(t, Pipe) })
	})
}

// exchange is what a client saw of one call.
type exchange struct {
	resp *http.Response // nil when the call failed before the headers
	err  error          // from the call or from reading the body
	n    int64          // body bytes read
	took time.Duration  // from sending to the end of the body
}

// call sends a Converse (or, with stream, a ConverseStream) request to s and
// reads the reply to its end, counting bytes without keeping them, unless
// keep is set, in which case the body is kept in body.
func call(ctx context.Context, c *http.Client, url string, stream bool, body *bytes.Buffer) exchange {
	op := "converse"
	if stream {
		op = "converse-stream"
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/model/anthropic.claude-3-haiku-20240307-v1:0/"+op,
		strings.NewReader(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	var x exchange
	x.resp, x.err = c.Do(req)
	if x.err == nil {
		var w io.Writer = io.Discard
		if body != nil {
			w = body
		}
		x.n, x.err = io.Copy(w, x.resp.Body)
		x.resp.Body.Close()
	}
	x.took = time.Since(start)
	return x
}

func noRedirects(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// TestModes checks what a client sees of every mode, on both operations.
func TestModes(t *testing.T) {
	tests := []struct {
		name   string
		o      Options
		stream bool
		check  func(t *testing.T, x exchange, o Options)
	}{
		{name: "ok", o: Options{}, check: func(t *testing.T, x exchange, _ Options) {
			wantOK(t, x, "application/json")
			if x.n != DefaultSize {
				t.Errorf("body is %d bytes, want %d", x.n, DefaultSize)
			}
		}},
		{name: "ok stream", o: Options{}, stream: true, check: func(t *testing.T, x exchange, _ Options) {
			wantOK(t, x, "application/vnd.amazon.eventstream")
		}},
		{name: "truncate", o: Options{Mode: Truncate}, check: func(t *testing.T, x exchange, _ Options) {
			wantCut(t, x, io.ErrUnexpectedEOF, DefaultSize/2)
			if got := x.resp.ContentLength; got != DefaultSize {
				t.Errorf("Content-Length %d, want the whole body's %d", got, DefaultSize)
			}
		}},
		{name: "truncate after", o: Options{Mode: Truncate, After: 10}, check: func(t *testing.T, x exchange, _ Options) {
			wantCut(t, x, io.ErrUnexpectedEOF, 10)
		}},
		{name: "truncate stream", o: Options{Mode: Truncate, After: 100}, stream: true, check: func(t *testing.T, x exchange, _ Options) {
			wantCut(t, x, io.ErrUnexpectedEOF, 100)
		}},
		{name: "reset", o: Options{Mode: Reset, After: 100}, check: func(t *testing.T, x exchange, _ Options) {
			wantCut(t, x, syscall.ECONNRESET, -1) // a reset may take unread bytes with it
		}},
		{name: "reset stream", o: Options{Mode: Reset}, stream: true, check: func(t *testing.T, x exchange, _ Options) {
			wantCut(t, x, syscall.ECONNRESET, -1)
		}},
		{name: "huge body", o: Options{Mode: HugeBody, Size: 8 << 20}, check: func(t *testing.T, x exchange, o Options) {
			wantOK(t, x, "application/json")
			if x.n != o.Size || x.resp.ContentLength != o.Size {
				t.Errorf("body is %d bytes (Content-Length %d), want %d", x.n, x.resp.ContentLength, o.Size)
			}
		}},
		{name: "redirect", o: Options{Mode: Redirect, Status: http.StatusTemporaryRedirect, Location: "http://127.0.0.1:1/elsewhere"},
			check: func(t *testing.T, x exchange, o Options) {
				if x.err != nil {
					t.Fatal(x.err)
				}
				if x.resp.StatusCode != o.Status || x.resp.Header.Get("Location") != o.Location {
					t.Errorf("got %d to %q, want %d to %q", x.resp.StatusCode, x.resp.Header.Get("Location"), o.Status, o.Location)
				}
			}},
		{name: "redirect default", o: Options{Mode: Redirect}, stream: true, check: func(t *testing.T, x exchange, _ Options) {
			if x.err != nil {
				t.Fatal(x.err)
			}
			if x.resp.StatusCode != http.StatusFound || x.resp.Header.Get("Location") != DefaultLocation {
				t.Errorf("got %d to %q, want 302 to %q", x.resp.StatusCode, x.resp.Header.Get("Location"), DefaultLocation)
			}
		}},
		{name: "html error", o: Options{Mode: HTMLError, Status: http.StatusGatewayTimeout}, stream: true, check: func(t *testing.T, x exchange, _ Options) {
			if x.err != nil {
				t.Fatal(x.err)
			}
			if x.resp.StatusCode != 504 || x.resp.Header.Get("Content-Type") != "text/html" || x.n == 0 {
				t.Errorf("got %d %q with %d bytes, want a 504 text/html page", x.resp.StatusCode, x.resp.Header.Get("Content-Type"), x.n)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			onBoth(t, func(t *testing.T, start func(http.Handler) *Server) {
				s := start(Handler(tt.o))
				defer s.Close()
				tt.check(t, call(t.Context(), noRedirects(s.Client()), s.URL, tt.stream, nil), tt.o)
			})
		})
	}
}

func wantOK(t *testing.T, x exchange, contentType string) {
	t.Helper()
	if x.err != nil {
		t.Fatal(x.err)
	}
	if x.resp.StatusCode != 200 || x.resp.Header.Get("Content-Type") != contentType {
		t.Errorf("got %d %q, want 200 %q", x.resp.StatusCode, x.resp.Header.Get("Content-Type"), contentType)
	}
}

// wantCut checks that the reply was cut with the error want after n body
// bytes (any number, before or after the headers, when n < 0).
func wantCut(t *testing.T, x exchange, want error, n int64) {
	t.Helper()
	if !errors.Is(x.err, want) {
		t.Fatalf("got error %v, want %v", x.err, want)
	}
	if n < 0 {
		return
	}
	if x.resp == nil || x.resp.StatusCode != 200 || x.n != n {
		t.Errorf("got %+v after %d bytes, want 200 and %d bytes", x.resp, x.n, n)
	}
}

// TestHang checks that a Hang holds until the caller's deadline, sending
// nothing, and that in a bubble it takes exactly that much bubble time.
func TestHang(t *testing.T) {
	onBoth(t, func(t *testing.T, start func(http.Handler) *Server) {
		for _, stream := range []bool{false, true} {
			s := start(Handler(Options{Mode: Hang}))
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			x := call(ctx, s.Client(), s.URL, stream, nil)
			cancel()
			s.Close()
			if !errors.Is(x.err, context.DeadlineExceeded) || x.resp != nil {
				t.Fatalf("got %+v, %v; want no reply and %v", x.resp, x.err, context.DeadlineExceeded)
			}
			if inBubble(t) && x.took != 50*time.Millisecond {
				t.Errorf("the hang took %v of bubble time, want 50ms", x.took)
			}
		}
	})
}

// inBubble reports whether the test runs in a synctest bubble (its name
// says so: onBoth's "pipe").
func inBubble(t *testing.T) bool { return strings.Contains(t.Name(), "/pipe") }

// TestCloseEndsHang checks that closing the server ends a Hang in flight and
// leaves no goroutine behind (TestMain's goleak).
func TestCloseEndsHang(t *testing.T) {
	onBoth(t, func(t *testing.T, start func(http.Handler) *Server) {
		arrived := make(chan struct{})
		hang := Handler(Options{Mode: Hang})
		s := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			hang.ServeHTTP(w, r)
		}))
		done := make(chan exchange)
		go func() { done <- call(context.Background(), s.Client(), s.URL, false, nil) }()
		<-arrived
		s.Close()
		if x := <-done; x.err == nil {
			t.Fatalf("got %+v, want an error", x.resp)
		}
	})
}

// TestHTTPTest checks the recipe the package documentation gives for a
// plain httptest.Server.
func TestHTTPTest(t *testing.T) {
	s := httptest.NewServer(Handler(Options{Mode: Hang}))
	defer s.Close()
	defer s.CloseClientConnections()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if x := call(ctx, s.Client(), s.URL, false, nil); !errors.Is(x.err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want %v", x.err, context.DeadlineExceeded)
	}
}

// TestDrip checks that a Drip sends a valid reply at its pace: headers at
// once, then Chunk bytes per Interval, taking exactly its bubble time.
func TestDrip(t *testing.T) {
	for _, stream := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			o := Options{Mode: Drip, Chunk: 16, Interval: time.Second}
			s := Pipe(Handler(o))
			defer s.Close()
			var body bytes.Buffer
			x := call(t.Context(), s.Client(), s.URL, stream, &body)
			if x.err != nil {
				t.Fatal(x.err)
			}
			ticks := (x.n + 15) / 16
			if x.took != time.Duration(ticks)*time.Second {
				t.Errorf("%d bytes took %v, want %d intervals of 1s", x.n, x.took, ticks)
			}
			if stream {
				checkStream(t, &body, DefaultEvents, DefaultEventSize)
			} else {
				checkReply(t, body.Bytes(), DefaultSize)
			}
		})
	}
}

// TestDripClientLeaves checks that a Drip stops when its client gives up.
func TestDripClientLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := Pipe(Handler(Options{Mode: Drip, Interval: time.Minute}))
		defer s.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 150*time.Second)
		defer cancel()
		x := call(ctx, s.Client(), s.URL, false, nil)
		if !errors.Is(x.err, context.DeadlineExceeded) || x.n != 2 {
			t.Fatalf("got %d bytes and %v, want 2 and %v", x.n, x.err, context.DeadlineExceeded)
		}
	})
}

// TestOKReply checks that the replies are what Bedrock sends: a Converse
// JSON document and a ConverseStream of well-formed events.
func TestOKReply(t *testing.T) {
	onBoth(t, func(t *testing.T, start func(http.Handler) *Server) {
		for _, size := range []int64{MinSize, DefaultSize, 1000, 100_000} {
			s := start(Handler(Options{Size: size}))
			var body bytes.Buffer
			x := call(t.Context(), s.Client(), s.URL, false, &body)
			s.Close()
			wantOK(t, x, "application/json")
			checkReply(t, body.Bytes(), size)
		}
		for _, ev := range []struct{ n, size int }{{1, MinEventSize}, {DefaultEvents, DefaultEventSize}, {5, 100_000}} {
			s := start(Handler(Options{Events: ev.n, EventSize: ev.size}))
			var body bytes.Buffer
			x := call(t.Context(), s.Client(), s.URL, true, &body)
			s.Close()
			wantOK(t, x, "application/vnd.amazon.eventstream")
			checkStream(t, &body, ev.n, ev.size)
		}
	})
}

// checkReply checks that b is a Converse reply of size bytes.
func checkReply(t *testing.T, b []byte, size int64) {
	t.Helper()
	var r struct {
		Output struct {
			Message struct {
				Role    string
				Content []struct{ Text string }
			}
		}
		StopReason string
		Usage      struct{ InputTokens, OutputTokens, TotalTokens int }
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply of %d bytes: %v", len(b), err)
	}
	m := r.Output.Message
	if int64(len(b)) != size || m.Role != "assistant" || len(m.Content) != 1 || m.Content[0].Text == "" ||
		r.StopReason != "end_turn" || r.Usage.TotalTokens != r.Usage.InputTokens+r.Usage.OutputTokens {
		t.Errorf("reply of %d bytes (want %d): %.200s", len(b), size, b)
	}
}

// checkStream decodes a ConverseStream from r, one frame at a time, and
// checks its events: messageStart, n contentBlockDelta events with payloads
// of size bytes, contentBlockStop, messageStop, metadata.
func checkStream(t *testing.T, r io.Reader, n, size int) {
	t.Helper()
	dec := eventstream.NewDecoder()
	var buf []byte
	var got []string
	deltas := 0
	for i := 0; ; i++ {
		m, err := dec.Decode(r, buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		buf = m.Payload[:0]
		typ := m.Headers.Get(":event-type").String()
		if m.Headers.Get(":message-type").String() != "event" || m.Headers.Get(":content-type").String() != "application/json" || !json.Valid(m.Payload) {
			t.Fatalf("event %d: headers %v, payload %.100q", i, m.Headers, m.Payload)
		}
		if typ == "contentBlockDelta" && len(m.Payload) != size {
			t.Fatalf("event %d: payload of %d bytes, want %d", i, len(m.Payload), size)
		}
		if typ == "contentBlockDelta" {
			deltas++
			if deltas > 1 {
				continue // the deltas show once in got
			}
		}
		got = append(got, typ)
	}
	want := "messageStart contentBlockDelta contentBlockStop messageStop metadata"
	if strings.Join(got, " ") != want || deltas != n {
		t.Errorf("got events %v with %d deltas, want %s with %d", got, deltas, want, n)
	}
}

// TestHugeStream reads a stream of many events one frame at a time.
func TestHugeStream(t *testing.T) {
	onBoth(t, func(t *testing.T, start func(http.Handler) *Server) {
		for _, mode := range []Mode{HugeStream, HugeBody} {
			o := Options{Mode: mode, Events: 200, EventSize: 20_000}
			s := start(Handler(o))
			resp, err := s.Client().Post(s.URL+"/model/m/converse-stream", "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			checkStream(t, resp.Body, o.Events, o.EventSize)
			resp.Body.Close()
			s.Close()
		}
	})
}

// TestSequence checks that a Plan answers in turn and counts.
func TestSequence(t *testing.T) {
	onBoth(t, func(t *testing.T, start func(http.Handler) *Server) {
		p := Sequence(Options{Mode: HTMLError, Status: 503}, Options{Mode: Truncate}, Options{})
		s := start(p)
		defer s.Close()
		var got []string
		for range 4 {
			x := call(t.Context(), s.Client(), s.URL, false, nil)
			switch {
			case x.resp == nil:
				got = append(got, "failed")
			case x.err != nil:
				got = append(got, "cut")
			default:
				got = append(got, x.resp.Status)
			}
		}
		if want := "503 Service Unavailable,cut,200 OK,200 OK"; strings.Join(got, ",") != want {
			t.Errorf("got %v, want %s", got, want)
		}
		if p.Requests() != 4 {
			t.Errorf("Requests() = %d, want 4", p.Requests())
		}
	})
}

// TestByRegion checks routing by the SigV4 credential scope.
func TestByRegion(t *testing.T) {
	east, west := Sequence(Options{Mode: HTMLError}), Sequence(Options{})
	h := ByRegion(map[string]http.Handler{"us-east-1": east, "us-west-2": west})
	for _, tt := range []struct {
		name, auth string
		status     int
	}{
		{"east", "AWS4-HMAC-SHA256 Credential=AKID/20261203/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00", 502},
		{"west", "AWS4-HMAC-SHA256 Credential=AKID/20261203/us-west-2/bedrock/aws4_request,SignedHeaders=host,Signature=00", 200},
		{"other region", "AWS4-HMAC-SHA256 Credential=AKID/20261203/eu-west-1/bedrock/aws4_request, SignedHeaders=host", 421},
		{"unsigned", "", 421},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/model/m/converse", nil)
			r.Header.Set("Authorization", tt.auth)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d", w.Code, tt.status)
			}
		})
	}
	if east.Requests() != 1 || west.Requests() != 1 {
		t.Errorf("east saw %d, west %d; want 1 each", east.Requests(), west.Requests())
	}
	fallback := ByRegion(map[string]http.Handler{"": west})
	w := httptest.NewRecorder()
	fallback.ServeHTTP(w, httptest.NewRequest("POST", "/model/m/converse", nil))
	if w.Code != 200 || west.Requests() != 2 {
		t.Errorf("fallback: status %d, west saw %d; want 200 and 2", w.Code, west.Requests())
	}
}

// TestInvalidOptions checks that Handler refuses a test's mistakes.
func TestInvalidOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    Options
	}{
		{"unknown mode", Options{Mode: "flood"}},
		{"status on truncate", Options{Mode: Truncate, Status: 500}},
		{"redirect 200", Options{Mode: Redirect, Status: 200}},
		{"html error 302", Options{Mode: HTMLError, Status: 302}},
		{"small size", Options{Size: MinSize - 1}},
		{"small event", Options{EventSize: MinEventSize - 1}},
		{"negative", Options{Mode: Drip, Interval: -time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if r, _ := recover().(string); !strings.HasPrefix(r, "hostile: ") {
					t.Errorf("recovered %q, want a hostile: panic", r)
				}
			}()
			Handler(tt.o)
		})
	}
}

// TestDripFakeClock checks the clock seam outside a bubble: on a real
// socket, a Drip on a clock.Fake sends a chunk each time the test moves the
// clock on by an Interval, and only then.
func TestDripFakeClock(t *testing.T) {
	fake := clock.NewFake(time.Unix(0, 0))
	o := Options{Mode: Drip, Size: MinSize, Chunk: 64, Interval: time.Minute, Clock: fake}
	s := Listen(Handler(o))
	defer s.Close()
	done := make(chan exchange)
	go func() { done <- call(t.Context(), s.Client(), s.URL, false, nil) }()
	ticks := (MinSize + 63) / 64
	for range ticks {
		fake.WaitForTimers(1)
		fake.Advance(time.Minute)
	}
	x := <-done
	if x.err != nil || x.n != MinSize {
		t.Fatalf("got %d bytes and %v, want %d", x.n, x.err, MinSize)
	}
	if got := fake.Now().Sub(time.Unix(0, 0)); got != time.Duration(ticks)*time.Minute {
		t.Errorf("the drip took %v on its clock, want %d minutes", got, ticks)
	}
}

// TestMinimums pins the minimums the documentation states.
func TestMinimums(t *testing.T) {
	if MinSize != 180 || MinEventSize != 44 {
		t.Errorf("MinSize %d, MinEventSize %d; the doc comments say 180 and 44", MinSize, MinEventSize)
	}
}

// TestBodySizes checks that every Size and EventSize gives a body of
// exactly that size, across the sizes where the usage counts gain digits.
func TestBodySizes(t *testing.T) {
	for size := MinSize; size < 1200; size++ {
		b, err := io.ReadAll(Options{Size: size}.resolve().body(false))
		if err != nil {
			t.Fatal(err)
		}
		checkReply(t, b, size)
	}
	for _, size := range []int{MinEventSize, MinEventSize + 1, 1000, 70_000} {
		b := Options{Events: 2, EventSize: size}.resolve().body(true)
		checkStream(t, b, 2, size)
		if len(b.parts) != 0 {
			t.Errorf("EventSize %d: the body was not read to its end", size)
		}
	}
}

// TestHugeDefaults checks the huge defaults' sizes, and that a huge body is
// generated as it is read: reading the 1 GiB body and the 1 GiB stream
// allocates about one event, not the reply.
func TestHugeDefaults(t *testing.T) {
	for _, tt := range []struct {
		mode   Mode
		stream bool
		min    int64
	}{
		{HugeBody, false, HugeSize},
		{HugeStream, true, HugeEvents * HugeEventSize},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		n, err := io.Copy(io.Discard, Options{Mode: tt.mode}.resolve().body(tt.stream))
		runtime.ReadMemStats(&after)
		if err != nil || n < tt.min || n > tt.min+tt.min/100 {
			t.Errorf("%s: %d bytes, %v; want about %d", tt.mode, n, err, tt.min)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Errorf("%s: reading it allocated %d bytes, want under 8 MiB", tt.mode, alloc)
		}
	}
}
