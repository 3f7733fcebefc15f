package gateway_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/keel-run/keel"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/gateway"
)

// post sends a Converse body to the gateway with extra headers.
func (h *harness) post(t *testing.T, model string, hdr map[string]string) *http.Response {
	t.Helper()
	resp, err := h.try(model, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// try is post for a goroutine other than the test's: it returns the error.
// Its connection closes when the response body is closed or read to EOF.
func (h *harness) try(model string, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, h.url+"/model/"+model+"/converse", strings.NewReader(converseBody))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.Close = true
	return http.DefaultClient.Do(req)
}

// slowWrites delays every write the gateway makes to a connection, so that
// a response is still on its way out when its handler has returned.
func slowWrites(ln net.Listener) net.Listener { return slowListener{ln} }

type slowListener struct{ net.Listener }

func (l slowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return slowConn{c}, nil
}

type slowConn struct{ net.Conn }

func (c slowConn) Write(p []byte) (int, error) {
	time.Sleep(100 * time.Millisecond)
	return c.Conn.Write(p)
}

func TestAuthenticateSeam(t *testing.T) {
	var obs observed
	h := newHarness(t, setup{gateway: func(o *gateway.Options) {
		o.Observe = obs.add
		o.Authenticate = func(r *http.Request, model string, body []byte) (gateway.Caller, error) {
			name := r.Header.Get("X-Test-Caller")
			if name == "" || len(body) == 0 || model != haiku {
				return gateway.Caller{}, &gateway.Refusal{Code: catalog.CodeAccessDenied, Status: 403, Message: "no such caller"}
			}
			return gateway.Caller{Name: name, Priority: engine.Batch}, nil
		}
	}})
	// The SDK's caller, unknown to the fake: its typed exception.
	_, err := h.client.Converse(context.Background(), converseInput(haiku))
	var ad *types.AccessDeniedException
	if !errors.As(err, &ad) || !strings.Contains(ad.ErrorMessage(), "no such caller") {
		t.Fatalf("err %v", err)
	}
	resp := h.post(t, haiku, map[string]string{"X-Test-Caller": "team-a"})
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ev := obs.all()
	if len(ev) != 2 || !ev[0].Refused || ev[0].Status != 403 || ev[1].Caller != "team-a" || ev[1].Refused || ev[1].Output == 0 || ev[1].Attempts != 1 {
		t.Fatalf("events %+v", ev)
	}
	if h.script.n.Load() != 1 {
		t.Fatalf("upstream saw %d requests, want 1 (the refused one must not reach it)", h.script.n.Load())
	}
}

func TestLimitSeam(t *testing.T) {
	var mu sync.Mutex
	var held, released []int
	h := newHarness(t, setup{gateway: func(o *gateway.Options) {
		o.Authenticate = func(r *http.Request, _ string, _ []byte) (gateway.Caller, error) {
			return gateway.Caller{Name: r.Header.Get("X-Test-Caller")}, nil
		}
		o.Limit = func(_ context.Context, caller, model string, tokens int) (func(int), error) {
			if caller == "poor" {
				return nil, &gateway.Refusal{Code: catalog.CodeThrottling, Status: 429, Message: "team poor is over its tokens per minute"}
			}
			if caller == "broken" {
				return nil, errors.New("budget store unreachable")
			}
			mu.Lock()
			held = append(held, tokens)
			mu.Unlock()
			return func(used int) {
				mu.Lock()
				released = append(released, used)
				mu.Unlock()
			}, nil
		}
	}})
	tests := []struct {
		caller string
		status int
		code   string
	}{
		{"rich", 200, ""},
		{"poor", 429, catalog.CodeThrottling},
		{"broken", 429, catalog.CodeThrottling},
	}
	for _, tt := range tests {
		resp := h.post(t, haiku, map[string]string{"X-Test-Caller": tt.caller})
		code, _, _ := strings.Cut(resp.Header.Get("X-Amzn-Errortype"), ":")
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || code != tt.code {
			t.Fatalf("%s: got %d %q, want %d %q", tt.caller, resp.StatusCode, code, tt.status, tt.code)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// The body asks for 50 output tokens, plus its input estimate.
	if len(held) != 1 || held[0] <= 50 || len(released) != 1 || released[0] <= 0 {
		t.Fatalf("held %v, released %v", held, released)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	status := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "the status page") })
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "keel_calls_total 1") })
	tests := []struct {
		name         string
		opts         func(*gateway.Options)
		path         string
		status       int
		contains     string
		afterOneCall bool
	}{
		{name: "healthz", path: "/healthz", status: 200, contains: "ok"},
		{name: "readyz before the upstream answered", path: "/readyz", status: 503, contains: "not ready"},
		{name: "readyz after", path: "/readyz", status: 200, contains: "ready", afterOneCall: true},
		{name: "no metrics", path: "/metrics", status: 404},
		{name: "metrics", opts: func(o *gateway.Options) { o.Metrics = metrics }, path: "/metrics", status: 200, contains: "keel_calls_total"},
		{name: "no status page", path: "/", status: 200, contains: "status page not configured"},
		{name: "status page", opts: func(o *gateway.Options) { o.Status = status }, path: "/", status: 200, contains: "the status page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, setup{gateway: tt.opts})
			if tt.afterOneCall {
				if _, err := h.client.Converse(context.Background(), converseInput(haiku)); err != nil {
					t.Fatal(err)
				}
			}
			c := &http.Client{Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			resp, err := c.Get(h.url + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.contains) {
				t.Fatalf("got %d %q", resp.StatusCode, b)
			}
		})
	}
}

