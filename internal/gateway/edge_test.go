package gateway_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/gateway"
)

const converseBody = `{"messages":[{"role":"user","content":[{"text":"Tell me about keels."}]}],"inferenceConfig":{"maxTokens":50}}`

// bedrockError reads a Bedrock error response: its X-Amzn-ErrorType code
// (without the namespace) and its JSON message.
func bedrockError(t *testing.T, resp *http.Response) (code, msg string) {
	t.Helper()
	defer resp.Body.Close()
	var body struct{ Message string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("error body: %v", err)
	}
	code, _, _ = strings.Cut(resp.Header.Get("X-Amzn-Errortype"), ":")
	return code, body.Message
}

func TestBadInput(t *testing.T) {
	h := newHarness(t, setup{gateway: func(o *gateway.Options) { o.BodyLimit = 1024 }})
	tests := []struct {
		name, path, contentType, body string
		status                        int
		code, inMessage               string
	}{
		{"malformed JSON", "/model/" + haiku + "/converse", "application/json", `{"messages": [`, 400, catalog.CodeValidation, "not valid JSON"},
		{"body over the limit", "/model/" + haiku + "/converse", "application/json", `{"x":"` + strings.Repeat("a", 2000) + `"}`, 400, catalog.CodeValidation, "Input is too long"},
		{"unknown operation", "/model/" + haiku + "/summarize", "application/json", converseBody, 400, catalog.CodeInvalidAction, "names no Bedrock Runtime operation"},
		{"no model", "/model//converse", "application/json", converseBody, 400, catalog.CodeInvalidAction, "names no Bedrock Runtime operation"},
		{"model id with a space", "/model/anthropic.claude%20x/converse", "application/json", converseBody, 400, catalog.CodeValidation, "modelId"},
		{"model id with a NUL", "/model/anthropic.claude%00x/converse", "application/json", converseBody, 400, catalog.CodeValidation, "modelId"},
		{"model id too long", "/model/" + strings.Repeat("m", 2049) + "/converse", "application/json", converseBody, 400, catalog.CodeValidation, "length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.rawPost(t, tt.path, tt.contentType, []byte(tt.body))
			code, msg := bedrockError(t, resp)
			if resp.StatusCode != tt.status || code != tt.code || !strings.Contains(msg, tt.inMessage) {
				t.Fatalf("got %d %s %q, want %d %s with %q", resp.StatusCode, code, msg, tt.status, tt.code, tt.inMessage)
			}
		})
	}
	if n := h.script.n.Load(); n != 0 {
		t.Fatalf("the upstream saw %d requests; bad input must not reach it", n)
	}
	resp := h.rawPost(t, "/model/"+haiku+"/converse", "application/json", []byte(converseBody))
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a good request after the bad ones got %d", resp.StatusCode)
	}
}

func TestGetOnAnOperationRefused(t *testing.T) {
	h := newHarness(t, setup{})
	resp, err := http.Get(h.url + "/model/" + haiku + "/converse")
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := bedrockError(t, resp); resp.StatusCode != 400 || code != catalog.CodeInvalidAction {
		t.Fatalf("got %d %s", resp.StatusCode, code)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestKeelRefusalsMapped(t *testing.T) {
	tests := []struct {
		name     string
		keel     func(*keel.Options)
		plan     func(int, fault.Request) fault.Plan
		calls    int // the last call's answer is checked
		attempts string
		status   int
		code     string
		keelCode string
	}{
		{name: "request too large for the quota", keel: func(o *keel.Options) { o.Quotas.Default = keel.Quota{TokensPerMinute: 20} },
			calls: 1, attempts: "0", status: 400, code: catalog.CodeValidation, keelCode: catalog.CodeRequestTooLargeForQuota},
		{name: "circuit open", keel: func(o *keel.Options) {
			o.Retry.MaxAttempts = 1
			o.Breaker = keel.BreakerOptions{ConsecutiveFailures: 1, Cooldown: time.Hour}
		}, plan: func(int, fault.Request) fault.Plan { return fault.Plan{Error: catalog.CodeInternalServer} },
			calls: 2, attempts: "0", status: 503, code: catalog.CodeServiceUnavailable, keelCode: catalog.CodeCircuitOpen},
		{name: "upstream unreachable", keel: func(o *keel.Options) { o.Retry.MaxAttempts = 1 },
			plan:  func(int, fault.Request) fault.Plan { return fault.Plan{Refuse: true} },
			calls: 1, attempts: "1", status: 503, code: catalog.CodeServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, setup{keel: tt.keel, plan: tt.plan})
			var resp *http.Response
			for i := range tt.calls {
				if i > 0 {
					resp.Body.Close()
				}
				resp = h.rawPost(t, "/model/"+haiku+"/converse", "application/json", []byte(converseBody))
			}
			keelCode, attempts := resp.Header.Get("X-Keel-Code"), resp.Header.Get("X-Keel-Attempts")
			code, msg := bedrockError(t, resp)
			if attempts != tt.attempts {
				t.Errorf("X-Keel-Attempts = %q, want %q", attempts, tt.attempts)
			}
			if resp.StatusCode != tt.status || code != tt.code || (tt.keelCode != "" && keelCode != tt.keelCode) || msg == "" {
				t.Fatalf("got %d %s (X-Keel-Code %s) %q, want %d %s (%s)", resp.StatusCode, code, keelCode, msg, tt.status, tt.code, tt.keelCode)
			}
		})
	}
}

