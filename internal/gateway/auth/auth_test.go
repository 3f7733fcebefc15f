package auth

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/keel-run/keel/internal/clock"
)

// The test callers' credentials. No test prints them: a failure shows the
// case's name and the error, which never holds a secret.
const (
	tokenA  = "team-a-token-0123456789abcdef"
	tokenC  = "team-c-token-fedcba9876543210"
	keyA    = "AKIDTEAMA"
	secretA = "team-a-secret/K7MDENG+bPxRfiCYEXAMPLEKEY"
	keyB    = "AKIDTEAMB"
	secretB = "team-b-secret/wJalrXUtnFEMIEXAMPLEKEY"

	modelPath = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
	reqBody   = `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":10}}`
)

var now = time.Date(2026, 3, 4, 12, 30, 0, 0, time.UTC)

func testCallers() []Caller {
	return []Caller{
		{Name: "team-a", Bearer: tokenA, AccessKeyID: keyA, SecretAccessKey: secretA, Models: []string{"*anthropic.claude*"}, TokensPerMinute: 200000},
		{Name: "team-b", AccessKeyID: keyB, SecretAccessKey: secretB, Priority: PriorityBatch},
		{Name: "team-c", Bearer: tokenC},
	}
}

// sigv4Req is a request to the gateway signed by key/secret at the given
// time for service in region; mod runs before signing.
type sigv4Req struct {
	key, secret     string
	at              time.Time
	service, region string
	hashHeader      bool // send X-Amz-Content-Sha256, as S3-style clients do
	unsigned        bool // sign X-Amz-Content-Sha256: UNSIGNED-PAYLOAD
}

// overTLS marks r as having come over TLS, as net/http's server does.
func overTLS(r *http.Request) *http.Request {
	r.TLS = &tls.ConnectionState{HandshakeComplete: true}
	return r
}

// plainHTTP marks r as having come over plain HTTP.
func plainHTTP(r *http.Request) { r.TLS = nil }

func (s sigv4Req) build(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, "http://gateway.test"+modelPath, strings.NewReader(reqBody))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256([]byte(reqBody))
	hash := hex.EncodeToString(sum[:])
	if s.hashHeader {
		r.Header.Set("X-Amz-Content-Sha256", hash)
	}
	if s.unsigned {
		hash = "UNSIGNED-PAYLOAD"
		r.Header.Set("X-Amz-Content-Sha256", hash)
	}
	at, service, region := s.at, s.service, s.region
	if at.IsZero() {
		at = now
	}
	if service == "" {
		service = "bedrock"
	}
	if region == "" {
		region = "us-east-1"
	}
	creds := aws.Credentials{AccessKeyID: s.key, SecretAccessKey: s.secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hash, service, region, at); err != nil {
		t.Fatal(err)
	}
	return overTLS(r)
}

func signedBy(key, secret string) func(t *testing.T) *http.Request {
	return sigv4Req{key: key, secret: secret}.build
}

func withBearer(h string) func(t *testing.T) *http.Request {
	return func(t *testing.T) *http.Request {
		r, err := http.NewRequest(http.MethodPost, "http://gateway.test"+modelPath, strings.NewReader(reqBody))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Authorization", h)
		return overTLS(r)
	}
}