func TestDeadlines(t *testing.T) {
	past := time.Now().Add(-time.Minute).UTC().Format("20060102T150405Z")
	// To the second, as the SDK writes it: between 1 s and 2 s from now.
	soon := time.Now().Add(2 * time.Second).UTC().Format("20060102T150405Z")
	tests := []struct {
		name     string
		timeout  time.Duration
		plan     func(int, fault.Request) fault.Plan
		hdr      map[string]string
		status   int
		keelCode string
	}{
		{name: "no ttl: the default timeout", timeout: time.Hour, hdr: nil, status: 200},
		{name: "a ttl already past is ignored", timeout: time.Hour, hdr: map[string]string{"Amz-Sdk-Request": "attempt=2; max=3; ttl=" + past}, status: 200},
		{name: "the SDK's ttl ends a hung upstream", timeout: time.Hour, hdr: map[string]string{"Amz-Sdk-Request": "attempt=2; max=3; ttl=" + soon},
			plan: func(int, fault.Request) fault.Plan { return fault.Plan{Hang: true} }, status: 408, keelCode: catalog.CodeDeadlineExceeded},
		{name: "a malformed ttl is ignored", timeout: time.Hour, hdr: map[string]string{"Amz-Sdk-Request": "attempt=1; max=3; ttl=soon"}, status: 200},
		{name: "the gateway's timeout ends a hung upstream", timeout: 50 * time.Millisecond,
			plan: func(int, fault.Request) fault.Plan { return fault.Plan{Hang: true} }, status: 408, keelCode: catalog.CodeDeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, setup{plan: tt.plan, gateway: func(o *gateway.Options) { o.Timeout = tt.timeout }})
			resp := h.post(t, haiku, tt.hdr)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("X-Keel-Code") != tt.keelCode {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("X-Keel-Code"), tt.status, tt.keelCode)
			}
		})
	}
}