// selfSigned returns a TLS certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keel gateway test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestHTTP2(t *testing.T) {
	cert, pool := selfSigned(t)
	tests := []struct {
		name   string
		tls    *tls.Config
		client func() *http.Transport
	}{
		{"h2c with prior knowledge", nil, func() *http.Transport {
			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			return &http.Transport{Protocols: &p}
		}},
		{"h2 over TLS", &tls.Config{Certificates: []tls.Certificate{cert}}, func() *http.Transport {
			var p http.Protocols
			p.SetHTTP2(true)
			return &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{RootCAs: pool}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, setup{tls: tt.tls})
			var proto string
			hc := &http.Client{Transport: protoSpy{tt.client(), &proto}}
			c := h.sdkClient(t, hc)
			if _, err := c.Converse(context.Background(), converseInput(haiku)); err != nil {
				t.Fatal(err)
			}
			out, err := c.ConverseStream(context.Background(), converseStreamInput(sonnet))
			if err != nil {
				t.Fatal(err)
			}
			if r := readConverseStream(out); r.err != nil || !r.stop {
				t.Fatalf("stream %+v", r)
			}
			if proto != "HTTP/2.0" {
				t.Fatalf("protocol %q", proto)
			}
		})
	}
}

// protoSpy records the protocol of the last response.
type protoSpy struct {
	rt    *http.Transport
	proto *string
}

func (p protoSpy) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.rt.RoundTrip(r)
	if err == nil {
		*p.proto = resp.Proto
	}
	return resp, err
}

func (p protoSpy) CloseIdleConnections() { p.rt.CloseIdleConnections() }

// stallAfter is a plan whose streams stall after n events, until the
// client gives up.
func stallAfter(n int) func(int, fault.Request) fault.Plan {
	return func(int, fault.Request) fault.Plan {
		return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall, After: n}}
	}
}

func TestClientDisconnectMidStream(t *testing.T) {
	ended := make(chan gateway.Event, 1)
	upstream := make(chan emulator.Outcome, 1)
	h := newHarness(t, setup{plan: stallAfter(4),
		emu:     func(o *emulator.Options) { o.Observe = func(oc emulator.Outcome) { upstream <- oc } },
		gateway: func(o *gateway.Options) { o.Observe = func(e gateway.Event) { ended <- e } }})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/model/"+sonnet+"/converse-stream", strings.NewReader(converseBody))
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resp.Body.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	cancel() // the caller goes away mid-stream
	resp.Body.Close()
	ev := <-ended
	if oc := <-upstream; oc.Code == "" {
		t.Fatalf("upstream outcome %+v: the upstream call was not cut", oc)
	}
	if ev.Code != catalog.CodeContextCanceled || ev.Status != 200 {
		t.Fatalf("event %+v", ev)
	}
	st, ok := h.eng.QuotaStats(attempt.Target{Model: sonnet, Region: "us-east-1"})
	if !ok || st.InFlight != 0 || st.InFlightTokens != 0 {
		t.Fatalf("quota stats %+v, %v: the reservation was not settled", st, ok)
	}
}