func TestAuthenticate(t *testing.T) {
	const sigMismatch = "The request signature we calculated does not match..."
	tests := []struct {
		name    string
		callers []Caller // nil: testCallers()
		opts    Options
		req     func(t *testing.T) *http.Request
		body    string // "": reqBody
		after   func(r *http.Request)
		want    string // the caller's name, or "" for a refusal
		code    string
		kind    error
		message string // "..." at the end: a prefix
	}{
		{name: "sigv4: team-a", req: signedBy(keyA, secretA), want: "team-a"},
		{name: "sigv4: team-b", req: signedBy(keyB, secretB), want: "team-b"},
		{name: "sigv4: any region", req: sigv4Req{key: keyB, secret: secretB, region: "eu-central-1"}.build, want: "team-b"},
		{name: "sigv4: body hash sent and right", req: sigv4Req{key: keyA, secret: secretA, hashHeader: true}.build, want: "team-a"},
		{name: "sigv4: signed 4 minutes ago", req: sigv4Req{key: keyA, secret: secretA, at: now.Add(-4 * time.Minute)}.build, want: "team-a"},
		{name: "bearer: team-a", req: withBearer("Bearer " + tokenA), want: "team-a"},
		{name: "bearer: team-c", req: withBearer("Bearer " + tokenC), want: "team-c"},
		{name: "bearer: scheme in lower case", req: withBearer("bearer " + tokenC), want: "team-c"},
		{name: "bearer: padded", req: withBearer("Bearer   " + tokenC + "  "), want: "team-c"},
		{name: "bearer: stray SigV4 headers are ignored", req: withBearer("Bearer " + tokenA),
			after: func(r *http.Request) { r.Header.Set("X-Amz-Date", "20000101T000000Z") }, want: "team-a"},

		{name: "no Authorization header", req: withBearer(""), after: func(r *http.Request) { r.Header.Del("Authorization") },
			code: "AccessDeniedException", kind: ErrNoCredentials, message: "Authorization header is missing"},
		{name: "bearer and sigv4 both", req: signedBy(keyA, secretA), after: func(r *http.Request) { r.Header.Add("Authorization", "Bearer "+tokenA) },
			code: "IncompleteSignature", kind: ErrNoCredentials,
			message: "The request has 2 Authorization headers; send one: a Bearer API key or a SigV4 signature."},
		{name: "sigv4 in the query string", req: withBearer(""), after: func(r *http.Request) {
			r.Header.Del("Authorization")
			r.URL.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + keyA + "%2F20260304%2Fus-east-1%2Fbedrock%2Faws4_request&X-Amz-Signature=00"
		}, code: "IncompleteSignature", kind: ErrNoCredentials, message: "keel's gateway takes a SigV4 signature in the Authorization header only..."},
		{name: "bearer: wrong token", req: withBearer("Bearer team-a-token-0123456789abcdeX"),
			code: "AccessDeniedException", kind: ErrUnknownCredentials, message: "Authentication failed: Please make sure your API Key is valid."},
		{name: "bearer: a prefix of a token", req: withBearer("Bearer " + tokenA[:20]),
			code: "AccessDeniedException", kind: ErrUnknownCredentials, message: "Authentication failed: Please make sure your API Key is valid."},
		{name: "bearer: empty", req: withBearer("Bearer"),
			code: "AccessDeniedException", kind: ErrUnknownCredentials, message: "Authentication failed: Please make sure your API Key is valid."},
		{name: "bearer: a SigV4 secret is no token", req: withBearer("Bearer " + secretB),
			code: "AccessDeniedException", kind: ErrUnknownCredentials, message: "Authentication failed: Please make sure your API Key is valid."},
		{name: "bearer over plain HTTP", req: withBearer("Bearer " + tokenA), after: plainHTTP,
			code: "ValidationException", kind: ErrInsecureTransport, message: "keel gateway: a bearer token (Bedrock API key) is accepted over HTTPS only..."},
		{name: "bearer over plain HTTP: refused before the token is looked at", req: withBearer("Bearer team-a-token-0123456789abcdeX"),
			after: plainHTTP, code: "ValidationException", kind: ErrInsecureTransport, message: "keel gateway: a bearer token (Bedrock API key) is accepted over HTTPS only..."},
		{name: "sigv4 over plain HTTP", req: signedBy(keyA, secretA), after: plainHTTP, want: "team-a"},
		{name: "sigv4: UNSIGNED-PAYLOAD over TLS", req: sigv4Req{key: keyA, secret: secretA, unsigned: true}.build, want: "team-a"},
		{name: "sigv4: UNSIGNED-PAYLOAD over plain HTTP", req: sigv4Req{key: keyA, secret: secretA, unsigned: true}.build, after: plainHTTP,
			code: "ValidationException", kind: ErrInsecureTransport, message: "keel gateway: X-Amz-Content-Sha256: UNSIGNED-PAYLOAD is accepted over HTTPS only..."},
		{name: "bearer: no bearer callers", callers: []Caller{{Name: "team-b", AccessKeyID: keyB, SecretAccessKey: secretB}},
			req:  withBearer("Bearer " + tokenA),
			code: "AccessDeniedException", kind: ErrUnknownCredentials, message: "Authentication failed: Please make sure your API Key is valid."},
		{name: "a token without its scheme is not quoted back", req: withBearer(tokenA),
			code: "IncompleteSignature", kind: ErrBadSignature, message: "Authorization header requires 'Credential' parameter. " +
				"Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. " +
				"Unsupported authorization type; want AWS4-HMAC-SHA256."},
		{name: "sigv4: wrong secret", req: signedBy(keyA, secretB),
			code: "InvalidSignatureException", kind: ErrBadSignature, message: sigMismatch},
		{name: "sigv4: unknown key", req: signedBy("AKIDUNKNOWN", secretA),
			code: "UnrecognizedClientException", kind: ErrUnknownCredentials, message: "The security token included in the request is invalid."},
		{name: "sigv4: no sigv4 callers", callers: []Caller{{Name: "team-c", Bearer: tokenC}}, req: signedBy(keyA, secretA),
			code: "UnrecognizedClientException", kind: ErrUnknownCredentials, message: "The security token included in the request is invalid."},
		{name: "sigv4: signed 6 minutes ago", req: sigv4Req{key: keyA, secret: secretA, at: now.Add(-6 * time.Minute)}.build,
			code: "InvalidSignatureException", kind: ErrBadSignature,
			message: "Signature expired: 20260304T122400Z is now earlier than 20260304T122500Z (20260304T123000Z - 5 min.)"},
		{name: "sigv4: signed 6 minutes ahead", req: sigv4Req{key: keyA, secret: secretA, at: now.Add(6 * time.Minute)}.build,
			code: "InvalidSignatureException", kind: ErrBadSignature,
			message: "Signature not yet current: 20260304T123600Z is still later than 20260304T123500Z (20260304T123000Z + 5 min.)"},
		{name: "sigv4: a narrower skew window", opts: Options{MaxSkew: time.Minute},
			req:  sigv4Req{key: keyA, secret: secretA, at: now.Add(-2 * time.Minute)}.build,
			code: "InvalidSignatureException", kind: ErrBadSignature, message: "Signature expired: 20260304T122800Z is now earlier than 20260304T122900Z..."},
		{name: "sigv4: another service", req: sigv4Req{key: keyA, secret: secretA, service: "s3"}.build,
			code: "InvalidSignatureException", kind: ErrBadSignature, message: "Credential should be scoped to correct service: 'bedrock'. "},
		{name: "sigv4: body tampered", req: signedBy(keyA, secretA), body: strings.Replace(reqBody, "hi", "ho", 1),
			code: "InvalidSignatureException", kind: ErrBadSignature, message: sigMismatch},
		{name: "sigv4: body tampered, hash header sent", req: sigv4Req{key: keyA, secret: secretA, hashHeader: true}.build,
			body: strings.Replace(reqBody, "hi", "ho", 1), code: "InvalidSignatureException", kind: ErrBadSignature,
			message: "The provided 'x-amz-content-sha256' header does not match what was computed."},
		{name: "sigv4: signed header tampered", req: signedBy(keyA, secretA),
			after: func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") },
			code:  "InvalidSignatureException", kind: ErrBadSignature, message: sigMismatch},
		{name: "sigv4: path tampered", req: signedBy(keyA, secretA), after: func(r *http.Request) {
			r.URL.Path = strings.Replace(r.URL.Path, "haiku", "opus", 1)
			r.URL.RawPath = strings.Replace(r.URL.RawPath, "haiku", "opus", 1)
		}, code: "InvalidSignatureException", kind: ErrBadSignature, message: sigMismatch},
		{name: "sigv4: date header removed", req: signedBy(keyA, secretA), after: func(r *http.Request) { r.Header.Del("X-Amz-Date") },
			code: "IncompleteSignature", kind: ErrBadSignature,
			message: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			callers := tt.callers
			if callers == nil {
				callers = testCallers()
			}
			opts := tt.opts
			opts.Clock = clock.NewFake(now)
			a, err := New(callers, opts)
			if err != nil {
				t.Fatal(err)
			}
			r := tt.req(t)
			if tt.after != nil {
				tt.after(r)
			}
			body := tt.body
			if body == "" {
				body = reqBody
			}
			c, err := a.Authenticate(r, []byte(body))
			hdrErr := a.CheckHeaders(r)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Authenticate: %v; want caller %s", err, tt.want)
				}
				if c == nil || c.Name != tt.want {
					t.Fatalf("Authenticate = %v, want caller %s", c, tt.want)
				}
				if hdrErr != nil {
					t.Errorf("CheckHeaders: %v for a request Authenticate accepts", hdrErr)
				}
				return
			}
			if c != nil {
				t.Fatalf("Authenticate = %v, want refusal %s", c, tt.code)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Authenticate error %v is not an *Error", err)
			}
			checkError(t, e, tt.code, tt.kind, tt.message)
			for _, secret := range []string{tokenA, tokenC, secretA, secretB} {
				if strings.Contains(e.Message, secret) || strings.Contains(err.Error(), secret) {
					t.Errorf("the error of %q holds a secret", tt.name)
				}
			}
			// CheckHeaders refuses what Authenticate does without the body,
			// with the same answer, and leaves the body's checks to it.
			bodyCheck := strings.HasPrefix(e.Message, "The request signature we calculated") ||
				strings.HasPrefix(e.Message, "The provided 'x-amz-content-sha256'")
			switch {
			case bodyCheck && hdrErr != nil:
				t.Errorf("CheckHeaders: %v; want nil, the body's checks left to Authenticate", hdrErr)
			case !bodyCheck && (hdrErr == nil || hdrErr.Error() != err.Error()):
				t.Errorf("CheckHeaders: %v; want Authenticate's %v", hdrErr, err)
			}
		})
	}
}