func TestDeadLetters(t *testing.T) {
	fail := func(code string) func(int, fault.Request) fault.Plan {
		return func(int, fault.Request) fault.Plan { return fault.Plan{Error: code} }
	}
	tests := []struct {
		name   string
		plan   func(int, fault.Request) fault.Plan
		sdk    string // Amz-Sdk-Request; "": none
		parked bool
	}{
		{name: "a failure, no SDK header", plan: fail(catalog.CodeValidation), parked: true},
		{name: "a failure the SDK does not retry", plan: fail(catalog.CodeValidation), sdk: "attempt=1; max=3", parked: true},
		{name: "a throttle the SDK retries", plan: fail(catalog.CodeThrottling), sdk: "attempt=1; max=3", parked: false},
		{name: "a 503 the SDK retries (botocore's order)", plan: fail(catalog.CodeServiceUnavailable), sdk: "ttl=20200101T000000Z; attempt=2; max=3", parked: false},
		{name: "a throttle on the SDK's last attempt", plan: fail(catalog.CodeThrottling), sdk: "attempt=3; max=3", parked: true},
		{name: "a throttle, no SDK header", plan: fail(catalog.CodeThrottling), parked: true},
		{name: "a throttle, no max", plan: fail(catalog.CodeThrottling), sdk: "attempt=1", parked: true},
		{name: "a throttle, a malformed header", plan: fail(catalog.CodeThrottling), sdk: "attempt=one; max=3", parked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := dlq.NewMemory()
			h := newHarness(t, setup{plan: tt.plan,
				keel: func(o *keel.Options) { o.Retry.MaxAttempts = 1 },
				gateway: func(o *gateway.Options) {
					o.DLQ = &dlq.Recorder{Store: store}
					o.Authenticate = func(*http.Request, string, []byte) (gateway.Caller, error) {
						return gateway.Caller{Name: "team-a"}, nil
					}
				}})
			var hdr map[string]string
			if tt.sdk != "" {
				hdr = map[string]string{"Amz-Sdk-Request": tt.sdk}
			}
			resp := h.post(t, haiku, hdr)
			resp.Body.Close()
			entries, err := store.List(context.Background(), dlq.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.parked {
				if len(entries) != 0 {
					t.Fatalf("%d entries parked, want none (the caller's SDK sends it again)", len(entries))
				}
				return
			}
			if len(entries) != 1 || entries[0].Source != "gateway/team-a" || entries[0].Model != haiku {
				t.Fatalf("entries %+v", entries)
			}
		})
	}
}

// TestDeadLettersWithTheSDKsRetries: a throttle that aws-sdk-go-v2's
// default retryer sends again, and gets its reply, is not parked.
func TestDeadLettersWithTheSDKsRetries(t *testing.T) {
	store := dlq.NewMemory()
	h := newHarness(t, setup{
		keel: func(o *keel.Options) { o.Retry.MaxAttempts = 1 },
		plan: func(n int, _ fault.Request) fault.Plan {
			if n == 0 {
				return fault.Plan{Error: catalog.CodeThrottling}
			}
			return fault.Plan{}
		},
		gateway: func(o *gateway.Options) { o.DLQ = &dlq.Recorder{Store: store} }})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String(h.url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDCALLER", "caller-secret", ""),
		HTTPClient:  &http.Client{Transport: plainBody{tr}}, // the SDK's default retries
		Retryer:     retry.NewStandard(func(o *retry.StandardOptions) { o.Backoff = retry.BackoffDelayerFunc(noBackoff) })})
	if _, err := c.Converse(context.Background(), converseInput(haiku)); err != nil {
		t.Fatal(err)
	}
	entries, _ := store.List(context.Background(), dlq.Filter{})
	if len(entries) != 0 || h.script.n.Load() != 2 {
		t.Fatalf("upstream saw %d requests; %d entries parked, want none", h.script.n.Load(), len(entries))
	}
}

func noBackoff(int, error) (time.Duration, error) { return 0, nil }

