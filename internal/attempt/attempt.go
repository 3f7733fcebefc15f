// Package attempt sends one attempt of a Bedrock Runtime call to one target:
// it builds the URL for the target's model and region, signs the request anew
// with SigV4 (the SDK's own signer and credential providers), and sends it.
//
// Every attempt is signed afresh because a backoff can outlive a signature's
// five-minute validity and a fallback changes the host, path and region.
package attempt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/encoding/httpbinding"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/transport"

	"github.com/keel-run/keel/internal/bedrock"
)

// Op is a Bedrock Runtime operation (bedrock.Op).
type Op = bedrock.Op

// Operations keel handles (bedrock's).
const (
	Converse                 = bedrock.Converse
	ConverseStream           = bedrock.ConverseStream
	Invoke                   = bedrock.Invoke
	InvokeWithResponseStream = bedrock.InvokeWithResponseStream
	CountTokens              = bedrock.CountTokens
)

// Target is one model in one region (bedrock.Target).
type Target = bedrock.Target

// ParsePath splits a Bedrock Runtime path "/model/{modelId}/{op}" (the model
// id path-escaped, as the SDK sends it) into the model id and operation.
// ok is false for any other path.
func ParsePath(escapedPath string) (model string, op Op, ok bool) {
	rest, found := strings.CutPrefix(escapedPath, "/model/")
	if !found {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return "", "", false
	}
	op = Op(rest[i+1:])
	if !op.Valid() {
		return "", "", false
	}
	m, err := url.PathUnescape(rest[:i])
	if err != nil || m == "" {
		return "", "", false
	}
	return m, op, true
}

// Endpoints maps a region to the base URL of its Bedrock Runtime endpoint.
type Endpoints interface {
	BaseURL(region string) (*url.URL, error)
}

// AWSEndpoints is the real Bedrock Runtime: https://bedrock-runtime.REGION.amazonaws.com.
type AWSEndpoints struct {
	// FIPS selects the bedrock-runtime-fips endpoints.
	FIPS bool
}

// BaseURL returns the endpoint of region.
func (e AWSEndpoints) BaseURL(region string) (*url.URL, error) {
	if region == "" {
		return nil, errors.New("attempt: no region for the Bedrock Runtime endpoint")
	}
	host := "bedrock-runtime"
	if e.FIPS {
		host += "-fips"
	}
	suffix := ".amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		suffix = ".amazonaws.com.cn"
	}
	return &url.URL{Scheme: "https", Host: host + "." + region + suffix}, nil
}

// FixedEndpoint sends every region to one base URL, as a Bedrock-compatible
// gateway or `keel emulate` expects (the region travels in the signature).
type FixedEndpoint struct{ URL *url.URL }

// BaseURL returns the fixed URL whatever the region.
func (e FixedEndpoint) BaseURL(string) (*url.URL, error) { return e.URL, nil }

// EndpointsFor picks the endpoints a request's URL implies: an AWS
// bedrock-runtime host means "each region's own endpoint", anything else (an
// emulator, a proxy) means "this URL for every region".
func EndpointsFor(u *url.URL) Endpoints {
	h := u.Hostname()
	if strings.HasPrefix(h, "bedrock-runtime.") && (strings.HasSuffix(h, ".amazonaws.com") || strings.HasSuffix(h, ".amazonaws.com.cn")) {
		return AWSEndpoints{}
	}
	if strings.HasPrefix(h, "bedrock-runtime-fips.") {
		return AWSEndpoints{FIPS: true}
	}
	base := &url.URL{Scheme: u.Scheme, Host: u.Host}
	return FixedEndpoint{URL: base}
}

// Request is one attempt to send.
type Request struct {
	Op     Op
	Target Target
	Body   []byte
	// Header holds the caller's headers (Content-Type, Accept, X-Amzn-Bedrock-*
	// options). Hop-by-hop and signing headers are dropped and recomputed.
	Header http.Header
	// BodySHA256 is the hex SHA-256 of Body; empty means compute it. The body is
	// the same on every attempt, so the engine hashes it once.
	BodySHA256 string
	// Endpoints and Credentials, when set, override the Sender's for this
	// request (one engine can serve clients with different endpoints and
	// identities).
	Endpoints   Endpoints
	Credentials aws.CredentialsProvider
}

