package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/quota"
	"github.com/keel-run/keel/internal/emulator/scenario"
	"github.com/keel-run/keel/internal/sigv4verify"
)

const (
	adminToken = "s3cret-admin-token"
	akid       = "AKIDADMIN"
	secretKey  = "admin-secret-key"
)

// TestItem11bAdminAuth covers issue 15, item 11 (admin API): the admin API
// was open to anyone who could reach the port, even with SigV4 checks on.
// With an admin token or access keys configured, a request must present the
// token or a SigV4 signature by one of the keys; with neither it stays open.
func TestItem11bAdminAuth(t *testing.T) {
	type auth int
	const (
		none auth = iota
		rightToken
		lowerCaseScheme
		wrongToken
		signed
		signedWrongSecret
		signedUnknownKey
		basic
	)
	tests := []struct {
		name    string
		token   string // configured admin token
		keys    bool   // access keys configured
		method  string
		path    string
		body    string
		auth    auth
		status  int
		message string // a fragment of the refusal
	}{
		{name: "open without token or keys", method: "GET", path: "counters", auth: none, status: 200},
		{name: "open: a PUT too", method: "PUT", path: "scenario", body: "rules: []\n", auth: none, status: 200},

		{name: "token: none given", token: adminToken, method: "GET", path: "counters", auth: none, status: 401,
			message: "needs Authorization: Bearer with the admin token"},
		{name: "token: wrong", token: adminToken, method: "GET", path: "counters", auth: wrongToken, status: 403, message: "admin token does not match"},
		{name: "token: right", token: adminToken, method: "GET", path: "counters", auth: rightToken, status: 200},
		{name: "token: scheme in lower case", token: adminToken, method: "GET", path: "counters", auth: lowerCaseScheme, status: 200},
		{name: "token: right, PUT", token: adminToken, method: "PUT", path: "scenario", body: "rules: []\n", auth: rightToken, status: 200},
		{name: "token: reset refused", token: adminToken, method: "POST", path: "reset", auth: none, status: 401},
		{name: "token: a signature is not enough", token: adminToken, method: "GET", path: "counters", auth: signed, status: 403,
			message: "no access keys"},
		{name: "token: another scheme", token: adminToken, method: "GET", path: "counters", auth: basic, status: 403},
		{name: "token: unknown path is refused too", token: adminToken, method: "GET", path: "nothing", auth: none, status: 401},

		{name: "keys: none given", keys: true, method: "GET", path: "counters", auth: none, status: 401,
			message: "a SigV4 signature by one of the emulator's access keys"},
		{name: "keys: signed", keys: true, method: "GET", path: "counters", auth: signed, status: 200},
		{name: "keys: signed PUT", keys: true, method: "PUT", path: "scenario", body: "rules: []\n", auth: signed, status: 200},
		{name: "keys: wrong secret", keys: true, method: "GET", path: "counters", auth: signedWrongSecret, status: 403,
			message: "The request signature we calculated does not match"},
		{name: "keys: unknown key", keys: true, method: "PUT", path: "scenario", body: "rules: []\n", auth: signedUnknownKey, status: 403,
			message: "The security token included in the request is invalid."},
		{name: "keys: a bearer token is not enough", keys: true, method: "GET", path: "counters", auth: rightToken, status: 403,
			message: "no admin token"},

		{name: "both: token", token: adminToken, keys: true, method: "GET", path: "counters", auth: rightToken, status: 200},
		{name: "both: signature", token: adminToken, keys: true, method: "GET", path: "counters", auth: signed, status: 200},
		{name: "both: wrong token", token: adminToken, keys: true, method: "GET", path: "counters", auth: wrongToken, status: 403},
	}
	clk := clock.NewFake(t0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := protected(t, clk, tt.token, tt.keys)
			srv := httptest.NewServer(New(o))
			defer srv.Close()

			req, err := http.NewRequest(tt.method, srv.URL+Prefix+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			sign := func(id, secret string) { sigv4(id, secret)(t, req, tt.body) }
			switch tt.auth {
			case rightToken:
				req.Header.Set("Authorization", "Bearer "+adminToken)
			case lowerCaseScheme:
				req.Header.Set("Authorization", "bearer "+adminToken)
			case wrongToken:
				req.Header.Set("Authorization", "Bearer not-"+adminToken)
			case signed:
				sign(akid, secretKey)
			case signedWrongSecret:
				sign(akid, "other-secret")
			case signedUnknownKey:
				sign("AKIDOTHER", secretKey)
			case basic:
				req.SetBasicAuth("admin", adminToken)
			}
			resp, b := send(t, http.DefaultClient, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if !strings.Contains(string(b), tt.message) {
				t.Errorf("body %s, want it to say %q", b, tt.message)
			}
			if strings.Contains(string(b), adminToken) {
				t.Errorf("the answer repeats the admin token: %s", b)
			}
			if resp.StatusCode == 401 && tt.token != "" && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
		})
	}
}