func TestShutdownDrainsAStream(t *testing.T) {
	// Paced replies: the stream is still running when the shutdown begins.
	h := newHarness(t, setup{emu: func(o *emulator.Options) { o.Speed = 0.05 }})
	out, err := h.client.ConverseStream(context.Background(), converseStreamInput(sonnet))
	if err != nil {
		t.Fatal(err)
	}
	s := out.GetStream()
	<-s.Events() // the first event: the stream is in flight
	done := make(chan error, 1)
	go func() { done <- h.gw.Shutdown(context.Background()) }()
	var stop bool
	for ev := range s.Events() {
		if _, ok := ev.(*types.ConverseStreamOutputMemberMessageStop); ok {
			stop = true
		}
	}
	if s.Err() != nil || !stop {
		t.Fatalf("stream ended with %v, stop %v", s.Err(), stop)
	}
	s.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestShutdownCutsAfterTheDrain(t *testing.T) {
	h := newHarness(t, setup{plan: stallAfter(4)})
	out, err := h.client.ConverseStream(context.Background(), converseStreamInput(sonnet))
	if err != nil {
		t.Fatal(err)
	}
	s := out.GetStream()
	defer s.Close()
	<-s.Events()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.gw.Shutdown(ctx) }()
	cancel() // the drain runs out at once
	for range s.Events() {
	}
	var su *types.ServiceUnavailableException
	if !errors.As(s.Err(), &su) || !strings.Contains(su.ErrorMessage(), "shutting down") {
		t.Fatalf("stream ended with %v (%T)", s.Err(), s.Err())
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestUpstreamCredentials(t *testing.T) {
	tests := []struct {
		name, bearer, want string
	}{
		{"SigV4 with the gateway's key", "", "Credential=AKIDUPSTREAM/"},
		{"a Bedrock API key", "upstream-api-key", "Bearer upstream-api-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(chan string, 4)
			h := newHarness(t, setup{bearer: tt.bearer, emu: func(o *emulator.Options) {
				o.Verify = func(r *http.Request, _ []byte) *emulator.Rejection {
					seen <- r.Header.Get("Authorization")
					return nil
				}
			}})
			// The caller signs with its own key (AKIDCALLER): it must not
			// reach the upstream.
			if _, err := h.client.Converse(context.Background(), converseInput(haiku)); err != nil {
				t.Fatal(err)
			}
			if auth := <-seen; !strings.Contains(auth, tt.want) || strings.Contains(auth, "AKIDCALLER") {
				t.Fatalf("upstream Authorization %q, want %q", auth, tt.want)
			}
		})
	}
}

func TestUpstreamHeaders(t *testing.T) {
	seen := make(chan http.Header, 1)
	h := newHarness(t, setup{emu: func(o *emulator.Options) {
		o.Verify = func(r *http.Request, _ []byte) *emulator.Rejection {
			seen <- r.Header.Clone()
			return nil
		}
	}})
	resp := h.post(t, haiku, map[string]string{"X-Amzn-Bedrock-Trace": "ENABLED", "Cookie": "session=secret",
		"X-Forwarded-For": "10.0.0.1", "X-Amz-Security-Token": "caller-token", "User-Agent": "caller-app/1.0"})
	resp.Body.Close()
	got := <-seen
	for k, want := range map[string]string{"X-Amzn-Bedrock-Trace": "ENABLED", "Content-Type": "application/json", "Cookie": "", "X-Forwarded-For": "", "X-Amz-Security-Token": ""} {
		if v := got.Get(k); v != want {
			t.Errorf("upstream %s = %q, want %q", k, v, want)
		}
	}
	if !strings.HasPrefix(got.Get("User-Agent"), "caller-app/1.0") {
		t.Errorf("upstream User-Agent %q", got.Get("User-Agent"))
	}
}

// TestLimitWaitsWithinTheCall: Limit gets the call's own context, so a
// budget wait ends at the call's deadline and at a shutdown's cut.
func TestLimitWaitsWithinTheCall(t *testing.T) {
	tests := []struct {
		name     string
		shutdown bool // cut the gateway while Limit waits
		status   int
		code     string
		message  string
	}{
		{name: "the wait ends at the call's deadline", status: 429, code: catalog.CodeThrottling, message: "deadline"},
		{name: "the wait ends at a shutdown's cut", shutdown: true, status: 503, code: catalog.CodeServiceUnavailable, message: "shutting down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const timeout = time.Hour
			waiting := make(chan time.Time, 1) // the deadline Limit saw
			h := newHarness(t, setup{wrap: slowWrites, gateway: func(o *gateway.Options) {
				o.Timeout = timeout
				o.Limit = func(ctx context.Context, _, _ string, _ int) (func(int), error) {
					d, _ := ctx.Deadline()
					waiting <- d
					if !tt.shutdown {
						return nil, &gateway.Refusal{Code: catalog.CodeThrottling, Status: 429, Message: "would wait past the deadline"}
					}
					<-ctx.Done()
					return nil, ctx.Err()
				}
			}})
			before := time.Now()
			type answer struct {
				resp *http.Response
				err  error
			}
			done := make(chan answer, 1)
			go func() {
				resp, err := h.try(haiku, nil)
				done <- answer{resp, err}
			}()
			d := <-waiting
			if d.Before(before.Add(timeout)) || d.After(time.Now().Add(timeout)) {
				t.Errorf("Limit's context has deadline %v, want the call's (now + %v)", d, timeout)
			}
			if tt.shutdown {
				ctx, cancel := context.WithCancel(context.Background())
				cancel() // the drain runs out at once
				if err := h.gw.Shutdown(ctx); !errors.Is(err, context.Canceled) {
					t.Errorf("Shutdown: %v", err)
				}
			}
			a := <-done
			if a.err != nil {
				t.Fatalf("the call got no answer: %v", a.err)
			}
			resp := a.resp
			code, msg := bedrockError(t, resp)
			if resp.StatusCode != tt.status || code != tt.code || !strings.Contains(msg, tt.message) {
				t.Fatalf("got %d %s %q, want %d %s (%s)", resp.StatusCode, code, msg, tt.status, tt.code, tt.message)
			}
		})
	}
}

