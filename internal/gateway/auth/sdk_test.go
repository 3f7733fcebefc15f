package auth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/auth/bearer"

	"github.com/keel-run/keel/internal/clock"
)

// gateway is an httptest server that authenticates each request as keel's
// gateway does and answers a minimal Converse reply, or the refusal in
// Bedrock's shape. seen gets the caller of each accepted request and the
// scheme of its Authorization header.
type gateway struct {
	*httptest.Server
	seen chan seenRequest
}

type seenRequest struct {
	caller, scheme string
}

func newGateway(t *testing.T, a *Authenticator, tls bool) *gateway {
	t.Helper()
	g := &gateway{seen: make(chan seenRequest, 1)}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.CheckHeaders(r); err != nil {
			writeError(w, err)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c, err := a.Authenticate(r, body)
		if err == nil {
			err = a.Allow(c, strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/model/"), "/converse"))
		}
		if err != nil {
			writeError(w, err)
			return
		}
		scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		g.seen <- seenRequest{caller: c.Name, scheme: scheme}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"output":{"message":{"role":"assistant","content":[{"text":"hello"}]}},`+
			`"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":1,"totalTokens":4},"metrics":{"latencyMs":1}}`)
	})
	if tls {
		g.Server = httptest.NewTLSServer(h)
	} else {
		g.Server = httptest.NewServer(h)
	}
	t.Cleanup(g.Close)
	return g
}

// writeError answers err as Bedrock does.
func writeError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", e.Code)
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": e.Message})
}

func converse(ctx context.Context, client *bedrockruntime.Client, model string) error {
	_, err := client.Converse(ctx, &bedrockruntime.ConverseInput{
		ModelId: aws.String(model),
		Messages: []types.Message{{Role: types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}},
	})
	return err
}

// wantAPIError checks that err is the API error code with message.
func wantAPIError(t *testing.T, err error, code, message string) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %v, want API error %s", err, code)
	}
	if apiErr.ErrorCode() != code || apiErr.ErrorMessage() != message {
		t.Errorf("API error %s %q, want %s %q", apiErr.ErrorCode(), apiErr.ErrorMessage(), code, message)
	}
}

const (
	haiku           = "anthropic.claude-3-haiku-20240307-v1:0"
	sigMismatchFull = "The request signature we calculated does not match the signature you provided. " +
		"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

// tamperTransport changes each request after the SDK signed it, as a proxy
// on the way might.
type tamperTransport struct {
	base   http.RoundTripper
	tamper func(r *http.Request)
}

func (t tamperTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	t.tamper(r)
	return t.base.RoundTrip(r)
}

// TestSDKSigV4 drives the authenticator with aws-sdk-go-v2's Bedrock
// Runtime client, which signs with SigV4 over plain HTTP.
func TestSDKSigV4(t *testing.T) {
	tests := []struct {
		name        string
		key, secret string
		tamper      func(r *http.Request) // changes the request after it was signed
		model       string
		want        string // caller, or "" for a refusal
		code, msg   string
	}{
		{name: "team-a", key: keyA, secret: secretA, model: haiku, want: "team-a"},
		{name: "team-b", key: keyB, secret: secretB, model: "amazon.nova-pro-v1:0", want: "team-b"},
		{name: "wrong secret", key: keyA, secret: secretB, model: haiku, code: "InvalidSignatureException", msg: sigMismatchFull},
		{name: "body changed after signing", key: keyA, secret: secretA, model: haiku, tamper: func(r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			b = []byte(strings.Replace(string(b), `"hi"`, `"ho"`, 1))
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(string(b))), int64(len(b))
		}, code: "InvalidSignatureException", msg: sigMismatchFull},
		{name: "header changed after signing", key: keyA, secret: secretA, model: haiku, tamper: func(r *http.Request) {
			r.Header.Set("Content-Type", "text/plain")
		}, code: "InvalidSignatureException", msg: sigMismatchFull},
		{name: "Authorization removed on the way", key: keyA, secret: secretA, model: haiku,
			tamper: func(r *http.Request) { r.Header.Del("Authorization") },
			code:   "AccessDeniedException", msg: "Authorization header is missing"},
		{name: "unknown key", key: "AKIDUNKNOWN", secret: secretA, model: haiku, code: "UnrecognizedClientException",
			msg: "The security token included in the request is invalid."},
		{name: "model not allowed", key: keyA, secret: secretA, model: "amazon.nova-pro-v1:0", code: "AccessDeniedException",
			msg: "User: team-a is not authorized to perform: bedrock:InvokeModel on resource: amazon.nova-pro-v1:0 " +
				"because no models pattern of this gateway caller allows it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(testCallers(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			g := newGateway(t, a, false)
			var hc aws.HTTPClient = g.Client()
			if tt.tamper != nil {
				hc = &http.Client{Transport: tamperTransport{base: g.Client().Transport, tamper: tt.tamper}}
			}
			client := bedrockruntime.New(bedrockruntime.Options{
				Region:           "us-west-2",
				BaseEndpoint:     aws.String(g.URL),
				HTTPClient:       hc,
				Credentials:      credentials.NewStaticCredentialsProvider(tt.key, tt.secret, ""),
				RetryMaxAttempts: 1,
			})
			err = converse(context.Background(), client, tt.model)
			if tt.want == "" {
				wantAPIError(t, err, tt.code, tt.msg)
				return
			}
			if err != nil {
				t.Fatalf("Converse: %v", err)
			}
			if s := <-g.seen; s.caller != tt.want || s.scheme != "AWS4-HMAC-SHA256" {
				t.Errorf("gateway saw caller %s by %s, want %s by AWS4-HMAC-SHA256", s.caller, s.scheme, tt.want)
			}
		})
	}
}

// TestSDKSkew checks that a client whose clock is 10 minutes off is
// refused as AWS refuses it, on any date: the gateway's clock is set off
// from the wall clock the SDK signs with.
func TestSDKSkew(t *testing.T) {
	for _, off := range []time.Duration{10 * time.Minute, -10 * time.Minute} {
		t.Run(off.String(), func(t *testing.T) {
			a, err := New(testCallers(), Options{Clock: clock.NewFake(time.Now().Add(off))})
			if err != nil {
				t.Fatal(err)
			}
			g := newGateway(t, a, false)
			client := bedrockruntime.New(bedrockruntime.Options{
				Region:       "us-east-1",
				BaseEndpoint: aws.String(g.URL),
				Credentials:  credentials.NewStaticCredentialsProvider(keyA, secretA, ""),
				// The SDK corrects its clock from the Date of a skew
				// refusal and retries; one attempt shows the refusal.
				RetryMaxAttempts: 1,
			})
			err = converse(context.Background(), client, haiku)
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidSignatureException" {
				t.Fatalf("Converse error %v, want InvalidSignatureException", err)
			}
			want := "Signature expired: "
			if off < 0 {
				want = "Signature not yet current: "
			}
			if !strings.HasPrefix(apiErr.ErrorMessage(), want) {
				t.Errorf("message %q, want it to start with %q", apiErr.ErrorMessage(), want)
			}
		})
	}
}

// TestSDKBearer checks that aws-sdk-go-v2 sends a Bedrock API key as
// "Authorization: Bearer <token>" over HTTPS only, and that Authenticate
// takes it: the Bedrock Runtime client is given a token provider and
// prefers the httpBearerAuth scheme, as it does by itself when
// AWS_BEARER_TOKEN_BEDROCK is set.
func TestSDKBearer(t *testing.T) {
	tests := []struct {
		name      string
		token     string
		tls       bool
		want      string // the caller, or "" for a refusal
		code, msg string // the refusal's
		sdkErr    string // an error of the SDK's own: nothing is sent
	}{
		{name: "team-a over TLS", token: tokenA, tls: true, want: "team-a"},
		{name: "team-c over TLS", token: tokenC, tls: true, want: "team-c"},
		{name: "wrong token", token: "team-x-token-0123456789abcdef", tls: true, code: "AccessDeniedException",
			msg: "Authentication failed: Please make sure your API Key is valid."},
		{name: "plain HTTP", token: tokenA, sdkErr: "bearer token with HTTP request requires HTTPS"},
	}
	a, err := New(testCallers(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, a, tt.tls)
			client := bedrockruntime.New(bedrockruntime.Options{
				Region:                  "us-east-1",
				BaseEndpoint:            aws.String(g.URL),
				HTTPClient:              g.Client(), // trusts the server's self-signed certificate
				BearerAuthTokenProvider: bearer.StaticTokenProvider{Token: bearer.Token{Value: tt.token}},
				AuthSchemePreference:    []string{"httpBearerAuth"},
				RetryMaxAttempts:        1,
			})
			err := converse(context.Background(), client, haiku)
			switch {
			case tt.sdkErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.sdkErr) {
					t.Fatalf("Converse error %v, want the SDK's %q", err, tt.sdkErr)
				}
				select {
				case s := <-g.seen:
					t.Errorf("the gateway got a request from %s", s.caller)
				default:
				}
			case tt.want == "":
				wantAPIError(t, err, tt.code, tt.msg)
			default:
				if err != nil {
					t.Fatalf("Converse: %v", err)
				}
				if s := <-g.seen; s.caller != tt.want || s.scheme != "Bearer" {
					t.Errorf("gateway saw caller %s by %s, want %s by Bearer", s.caller, s.scheme, tt.want)
				}
			}
		})
	}
}