// readCounter is a request body that counts the bytes its reader took.
type readCounter struct {
	r    io.ReadCloser
	read atomic.Int64
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *readCounter) Close() error { return c.r.Close() }

// TestItem11bAdminAuthBeforeBody: with the admin API protected, a request without
// credentials, with malformed ones or with a wrong token is refused before
// any of its body is read; the body is read only to check a SigV4
// signature (it signs the body's hash) or for a caller already let in.
// Before, the guard read up to MaxScenarioBytes of every body first, so an
// unauthenticated 2 MB PUT got 413, not 401, and pinned 1 MiB.
func TestItem11bAdminAuthBeforeBody(t *testing.T) {
	big := strings.Repeat("#", 2<<20) // a YAML comment: a scenario with no rules, were it read
	tests := []struct {
		name     string
		token    string
		keys     bool
		body     string
		auth     func(t *testing.T, r *http.Request, body string)
		status   int
		readBody bool // the handler may read the body
	}{
		{name: "no Authorization", token: adminToken, body: big, status: 401},
		{name: "no Authorization, keys", keys: true, body: big, status: 401},
		{name: "wrong token", token: adminToken, body: big, auth: bearer("not-" + adminToken), status: 403},
		{name: "empty token", token: adminToken, body: big, auth: bearer(""), status: 403},
		{name: "another scheme", token: adminToken, body: big, auth: header("Basic YWRtaW46YWRtaW4="), status: 403},
		{name: "malformed SigV4", keys: true, body: big, auth: header("AWS4-HMAC-SHA256 Credential=nonsense"), status: 403},
		{name: "SigV4 by an unknown key", keys: true, body: big, auth: sigv4("AKIDOTHER", secretKey), status: 403},
		{name: "SigV4 without keys", token: adminToken, body: big, auth: sigv4(akid, secretKey), status: 403},
		{name: "right token", token: adminToken, body: "rules: []\n", auth: bearer(adminToken), status: 200, readBody: true},
		{name: "right token, too big", token: adminToken, body: big, auth: bearer(adminToken), status: 413},
		{name: "valid SigV4", keys: true, body: "rules: []\n", auth: sigv4(akid, secretKey), status: 200, readBody: true},
		{name: "invalid SigV4", keys: true, body: "rules: []\n", auth: sigv4(akid, "other-secret"), status: 403, readBody: true},
	}
	clk := clock.NewFake(t0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := protected(t, clk, tt.token, tt.keys)
			a, h := newHandler(o)
			var body *readCounter
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body = &readCounter{r: r.Body}
				r.Body = body
				h.ServeHTTP(w, r)
			}))
			defer srv.Close()

			req, err := http.NewRequest(http.MethodPut, srv.URL+Prefix+"scenario", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.auth != nil {
				tt.auth(t, req, tt.body)
			}
			resp, b := send(t, srv.Client(), req)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d: %.200s", resp.StatusCode, tt.status, b)
			}
			if n := body.read.Load(); !tt.readBody && n > 0 {
				t.Errorf("the handler read %d bytes of the body, want none", n)
			}
			if n := a.buffered.Load(); n != 0 {
				t.Errorf("%d bytes still counted as buffered after the request", n)
			}
			if strings.Contains(string(b), adminToken) {
				t.Errorf("the answer repeats the admin token: %s", b)
			}
		})
	}
}