// TestLimitCountsAsTheGovernor: a caller's budget holds what the quota
// governor holds (the model's maximum output when the request sets no max
// tokens) and settles what it settles (output × the model's burndown).
func TestLimitCountsAsTheGovernor(t *testing.T) {
	const withMax = `{"messages":[{"role":"user","content":[{"text":"Tell me about keels."}]}],"inferenceConfig":{"maxTokens":50}}`
	const noMax = `{"messages":[{"role":"user","content":[{"text":"Tell me about keels."}]}]}`
	tests := []struct {
		name      string
		model     string
		body      string
		maxTokens int     // held on top of the input estimate
		burndown  float64 // quota tokens per output token
	}{
		{"max tokens set, burndown 1", haiku, withMax, 50, 1},
		{"no max tokens: the model's maximum", haiku, noMax, 4096, 1},
		{"burndown 5", sonnet, withMax, 50, 5},
		{"no max tokens, burndown 5", sonnet, noMax, 64000, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var held, released []int
			var obs observed
			h := newHarness(t, setup{gateway: func(o *gateway.Options) {
				o.Observe = obs.add
				o.Authenticate = func(*http.Request, string, []byte) (gateway.Caller, error) { return gateway.Caller{Name: "a"}, nil }
				o.Limit = func(_ context.Context, _, _ string, tokens int) (func(int), error) {
					held = append(held, tokens)
					return func(used int) { released = append(released, used) }, nil
				}
			}})
			resp := h.rawPost(t, "/model/"+tt.model+"/converse", "application/json", []byte(tt.body))
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			est, _ := admission.EstimateBody([]byte(tt.body))
			ev := obs.all()
			if len(ev) != 1 || ev[0].Output == 0 {
				t.Fatalf("events %+v", ev)
			}
			want := ev[0].Input + int(math.Ceil(float64(ev[0].Output)*tt.burndown))
			if len(held) != 1 || held[0] != est.InputTokens+tt.maxTokens || len(released) != 1 || released[0] != want {
				t.Fatalf("held %v, released %v; want [%d], [%d] (input %d, output %d)",
					held, released, est.InputTokens+tt.maxTokens, want, ev[0].Input, ev[0].Output)
			}
		})
	}
}

func TestProbeUpstream(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := &url.URL{Scheme: "http", Host: dead.Addr().String()}
	dead.Close() // connections to it are refused: no HTTP answer
	tests := []struct {
		name  string
		dead  bool
		ready bool
	}{
		{name: "an upstream that answers (any status)", ready: true},
		{name: "an upstream that does not", dead: true, ready: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var eng *engine.Engine
			if tt.dead {
				var err error
				if eng, err = engine.New(engine.Options{Endpoints: attempt.FixedEndpoint{URL: deadURL}}); err != nil {
					t.Fatal(err)
				}
				defer eng.HTTPClient().CloseIdleConnections()
			} else {
				eng = newHarness(t, setup{}).eng
			}
			gw, err := gateway.New(gateway.Options{Engine: eng, ProbeEvery: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			// An answer ends the probes at once; without one they go on
			// until ctx ends.
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err = gw.ProbeUpstream(ctx)
			if gw.Ready() != tt.ready || (err == nil) != tt.ready {
				t.Fatalf("ProbeUpstream: %v; Ready %v, want %v", err, gw.Ready(), tt.ready)
			}
		})
	}
}
