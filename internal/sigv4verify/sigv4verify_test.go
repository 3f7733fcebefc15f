package sigv4verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
)

const (
	keyID  = "AKIDEXAMPLE"
	secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	path   = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
	body   = `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":10}}`
)

var now = time.Date(2026, 3, 4, 12, 30, 0, 0, time.UTC)

// server answers like the emulator would: the rejection as an AWS JSON
// error, or a minimal Converse reply. The last verdict is kept for tests,
// and CheckHeaders's on the same request, before its body was read.
type server struct {
	*httptest.Server
	last, lastHeaders chan *Rejection
}

func newServer(t *testing.T, v *Verifier) *server {
	s := &server{last: make(chan *Rejection, 1), lastHeaders: make(chan *Rejection, 1)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := v.CheckHeaders(r)
		select {
		case <-s.lastHeaders:
		default:
		}
		s.lastHeaders <- hdr
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		rej := v.Verify(r, b)
		select {
		case <-s.last:
		default:
		}
		s.last <- rej
		w.Header().Set("Content-Type", "application/json")
		if rej != nil {
			e, ok := catalog.Lookup(rej.Code)
			if !ok {
				t.Errorf("rejection code %q is not in the catalog", rej.Code)
				return
			}
			w.Header().Set("X-Amzn-Errortype", e.WireCode())
			w.WriteHeader(e.Status)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": rej.Message})
			return
		}
		_, _ = io.WriteString(w, `{"output":{"message":{"role":"assistant","content":[{"text":"hello"}]}},`+
			`"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":1,"totalTokens":4},"metrics":{"latencyMs":1}}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestVerifyWithSDKClient(t *testing.T) {
	tests := []struct {
		name     string
		id       string
		secret   string
		token    string
		wantCode string // "" for success
	}{
		{name: "correct key", id: keyID, secret: secret},
		{name: "correct key with a session token", id: keyID, secret: secret, token: "FwoGZXIvYXdzEXAMPLE"},
		{name: "wrong secret", id: keyID, secret: secret + "x", wantCode: "InvalidSignatureException"},
		{name: "unknown key", id: "AKIDUNKNOWN", secret: secret, wantCode: "UnrecognizedClientException"},
	}
	v := New(Options{Keys: map[string]string{keyID: secret}})
	srv := newServer(t, v)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := bedrockruntime.New(bedrockruntime.Options{
				Region:           "us-east-1",
				BaseEndpoint:     aws.String(srv.URL),
				Credentials:      credentials.NewStaticCredentialsProvider(tt.id, tt.secret, tt.token),
				RetryMaxAttempts: 1,
			})
			out, err := client.Converse(context.Background(), &bedrockruntime.ConverseInput{
				ModelId: aws.String("anthropic.claude-3-haiku-20240307-v1:0"),
				Messages: []types.Message{{Role: types.ConversationRoleUser,
					Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}},
			})
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Converse: %v", err)
				}
				if out.StopReason != types.StopReasonEndTurn {
					t.Errorf("stop reason %q", out.StopReason)
				}
				return
			}
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tt.wantCode {
				t.Fatalf("Converse error = %v, want API error %s", err, tt.wantCode)
			}
		})
	}
}

// signed builds a request to the server signed at the given time.
func signed(t *testing.T, url string, at time.Time, mod func(r *http.Request)) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, url+path+"?x=1", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json")
	if mod != nil {
		mod(r)
	}
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret, SessionToken: r.Header.Get("X-Test-Token")}
	r.Header.Del("X-Test-Token")
	service := "bedrock"
	if s := r.Header.Get("X-Test-Service"); s != "" {
		service = s
		r.Header.Del("X-Test-Service")
	}
	payloadHash := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" {
		payloadHash = h // as S3-style clients sign UNSIGNED-PAYLOAD
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, payloadHash, service, "us-east-1", at); err != nil {
		t.Fatal(err)
	}
	return r
}

func setBody(r *http.Request, b string) {
	r.Body = io.NopCloser(strings.NewReader(b))
	r.ContentLength = int64(len(b))
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		at      time.Time             // signing time; zero means now
		before  func(r *http.Request) // before signing
		after   func(r *http.Request) // after signing: tampering
		code    string                // "" for accepted
		message string                // exact message, or a prefix ending in "..."
	}{
		{name: "valid"},
		{name: "an unsigned header may be added", after: func(r *http.Request) { r.Header.Set("X-Extra", "1") }},
		{name: "four minutes old", at: now.Add(-4 * time.Minute)},
		{name: "four minutes ahead", at: now.Add(4 * time.Minute)},
		{name: "session token", before: func(r *http.Request) { r.Header.Set("X-Test-Token", "token-1") }},
		{name: "content hash header", before: func(r *http.Request) {
			sum := sha256.Sum256([]byte(body))
			r.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
		}},
		{name: "region matches the endpoint", opts: Options{Region: func(*http.Request) string { return "us-east-1" }}},
		{name: "missing authorization", after: func(r *http.Request) { r.Header.Del("Authorization") },
			code: "AccessDeniedException", message: "Authorization header is missing"},
		{name: "body tampered", after: func(r *http.Request) { setBody(r, strings.Replace(body, "hi", "ho", 1)) },
			code: "InvalidSignatureException", message: "The request signature we calculated does not match the signature you provided. ..."},
		{name: "body tampered under a hash header", before: func(r *http.Request) {
			sum := sha256.Sum256([]byte(body))
			r.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
		}, after: func(r *http.Request) { setBody(r, strings.Replace(body, "hi", "ho", 1)) },
			code: "InvalidSignatureException", message: "The provided 'x-amz-content-sha256' header does not match what was computed."},
		{name: "unsigned payload lets the body change", before: func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		}, after: func(r *http.Request) { setBody(r, strings.Replace(body, "hi", "ho", 1)) }},
		{name: "signed header changed", after: func(r *http.Request) { r.Header.Set("Accept", "text/plain") },
			code: "InvalidSignatureException", message: "The request signature we calculated does not match..."},
		{name: "signed header removed", after: func(r *http.Request) { r.Header.Del("Content-Type") },
			code: "InvalidSignatureException", message: "The request signature we calculated does not match..."},
		{name: "session token changed", before: func(r *http.Request) { r.Header.Set("X-Test-Token", "token-1") },
			after: func(r *http.Request) { r.Header.Set("X-Amz-Security-Token", "token-2") },
			code:  "InvalidSignatureException", message: "The request signature we calculated does not match..."},
		{name: "path changed", after: func(r *http.Request) {
			r.URL.Path = strings.Replace(r.URL.Path, "haiku", "sonnet", 1)
			r.URL.RawPath = ""
		},
			code: "InvalidSignatureException", message: "The request signature we calculated does not match..."},
		{name: "query changed", after: func(r *http.Request) { r.URL.RawQuery = "x=2" },
			code: "InvalidSignatureException", message: "The request signature we calculated does not match..."},
		{name: "method changed", after: func(r *http.Request) { r.Method = http.MethodPut },
			code: "InvalidSignatureException", message: "The request signature we calculated does not match..."},
		{name: "date changed", after: func(r *http.Request) { r.Header.Set("X-Amz-Date", now.Add(time.Second).Format(amzDate)) },
			code: "InvalidSignatureException", message: "The request signature we calculated does not match..."},
		{name: "key not configured", opts: Options{Keys: map[string]string{"AKIDOTHER": secret}},
			code: "UnrecognizedClientException", message: "The security token included in the request is invalid."},
		{name: "secret differs", opts: Options{Keys: map[string]string{keyID: "other"}},
			code: "InvalidSignatureException", message: "The request signature we calculated does not match..."},
		{name: "signed six minutes ago", at: now.Add(-6 * time.Minute),
			code: "InvalidSignatureException", message: "Signature expired: 20260304T122400Z is now earlier than 20260304T122500Z (20260304T123000Z - 5 min.)"},
		{name: "signed six minutes ahead", at: now.Add(6 * time.Minute),
			code: "InvalidSignatureException", message: "Signature not yet current: 20260304T123600Z is still later than 20260304T123500Z (20260304T123000Z + 5 min.)"},
		{name: "custom skew", opts: Options{MaxSkew: 30 * time.Second}, at: now.Add(-time.Minute),
			code: "InvalidSignatureException", message: "Signature expired: 20260304T122900Z is now earlier than 20260304T122930Z (20260304T123000Z - 30s.)"},
		{name: "wrong service", before: func(r *http.Request) { r.Header.Set("X-Test-Service", "s3") },
			code: "InvalidSignatureException", message: "Credential should be scoped to correct service: 'bedrock'. "},
		{name: "wrong region", opts: Options{Region: func(*http.Request) string { return "us-west-2" }},
			code: "InvalidSignatureException", message: "Credential should be scoped to a valid region, not 'us-east-1'. "},
		{name: "scope date differs from the header date", at: time.Date(2026, 3, 4, 23, 59, 59, 0, time.UTC),
			opts:  Options{Clock: clock.NewFake(time.Date(2026, 3, 5, 0, 0, 1, 0, time.UTC))},
			after: func(r *http.Request) { r.Header.Set("X-Amz-Date", "20260305T000001Z") },
			code:  "InvalidSignatureException", message: "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20260304' != '20260305', from '20260305T000001Z'."},
		{name: "missing date", after: func(r *http.Request) { r.Header.Del("X-Amz-Date") },
			code: "IncompleteSignature", message: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."},
		{name: "malformed date", after: func(r *http.Request) { r.Header.Set("X-Amz-Date", "yesterday") },
			code: "IncompleteSignature", message: "Date must be in ISO-8601 'basic format'. Got 'yesterday'..."},
		{name: "bare token is not quoted back", after: func(r *http.Request) { r.Header.Set("Authorization", "ABSKexample") },
			code: "IncompleteSignature", message: "Authorization header requires 'Credential' parameter. " +
				"Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. " +
				"Unsupported authorization type; want AWS4-HMAC-SHA256."},
		{name: "bearer token", after: func(r *http.Request) { r.Header.Set("Authorization", "Bearer ABSKexample") },
			code: "IncompleteSignature", message: "Authorization header requires 'Credential' parameter...."},
		{name: "no signature part", after: func(r *http.Request) {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+keyID+"/20260304/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date")
		}, code: "IncompleteSignature", message: "Authorization header requires 'Signature' parameter."},
		{name: "bad credential", after: func(r *http.Request) {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+keyID+"/20260304/us-east-1, SignedHeaders=host;x-amz-date, Signature=00")
		}, code: "IncompleteSignature", message: "Credential should be scoped to a valid region, service and date..."},
		{name: "host not signed", after: func(r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", strings.Replace(a, "SignedHeaders=accept;content-length;content-type;host;x-amz-date", "SignedHeaders=accept;content-type;x-amz-date", 1))
		}, code: "IncompleteSignature", message: "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts.Keys == nil {
				opts.Keys = map[string]string{keyID: secret}
			}
			if opts.Clock == nil {
				opts.Clock = clock.NewFake(now)
			}
			srv := newServer(t, New(opts))
			at := tt.at
			if at.IsZero() {
				at = now
			}
			r := signed(t, srv.URL, at, tt.before)
			if tt.after != nil {
				tt.after(r)
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got, hdr := <-srv.last, <-srv.lastHeaders
			// CheckHeaders refuses what Verify does without the body, with
			// the same answer, and leaves the rest to Verify.
			switch {
			case got == badSig || got == badHash:
				if hdr != nil {
					t.Errorf("CheckHeaders refused %+v, want it to leave the body's checks to Verify", hdr)
				}
			case got == nil && hdr != nil, got != nil && (hdr == nil || *hdr != *got):
				t.Errorf("CheckHeaders %+v, want Verify's %+v", hdr, got)
			}
			if tt.code == "" {
				if got != nil {
					t.Fatalf("rejected: %+v", got)
				}
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d", resp.StatusCode)
				}
				return
			}
			if got == nil {
				t.Fatalf("accepted, want %s", tt.code)
			}
			if got.Code != tt.code {
				t.Errorf("code %q, want %q (message %q)", got.Code, tt.code, got.Message)
			}
			if p, ok := strings.CutSuffix(tt.message, "..."); ok {
				if !strings.HasPrefix(got.Message, p) {
					t.Errorf("message %q, want it to start with %q", got.Message, p)
				}
			} else if got.Message != tt.message {
				t.Errorf("message %q, want %q", got.Message, tt.message)
			}
			e, _ := catalog.Lookup(tt.code)
			if resp.StatusCode != e.Status {
				t.Errorf("status %d, want %d", resp.StatusCode, e.Status)
			}
		})
	}
}

func TestVerifyOff(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader([]byte(body)))
	tests := []struct {
		name string
		v    *Verifier
	}{
		{name: "no keys", v: New(Options{})},
		{name: "nil verifier", v: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.v.Enabled() {
				t.Error("Enabled() = true")
			}
			if rej := tt.v.Verify(r, []byte(body)); rej != nil {
				t.Errorf("Verify = %+v, want nil with verification off", rej)
			}
		})
	}
}

// TestAuthenticate checks that Authenticate names the key that signed a
// request, and that Required turns verification on with no keys at all.
func TestAuthenticate(t *testing.T) {
	clk := clock.NewFake(now)
	tests := []struct {
		name    string
		opts    Options
		mod     func(r *http.Request)
		wantKey string
		code    string
	}{
		{name: "the signing key among several", opts: Options{Keys: map[string]string{"AKIDOTHER": "other", keyID: secret}},
			wantKey: keyID},
		{name: "wrong secret", opts: Options{Keys: map[string]string{keyID: "other"}},
			code: "InvalidSignatureException"},
		{name: "required with no keys: every key is unknown", opts: Options{Required: true},
			code: "UnrecognizedClientException"},
		{name: "required with no keys: unsigned", opts: Options{Required: true},
			mod: func(r *http.Request) { r.Header.Del("Authorization") }, code: "AccessDeniedException"},
		{name: "off", opts: Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Clock = clk
			v := New(tt.opts)
			r := signed(t, "http://gateway.example", now, nil)
			if tt.mod != nil {
				tt.mod(r)
			}
			key, rej := v.Authenticate(r, []byte(body))
			if tt.code != "" {
				if rej == nil || rej.Code != tt.code {
					t.Fatalf("Authenticate = %q, %+v; want rejection %s", key, rej, tt.code)
				}
				if key != "" {
					t.Errorf("a rejected request named key %q", key)
				}
				return
			}
			if rej != nil || key != tt.wantKey {
				t.Fatalf("Authenticate = %q, %+v; want %q, nil", key, rej, tt.wantKey)
			}
			if got := v.Verify(r, []byte(body)); got != nil {
				t.Errorf("Verify = %+v where Authenticate accepted", got)
			}
		})
	}
}

func TestNewCopiesKeys(t *testing.T) {
	keys := map[string]string{keyID: secret}
	v := New(Options{Keys: keys})
	delete(keys, keyID)
	if !v.Enabled() {
		t.Fatal("changing the caller's map after New changed the verifier")
	}
}

// FuzzVerify checks that no Authorization or X-Amz-Date header makes Verify
// panic, and that only a correct signature is accepted.
func FuzzVerify(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential="+keyID+"/20260304/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00", "20260304T123000Z")
	f.Add("Bearer x", "")
	f.Add("AWS4-HMAC-SHA256 Credential=/", "2026")
	v := New(Options{Keys: map[string]string{keyID: secret}, Clock: clock.NewFake(now)})
	f.Fuzz(func(t *testing.T, auth, date string) {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		r.Header.Set("Authorization", auth)
		r.Header.Set("X-Amz-Date", date)
		if rej := v.Verify(r, []byte(body)); rej == nil {
			t.Fatalf("accepted a forged signature: %q %q", auth, date)
		}
	})
}

// TestVerifyPathEscaping checks the canonical URI: S3 signs the path as
// sent (escaped once), every other service escapes it once more, and a
// request signed the other way is refused.
func TestVerifyPathEscaping(t *testing.T) {
	const s3Path = "/escape-bucket/a%20b/x%2By%3Dz%25w/%E6%97%A5%C3%A9.jsonl"
	tests := []struct {
		name     string
		service  string
		path     string // as sent
		signOnce bool   // sign with DisableURIPathEscaping, as the S3 client does
		code     string // "" for accepted
	}{
		{name: "bedrock model id with a colon, escaped twice", service: "bedrock", path: path},
		{name: "bedrock signed once", service: "bedrock", path: path, signOnce: true, code: "InvalidSignatureException"},
		{name: "s3 key needing escapes, escaped once", service: "s3", path: s3Path, signOnce: true},
		{name: "s3 signed twice", service: "s3", path: s3Path, code: "InvalidSignatureException"},
		{name: "s3 plain key", service: "s3", path: "/escape-bucket/dir/in.jsonl", signOnce: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := New(Options{Keys: map[string]string{keyID: secret}, Service: tt.service})
			srv := newServer(t, v)
			r, err := http.NewRequest(http.MethodPut, srv.URL+tt.path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(body))
			signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = tt.signOnce })
			if err := signer.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret}, r,
				hex.EncodeToString(sum[:]), tt.service, "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			rej := <-srv.last
			switch {
			case tt.code == "" && rej != nil:
				t.Errorf("Verify %s = %s %q, want accepted", tt.path, rej.Code, rej.Message)
			case tt.code != "" && (rej == nil || rej.Code != tt.code):
				t.Errorf("Verify %s = %v, want %s", tt.path, rej, tt.code)
			}
		})
	}
}