// Sender builds, signs and sends attempts. It is safe for concurrent use.
type Sender struct {
	// Client sends the signed request. Nil means http.DefaultClient. Its
	// CheckRedirect is ignored: attempts never follow a redirect.
	Client *http.Client
	// Endpoints maps a region to its base URL. Nil means AWSEndpoints{}.
	Endpoints Endpoints
	// Credentials signs each attempt. Nil sends the caller's Authorization
	// header as it is (bearer-token API keys), or nothing.
	Credentials aws.CredentialsProvider
	// Signer defaults to v4.NewSigner().
	Signer *v4.Signer
	// Clock stamps the signature; nil means clock.Real{}.
	Clock clock.Clock
	// UserAgent is appended to the caller's User-Agent.
	UserAgent string
}

// SigningName is Bedrock's SigV4 service name.
const SigningName = "bedrock"

// Build returns the signed *http.Request for req without sending it.
func (s *Sender) Build(ctx context.Context, req *Request) (*http.Request, error) {
	if !req.Op.Valid() {
		return nil, fmt.Errorf("attempt: unknown operation %q", req.Op)
	}
	if req.Target.Model == "" {
		return nil, errors.New("attempt: no model id")
	}
	eps := req.Endpoints
	if eps == nil {
		eps = s.Endpoints
	}
	if eps == nil {
		eps = AWSEndpoints{}
	}
	base, err := eps.BaseURL(req.Target.Region)
	if err != nil {
		return nil, err
	}
	escaped := "/model/" + httpbinding.EscapePath(req.Target.Model, true) + "/" + string(req.Op)
	u := *base
	u.Path = strings.TrimSuffix(base.Path, "/") + "/model/" + req.Target.Model + "/" + string(req.Op)
	u.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + escaped
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		return nil, fmt.Errorf("attempt: building request for %s: %w", req.Target, err)
	}
	// http.NewRequest parses the string again; keep our exact escaping.
	hr.URL.Path, hr.URL.RawPath = u.Path, u.RawPath
	body := req.Body
	hr.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	hr.ContentLength = int64(len(body))
	for k, vs := range req.Header {
		if dropHeader(k) {
			continue
		}
		hr.Header[k] = vs
	}
	if hr.Header.Get("Content-Type") == "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if s.UserAgent != "" {
		ua := hr.Header.Get("User-Agent")
		hr.Header.Set("User-Agent", strings.TrimSpace(ua+" "+s.UserAgent))
	}
	creds := req.Credentials
	if creds == nil {
		creds = s.Credentials
	}
	if creds == nil {
		if a := req.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
			hr.Header.Set("Authorization", a)
		}
		return hr, nil
	}
	c, err := creds.Retrieve(ctx)
	if err != nil {
		// The words are the CredentialsUnavailable entry's hint: whatever
		// the provider's error wraps (a dial error, a metadata service's
		// 403), no request was sent, and retrying the attempt cannot help.
		return nil, fmt.Errorf("attempt: failed to retrieve credentials: %w", err)
	}
	sum := req.BodySHA256
	if sum == "" {
		sum = PayloadHash(req.Body)
	}
	hr.Header.Set("X-Amz-Content-Sha256", sum)
	signer := s.Signer
	if signer == nil {
		signer = defaultSigner
	}
	clk := s.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	if err := signer.SignHTTP(ctx, c, hr, sum, SigningName, req.Target.Region, clk.Now()); err != nil {
		return nil, fmt.Errorf("attempt: signing request for %s: %w", req.Target, err)
	}
	return hr, nil
}

var defaultSigner = v4.NewSigner()

// Send builds, signs and sends one attempt. The caller owns the response body.
func (s *Sender) Send(ctx context.Context, req *Request) (*http.Response, error) {
	hr, err := s.Build(ctx, req)
	if err != nil {
		return nil, err
	}
	// Never follow a redirect, even with a caller's client that would:
	// the copy shares its transport and pool, and the 3xx comes back to be
	// classified (UnexpectedRedirect) instead of sending the signed request
	// and the prompt wherever the Location points.
	return transport.WithoutRedirects(s.Client).Do(hr)
}

// PayloadHash is the hex SHA-256 that SigV4 signs for body.
func PayloadHash(body []byte) string {
	h := sha256.Sum256(body)
	return hex.EncodeToString(h[:])
}

// dropHeader reports headers that belong to one attempt and must be rebuilt.
func dropHeader(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256",
		"Amz-Sdk-Invocation-Id", "Amz-Sdk-Request", "Content-Length", "Host",
		"Connection", "Transfer-Encoding", "Keep-Alive", "Upgrade", "Te", "Trailer":
		return true
	}
	return false
}

// RegionFromAuthorization returns the region of a SigV4 Authorization header's
// credential scope (Credential=AKID/DATE/REGION/SERVICE/aws4_request), or "".
func RegionFromAuthorization(auth string) string {
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, ", "); i >= 0 {
		rest = rest[:i]
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 {
		return ""
	}
	return parts[2]
}