// protected returns Options over the initial scenario with the admin token
// token, and with keys, the access key akid.
func protected(t *testing.T, clk clock.Clock, token string, keys bool) Options {
	t.Helper()
	s, err := scenario.Parse([]byte(initial))
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Injector: scenario.NewInjector(s, 1, clk), Meter: quota.NewMeter(clk, s.Quotas), Outcomes: &Outcomes{}, Token: token}
	if keys {
		o.Verifier = sigv4verify.New(sigv4verify.Options{Keys: map[string]string{akid: secretKey}, Clock: clk})
	}
	return o
}

// send sends req with c and returns the response, closed, and its body.
func send(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func bearer(tok string) func(*testing.T, *http.Request, string) {
	return header("Bearer " + tok)
}

func header(auth string) func(*testing.T, *http.Request, string) {
	return func(_ *testing.T, r *http.Request, _ string) { r.Header.Set("Authorization", auth) }
}

func sigv4(id, secret string) func(*testing.T, *http.Request, string) {
	return func(t *testing.T, r *http.Request, body string) {
		sum := sha256.Sum256([]byte(body))
		err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: id, SecretAccessKey: secret},
			r, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", t0)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestItem11bAdminBodiesBounded: the request bodies the admin API holds at once are
// bounded by MaxBufferedBytes, a declared length from before it is read and
// a body of unknown length as MaxScenarioBytes; a request that would pass
// the bound gets 503, and the room comes back when the holders end.
func TestItem11bAdminBodiesBounded(t *testing.T) {
	s, err := scenario.Parse([]byte(initial))
	if err != nil {
		t.Fatal(err)
	}
	a, h := newHandler(Options{Injector: scenario.NewInjector(s, 1, clock.NewFake(t0))})
	put := func(body io.Reader, length int64) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPut, Prefix+"scenario", body)
		r.ContentLength = length
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	small := "rules: []\n"

	// Requests whose bodies arrive slowly hold the bound between them: three
	// declare the largest size, one declares no size.
	const holders = MaxBufferedBytes / MaxScenarioBytes
	var pipes []*io.PipeWriter
	done := make(chan *httptest.ResponseRecorder, holders)
	for i := range holders {
		pr, pw := io.Pipe()
		pipes = append(pipes, pw)
		length := int64(MaxScenarioBytes)
		if i == 0 {
			length = -1
		}
		go func() { done <- put(pr, length) }()
		if _, err := io.WriteString(pw, "#"); err != nil { // returns once the handler holds and reads
			t.Fatal(err)
		}
	}
	if n := a.buffered.Load(); n != MaxBufferedBytes {
		t.Fatalf("%d bytes held, want %d", n, MaxBufferedBytes)
	}

	tests := []struct {
		name   string
		body   string
		length int64
		status int
	}{
		{name: "a small body does not fit", body: small, length: int64(len(small)), status: 503},
		{name: "nor one of unknown length", body: small, length: -1, status: 503},
		{name: "an empty body does", length: 0, status: 200},
		{name: "too large is 413 first", body: small, length: MaxScenarioBytes + 1, status: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w := put(strings.NewReader(tt.body), tt.length); w.Code != tt.status {
				t.Errorf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
		})
	}

	for _, pw := range pipes {
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}
	for range holders {
		if w := <-done; w.Code != 400 {
			t.Errorf("a cut-off body: status %d, want 400: %s", w.Code, w.Body)
		}
	}
	if w := put(strings.NewReader(small), int64(len(small))); w.Code != 200 {
		t.Errorf("after the holders ended: status %d, want 200: %s", w.Code, w.Body)
	}
	if n := a.buffered.Load(); n != 0 {
		t.Errorf("%d bytes still counted as buffered", n)
	}
}
