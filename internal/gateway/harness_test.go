package gateway_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"go.uber.org/goleak"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/gateway"
	"github.com/keel-run/keel/internal/keelx"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	haiku  = "anthropic.claude-3-haiku-20240307-v1:0"
	sonnet = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
	prompt = "Tell me about keels."
)

// script plans the emulator's replies: the n-th request (from 0) gets
// plan(n, req); nil plans behave.
type script struct {
	n    atomic.Int64
	plan func(n int, r fault.Request) fault.Plan
}

func (s *script) Plan(r fault.Request) fault.Plan {
	n := int(s.n.Add(1) - 1)
	if s.plan == nil {
		return fault.Plan{}
	}
	return s.plan(n, r)
}

// harness is an emulator (the upstream), a keel engine sending to it, a
// gateway in front of that engine on 127.0.0.1, and an aws-sdk-go-v2
// client pointed at the gateway.
type harness struct {
	emu    *emulator.Running
	script *script
	eng    *engine.Engine
	gw     *gateway.Server
	url    string
	client *bedrockruntime.Client
	served chan error
}

type setup struct {
	plan    func(n int, r fault.Request) fault.Plan
	gateway func(*gateway.Options)
	keel    func(*keel.Options)
	emu     func(*emulator.Options)
	tls     *tls.Config // serve TLS with it
	wrap    func(net.Listener) net.Listener
	// bearer makes the gateway's upstream credentials this Bedrock API
	// key instead of a SigV4 key pair.
	bearer string
}

func newHarness(t testing.TB, su setup) *harness {
	t.Helper()
	h := &harness{script: &script{plan: su.plan}, served: make(chan error, 1)}
	eo := emulator.Options{Seed: 7, Planner: h.script.Plan}
	if su.emu != nil {
		su.emu(&eo)
	}
	emu, err := emulator.Start(eo)
	if err != nil {
		t.Fatal(err)
	}
	h.emu = emu
	t.Cleanup(func() { emu.Close() })
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDUPSTREAM", "upstream-secret", "")}
	ko := keel.Options{Endpoint: emu.URL,
		// Backoffs of milliseconds: tests wait for nothing.
		Retry: keel.RetryOptions{Base: time.Millisecond, Cap: 2 * time.Millisecond, ThrottleBase: time.Millisecond, ThrottleCap: 2 * time.Millisecond}}
	if su.keel != nil {
		su.keel(&ko)
	}
	if su.bearer != "" {
		cfg.Credentials = nil
	}
	k, err := keel.New(cfg, ko)
	if err != nil {
		t.Fatal(err)
	}
	h.eng = keelx.Engine(k)
	t.Cleanup(func() { h.eng.HTTPClient().CloseIdleConnections() })
	gopts := gateway.Options{Engine: h.eng, UpstreamBearer: su.bearer}
	if su.gateway != nil {
		su.gateway(&gopts)
	}
	h.gw, err = gateway.New(gopts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if su.wrap != nil {
		ln = su.wrap(ln)
	}
	scheme := "http://"
	if su.tls != nil {
		scheme = "https://"
	}
	h.url = scheme + ln.Addr().String()
	go func() { h.served <- h.gw.Serve(ln, su.tls) }()
	t.Cleanup(func() {
		h.gw.Close()
		if err := <-h.served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	h.client = h.sdkClient(t, nil)
	return h
}

// sdkClient is a bedrockruntime client pointed at the gateway, its own
// retries off so that each test sees the gateway's answer.
func (h *harness) sdkClient(t testing.TB, hc *http.Client) *bedrockruntime.Client {
	t.Helper()
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{}}
	}
	t.Cleanup(hc.CloseIdleConnections)
	hc = &http.Client{Transport: plainBody{hc.Transport}}
	return bedrockruntime.New(bedrockruntime.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(h.url),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDCALLER", "caller-secret", ""),
		HTTPClient:       hc,
		RetryMaxAttempts: 1,
	})
}

func converseInput(model string) *bedrockruntime.ConverseInput {
	return &bedrockruntime.ConverseInput{
		ModelId:         aws.String(model),
		Messages:        []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: prompt}}}},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(50)},
	}
}

func converseStreamInput(model string) *bedrockruntime.ConverseStreamInput {
	in := converseInput(model)
	return &bedrockruntime.ConverseStreamInput{ModelId: in.ModelId, Messages: in.Messages, InferenceConfig: in.InferenceConfig}
}

// streamRead is what the SDK's ConverseStream reader delivered.
type streamRead struct {
	text   string
	events int
	stop   bool
	err    error
}

func readConverseStream(out *bedrockruntime.ConverseStreamOutput) streamRead {
	var r streamRead
	s := out.GetStream()
	defer s.Close()
	for ev := range s.Events() {
		r.events++
		switch v := ev.(type) {
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			if d, ok := v.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
				r.text += d.Value
			}
		case *types.ConverseStreamOutputMemberMessageStop:
			r.stop = true
		}
	}
	r.err = s.Err()
	return r
}

// observed collects the Observe events of a gateway.
type observed struct {
	mu     sync.Mutex
	events []gateway.Event
}

func (o *observed) add(e gateway.Event) {
	o.mu.Lock()
	o.events = append(o.events, e)
	o.mu.Unlock()
}

func (o *observed) all() []gateway.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]gateway.Event(nil), o.events...)
}

// rawPost sends body to path on the gateway with plain HTTP.
func (h *harness) rawPost(t *testing.T, path, contentType string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, h.url+path, bytesReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	c := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// plainBody hides the io.WriterTo of the SDK's request body from
// net/http. smithy-go closes the body as soon as the response headers
// arrive, and its closed body's WriteTo returns io.EOF; when a server
// answers before net/http's write loop has made its last read of the body
// (the gateway, on loopback, can), net/http takes that io.EOF for a write
// error and closes the connection under the response still being read: a
// stream then fails with "use of closed network connection". Without
// WriteTo, a closed body's Read returns io.EOF, which net/http takes as
// the end. docs/gateway.md, Known issues, has the story.
type plainBody struct{ rt http.RoundTripper }

func (p plainBody) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r = r.Clone(r.Context())
		r.Body = struct{ io.ReadCloser }{r.Body}
	}
	return p.rt.RoundTrip(r)
}

func (p plainBody) CloseIdleConnections() {
	if c, ok := p.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