func TestSlowClientCut(t *testing.T) {
	tests := []struct {
		name string
		op   string
		// A reply of some thousand events (or one large JSON reply),
		// sent as fast as the emulator can, into small socket buffers: a
		// client that reads nothing fills them.
		length int
	}{
		{"a stream", "converse-stream", 3000},
		{"a non-streaming reply", "converse", 60000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ended := make(chan gateway.Event, 1)
			h := newHarness(t, setup{
				emu:  func(o *emulator.Options) { o.ReplyLength.Min, o.ReplyLength.Max = tt.length, tt.length },
				wrap: func(ln net.Listener) net.Listener { return smallSendBuffers{ln} },
				gateway: func(o *gateway.Options) {
					o.WriteTimeout = 200 * time.Millisecond
					o.Observe = func(e gateway.Event) { ended <- e }
				}})
			conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.(*net.TCPConn).SetReadBuffer(4096)
			body := fmt.Sprintf(`{"messages":[{"role":"user","content":[{"text":"Tell me about keels."}]}],"inferenceConfig":{"maxTokens":%d}}`, tt.length)
			req := "POST /model/" + sonnet + "/" + tt.op + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
				strconv.Itoa(len(body)) + "\r\n\r\n" + body
			if _, err := conn.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			// Read nothing: the gateway must give up writing and end the call.
			if ev := <-ended; ev.Code != catalog.CodeClientTimeout {
				t.Fatalf("event %+v, want code %s", ev, catalog.CodeClientTimeout)
			}
			st, ok := h.eng.QuotaStats(attempt.Target{Model: sonnet, Region: "us-east-1"})
			if !ok || st.InFlight != 0 {
				t.Fatalf("quota stats %+v: the reservation was not settled", st)
			}
			// The gateway still serves others.
			if _, err := h.client.Converse(context.Background(), converseInput(haiku)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSlowlorisDropped(t *testing.T) {
	h := newHarness(t, setup{gateway: func(o *gateway.Options) { o.ReadHeaderTimeout = 100 * time.Millisecond }})
	var conns []net.Conn
	for range 20 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// Half a request's headers, then nothing.
		if _, err := conn.Write([]byte("POST /model/" + haiku + "/converse HTTP/1.1\r\nHost: gw\r\n")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	// The gateway still serves others while they wait.
	if _, err := h.client.Converse(context.Background(), converseInput(haiku)); err != nil {
		t.Fatal(err)
	}
	for i, conn := range conns {
		// A generous bound, so a slow machine does not fail the test; the
		// gateway closes each connection after ReadHeaderTimeout.
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := bufio.NewReader(conn).ReadString('\n')
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection %d still open: the gateway did not drop it", i)
		}
		if err == nil {
			// A 408 is fine too; the connection must then close.
			if _, err := io.Copy(io.Discard, conn); err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
		}
	}
}

func TestStreamErrorBeforeContentKeepsStatus(t *testing.T) {
	h := newHarness(t, setup{keel: func(o *keel.Options) { o.Retry.MaxAttempts = 1 },
		plan: func(int, fault.Request) fault.Plan { return fault.Plan{Error: catalog.CodeServiceUnavailable} }})
	_, err := h.client.ConverseStream(context.Background(), converseStreamInput(sonnet))
	var su *types.ServiceUnavailableException
	if !errors.As(err, &su) {
		t.Fatalf("err %v (%T)", err, err)
	}
}

// smallSendBuffers shrinks the send buffer of each accepted connection, so
// that a client that stops reading blocks the gateway's writes soon.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestBrowsersRefused: an open gateway answers only loopback Host names
// (DNS rebinding), and no gateway answers a browser's request (Origin,
// Sec-Fetch-Site) on /model/.
func TestBrowsersRefused(t *testing.T) {
	open := func(*gateway.Options) {}
	insecureOpen := func(o *gateway.Options) { o.InsecureOpen = true }
	withCallers := func(o *gateway.Options) {
		o.Authenticate = func(*http.Request, string, []byte) (gateway.Caller, error) {
			return gateway.Caller{Name: "team-a"}, nil
		}
	}
	tests := []struct {
		name    string
		opts    func(*gateway.Options)
		path    string // "": a Converse call
		host    string // "": the listen address
		hdr     map[string]string
		status  int
		message string
	}{
		{name: "open: the listen address", opts: open, status: 200},
		{name: "open: localhost", opts: open, host: "localhost:4000", status: 200},
		{name: "open: localhost without a port", opts: open, host: "localhost", status: 200},
		{name: "open: ::1", opts: open, host: "[::1]:4000", status: 200},
		{name: "open: another host", opts: open, host: "attacker.example:4000", status: 403, message: `Host "attacker.example:4000"`},
		{name: "open: a name that resolves to loopback", opts: open, host: "localhost.attacker.example", status: 403, message: "loopback"},
		{name: "open: another host on the status page", opts: open, path: "/", host: "attacker.example", status: 403, message: "loopback"},
		{name: "open: another host on /metrics", opts: open, path: "/metrics", host: "attacker.example", status: 403, message: "loopback"},
		{name: "open: an Origin", opts: open, hdr: map[string]string{"Origin": "http://127.0.0.1:4000"}, status: 403, message: "Origin"},
		{name: "open: Sec-Fetch-Site", opts: open, hdr: map[string]string{"Sec-Fetch-Site": "same-origin"}, status: 403, message: "browser"},
		{name: "insecure open: another host", opts: insecureOpen, host: "gateway.internal:4000", status: 200},
		{name: "insecure open: an Origin", opts: insecureOpen, hdr: map[string]string{"Origin": "https://evil.example"}, status: 403, message: "Origin"},
		{name: "callers: another host", opts: withCallers, host: "gateway.internal:4000", status: 200},
		{name: "callers: an Origin", opts: withCallers, hdr: map[string]string{"Origin": "https://evil.example"}, status: 403, message: "Origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, setup{gateway: tt.opts})
			method, path, body := http.MethodPost, "/model/"+haiku+"/converse", converseBody
			if tt.path != "" {
				method, path, body = http.MethodGet, tt.path, ""
			}
			req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tt.host != "" {
				req.Host = tt.host
			}
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			c := &http.Client{Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if tt.status == 200 {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d, want 200", resp.StatusCode)
				}
				return
			}
			code, msg := bedrockError(t, resp)
			if resp.StatusCode != tt.status || code != catalog.CodeAccessDenied || !strings.Contains(msg, tt.message) {
				t.Fatalf("got %d %s %q, want %d %s containing %q", resp.StatusCode, code, msg, tt.status, catalog.CodeAccessDenied, tt.message)
			}
			if n := h.script.n.Load(); n != 0 {
				t.Errorf("the upstream saw %d requests, want none", n)
			}
		})
	}
}

// TestBadTargets: a region or service tier that is not AWS's is refused
// before the engine makes a target of it.
func TestBadTargets(t *testing.T) {
	signedFor := func(region string) map[string]string {
		return map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=AKIDCALLER/20260101/" + region +
			"/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"}
	}
	tiered := strings.Replace(converseBody, `{`, `{"serviceTier":{"type":"%s"},`, 1)
	invoke := `{"anthropic_version":"bedrock-2023-05-31","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name, op, body string
		hdr            map[string]string
		status         int
		inMessage      string
	}{
		{name: "a region", op: "converse", body: converseBody, hdr: signedFor("eu-central-1"), status: 200},
		{name: "a GovCloud region", op: "converse", body: converseBody, hdr: signedFor("us-gov-west-1"), status: 200},
		{name: "a made-up region", op: "converse", body: converseBody, hdr: signedFor("zz-junk-1"), status: 400, inMessage: "region"},
		{name: "a region of another shape", op: "converse", body: converseBody, hdr: signedFor("us-east-1a"), status: 400, inMessage: "region"},
		{name: "an upper-case region", op: "converse", body: converseBody, hdr: signedFor("US-EAST-1"), status: 400, inMessage: "region"},
		{name: "a tier", op: "converse", body: fmt.Sprintf(tiered, "default"), status: 200},
		{name: "a made-up tier", op: "converse", body: fmt.Sprintf(tiered, "junk-1"), status: 400, inMessage: "serviceTier"},
		{name: "a tier header", op: "invoke", body: invoke, hdr: map[string]string{"X-Amzn-Bedrock-Service-Tier": "default"}, status: 200},
		{name: "a made-up tier header", op: "invoke", body: invoke, hdr: map[string]string{"X-Amzn-Bedrock-Service-Tier": "junk"}, status: 400, inMessage: "serviceTier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, setup{})
			req, err := http.NewRequest(http.MethodPost, h.url+"/model/"+haiku+"/"+tt.op, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			c := &http.Client{Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if tt.status == 200 {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d %s", resp.StatusCode, b)
				}
				return
			}
			code, msg := bedrockError(t, resp)
			if resp.StatusCode != tt.status || code != catalog.CodeValidation || !strings.Contains(msg, tt.inMessage) {
				t.Fatalf("got %d %s %q, want %d %s with %q", resp.StatusCode, code, msg, tt.status, catalog.CodeValidation, tt.inMessage)
			}
			if n := h.script.n.Load(); n != 0 {
				t.Fatalf("the upstream saw %d requests", n)
			}
			if s := h.eng.Snapshot(); len(s) != 0 {
				t.Fatalf("the engine holds targets %+v", s)
			}
		})
	}
}