// checkError checks e's code, its catalog status, failure mode and
// message ("..." at the end: a prefix).
func checkError(t *testing.T, e *Error, code string, kind error, message string) {
	t.Helper()
	status := map[string]int{"IncompleteSignature": 400, "AccessDeniedException": 403,
		"InvalidSignatureException": 403, "UnrecognizedClientException": 403, "ThrottlingException": 429, "ValidationException": 400}[code]
	if e.Code != code || e.Status != status {
		t.Errorf("error %s %d, want %s %d (message %q)", e.Code, e.Status, code, status, e.Message)
	}
	if !errors.Is(e, kind) {
		t.Errorf("error %v is not %v", e, kind)
	}
	if p, ok := strings.CutSuffix(message, "..."); ok {
		if !strings.HasPrefix(e.Message, p) {
			t.Errorf("message %q, want it to start with %q", e.Message, p)
		}
	} else if e.Message != message {
		t.Errorf("message %q, want %q", e.Message, message)
	}
}

func TestAllow(t *testing.T) {
	a, err := New(append(testCallers(),
		Caller{Name: "profiles", Bearer: "profiles-token-0123456789", Models: []string{
			"us.anthropic.claude-3-*", "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"}},
	), Options{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Caller{}
	for _, c := range a.Callers() {
		byName[c.Name] = c
	}
	const denied = "User: %s is not authorized to perform: bedrock:InvokeModel on resource: %s because no models pattern of this gateway caller allows it"
	tests := []struct {
		name   string
		caller *Caller
		model  string
		ok     bool
	}{
		{name: "glob: model ID", caller: byName["team-a"], model: "anthropic.claude-3-haiku-20240307-v1:0", ok: true},
		{name: "glob: inference profile ID", caller: byName["team-a"], model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", ok: true},
		{name: "glob: foundation model ARN", caller: byName["team-a"],
			model: "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0", ok: true},
		{name: "glob: another provider", caller: byName["team-a"], model: "amazon.nova-pro-v1:0"},
		{name: "glob: case differs", caller: byName["team-a"], model: "Anthropic.Claude-3-haiku-20240307-v1:0"},
		{name: "no models: everything", caller: byName["team-b"], model: "amazon.nova-pro-v1:0", ok: true},
		{name: "profile pattern", caller: byName["profiles"], model: "us.anthropic.claude-3-haiku-20240307-v1:0", ok: true},
		{name: "profile pattern: bare model ID is another identifier", caller: byName["profiles"], model: "anthropic.claude-3-haiku-20240307-v1:0"},
		{name: "application inference profile ARN", caller: byName["profiles"],
			model: "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123", ok: true},
		{name: "another application inference profile", caller: byName["profiles"],
			model: "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc1234"},
		{name: "a copy with the same name", caller: &Caller{Name: "team-a"}, model: "amazon.nova-pro-v1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.Allow(tt.caller, tt.model)
			if tt.ok {
				if err != nil {
					t.Fatalf("Allow: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Allow = %v, want an *Error", err)
			}
			checkError(t, e, "AccessDeniedException", ErrModelDenied, fmt.Sprintf(denied, tt.caller.Name, tt.model))
		})
	}
	for _, tt := range []struct {
		name   string
		caller *Caller
		model  string // "": amazon.nova-pro-v1:0
		want   string
	}{
		{name: "nil caller", want: "User: an unknown caller is not authorized..."},
		{name: "unknown caller", caller: &Caller{Name: "team-z"}, want: `User: unknown caller "team-z" is not authorized...`},
		{name: "odd model ID is quoted", caller: byName["team-a"], model: "amazon.nova\n\x00",
			want: `User: team-a is not authorized to perform: bedrock:InvokeModel on resource: "amazon.nova\n\x00" because...`},
		{name: "huge model ID is cut", caller: byName["team-a"], model: strings.Repeat("m", 1<<20),
			want: `User: team-a is not authorized to perform: bedrock:InvokeModel on resource: "` + strings.Repeat("m", 2048) + `"... because...`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			model := tt.model
			if model == "" {
				model = "amazon.nova-pro-v1:0"
			}
			var e *Error
			if err := a.Allow(tt.caller, model); !errors.As(err, &e) {
				t.Fatalf("Allow = %v, want an *Error", err)
			}
			checkError(t, e, "AccessDeniedException", ErrModelDenied, tt.want)
		})
	}
}

func TestNewRefusesNegativeSkew(t *testing.T) {
	_, err := New(testCallers(), Options{MaxSkew: -time.Second})
	if want := "auth: Options.MaxSkew is -1s; want 0 (AWS's 5 minutes) or more"; err == nil || err.Error() != want {
		t.Errorf("New error %v, want %q", err, want)
	}
}

// FuzzAuthenticate checks that no Authorization header or model ID makes
// Authenticate or Allow panic, that only a caller's exact token is taken,
// and that no answer holds a secret or a line break.
func FuzzAuthenticate(f *testing.F) {
	f.Add("Bearer "+tokenA, "anthropic.claude-3-haiku-20240307-v1:0")
	f.Add("bearer "+tokenC+"x", "arn:aws:bedrock:us-east-1::foundation-model/x")
	f.Add("AWS4-HMAC-SHA256 Credential="+keyA+"/20260304/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00", "a\nb")
	f.Add(tokenA, "")
	a, err := New(testCallers(), Options{Clock: clock.NewFake(now)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header, model string) {
		r, err := http.NewRequest(http.MethodPost, "http://gateway.test"+modelPath, strings.NewReader(reqBody))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Authorization", header)
		r.Header.Set("X-Amz-Date", "20260304T123000Z")
		c, err := a.Authenticate(r, []byte(reqBody))
		if c != nil {
			if tok, _ := bearerToken(header); tok != c.Bearer {
				t.Fatalf("took a header that is not %s's token as its token", c.Name)
			}
		} else {
			c = a.Callers()[0]
		}
		for _, e := range []error{err, a.CheckHeaders(r), a.Allow(c, model)} {
			if e == nil {
				continue
			}
			msg := e.Error()
			for _, secret := range []string{tokenA, tokenC, secretA, secretB} {
				if strings.Contains(msg, secret) {
					t.Fatal("an answer holds a secret")
				}
			}
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatal("an answer holds a line break")
			}
		}
	})
}
