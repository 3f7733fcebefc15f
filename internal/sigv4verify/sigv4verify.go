// Package sigv4verify verifies the AWS Signature Version 4 on requests to
// the emulator and to keel's gateway, the way AWS does for Bedrock Runtime,
// and answers with the errors AWS gives.
//
// Verification is off unless keys are configured (or Options.Required is
// set): a Verifier with no keys accepts any request, signed or not. With
// keys, a request must carry an Authorization header signed with one of
// them. The Verifier recomputes the
// signature with aws-sdk-go-v2's own signer over a copy of the request that
// holds only the headers the client signed, with the client's X-Amz-Date,
// and compares the two. The canonical URI is the request's path escaped
// once more, as the AWS signers do for every service but S3; for service
// "s3" it is the path as sent, escaped once, as S3 signs it (SigV4's
// "Create a canonical request": "Each path segment must be URI-encoded
// twice (except for Amazon S3 which only gets URI-encoded once)";
// aws-sdk-go-v2's S3 client sets DisableURIPathEscaping). The payload hash is X-Amz-Content-Sha256 when the
// client sent it (it must then match the body) and the SHA-256 of the body
// otherwise.
//
// The answers, in the order they are checked:
//
//	no Authorization header             403 AccessDeniedException        Authorization header is missing
//	malformed Authorization or date     400 IncompleteSignature          names the missing part
//	unknown access key                  403 UnrecognizedClientException  The security token included in the request is invalid.
//	X-Amz-Date more than 5 min off      403 InvalidSignatureException    Signature expired: ... is now earlier than ...
//	scope of wrong date/service/region  403 InvalidSignatureException    names the mismatch
//	body does not match its hash header 403 InvalidSignatureException    The provided 'x-amz-content-sha256' header does not match ...
//	signature differs                   403 InvalidSignatureException    The request signature we calculated does not match ...
//
// A request without credentials gets AccessDeniedException, not the
// MissingAuthenticationTokenException of older AWS front ends: Bedrock
// Runtime answers it so in 2026 (403, X-Amzn-ErrorType
// AccessDeniedException, body {"Message":"Authorization header is
// missing"}; docs/gateway-auth.md cites the sources). A skewed clock gets
// InvalidSignatureException, not RequestExpired: that is what Bedrock
// Runtime sends (403, "Signature expired: 20250130T203827Z is now earlier
// than 20250130T204131Z (20250130T204631Z - 5 min.)"), while
// RequestExpired (400) belongs to query-protocol services.
package sigv4verify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
)

// Rejection is the error a request gets. Code is the catalog code; the
// status is the catalog entry's. Its fields match the emulator server's
// Rejection, so a *Rejection converts to the server's type.
type Rejection struct {
	Code    string
	Message string
}

// Options configure a Verifier. The zero Options accept every request.
type Options struct {
	// Keys maps access key IDs to secret access keys. Empty turns
	// verification off.
	Keys map[string]string
	// Clock tells the time the request date is checked against; nil is the
	// wall clock.
	Clock clock.Clock
	// MaxSkew is how far X-Amz-Date may be from the clock; zero means 5
	// minutes, as AWS allows.
	MaxSkew time.Duration
	// Service is the signing name the credential scope must carry; empty
	// means "bedrock". For "s3" the path is signed escaped once.
	Service string
	// Region, when set, returns the region the request was sent to, which
	// the credential scope must name. Nil accepts the scope's region.
	Region func(r *http.Request) string
	// Required keeps verification on when Keys is empty: every request is
	// checked, and every access key is unknown. A server whose callers may
	// all use other credentials (bearer tokens) sets it, so a SigV4 request
	// gets AWS's answer rather than being let through.
	Required bool
}

// A Verifier checks request signatures. It is safe for concurrent use. A nil
// *Verifier accepts every request.
type Verifier struct {
	keys     map[string]string
	required bool
	clk      clock.Clock
	skew     time.Duration
	service  string
	region   func(*http.Request) string
	signer   *v4.Signer
}

// New returns a Verifier for opts. It copies opts.Keys.
func New(opts Options) *Verifier {
	v := &Verifier{
		keys:     make(map[string]string, len(opts.Keys)),
		required: opts.Required,
		clk:      opts.Clock,
		skew:     opts.MaxSkew,
		service:  opts.Service,
		region:   opts.Region,
	}
	v.signer = v4.NewSigner(func(o *v4.SignerOptions) {
		// Leave the client's X-Amz-Security-Token as sent: the signature
		// covers it, and neither the emulator nor the gateway checks tokens.
		o.DisableSessionToken = true
		o.DisableURIPathEscaping = v.service == serviceS3
	})
	for id, secret := range opts.Keys {
		v.keys[id] = secret
	}
	if v.clk == nil {
		v.clk = clock.Real{}
	}
	if v.skew <= 0 {
		v.skew = 5 * time.Minute
	}
	if v.service == "" {
		v.service = "bedrock"
	}
	return v
}

// Enabled reports whether v checks signatures at all.
func (v *Verifier) Enabled() bool { return v != nil && (len(v.keys) > 0 || v.required) }

// The fixed answers.
var (
	missingAuth = &Rejection{Code: catalog.CodeAccessDenied, Message: "Authorization header is missing"}
	unknownKey  = &Rejection{Code: catalog.CodeUnrecognizedClient, Message: "The security token included in the request is invalid."}
	badSig      = &Rejection{Code: catalog.CodeInvalidSignature, Message: "The request signature we calculated does not match " +
		"the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}
	badHash = &Rejection{Code: catalog.CodeInvalidSignature,
		Message: "The provided 'x-amz-content-sha256' header does not match what was computed."}
)

const (
	algorithm  = "AWS4-HMAC-SHA256"
	amzDate    = "20060102T150405Z"
	scopeDate  = "20060102"
	terminator = "aws4_request"
	// serviceS3 is S3's signing name: the one service whose canonical URI
	// is the path escaped once, not twice.
	serviceS3 = "s3"
)

// Verify checks r's signature over body (the request body, already read).
// It returns nil when the request is correctly signed with a configured key,
// or when verification is off, and otherwise the error AWS would answer
// with. Rejections without a variable part are shared; callers must not
// modify them.
func (v *Verifier) Verify(r *http.Request, body []byte) *Rejection {
	if !v.Enabled() {
		return nil
	}
	_, rej := v.Authenticate(r, body)
	return rej
}

// Authenticate is Verify for a server that tells its callers apart by
// access key: with verification on, it returns the access key ID that
// signed r when the signature is correct, and otherwise the Rejection
// Verify would return. With verification off it returns "" and nil.
func (v *Verifier) Authenticate(r *http.Request, body []byte) (accessKeyID string, rej *Rejection) {
	if !v.Enabled() {
		return "", nil
	}
	c, rej := v.checkHeaders(r)
	if rej != nil {
		return "", rej
	}
	a := c.auth

	payloadHash := r.Header.Get("X-Amz-Content-Sha256")
	sum := sha256.Sum256(body)
	bodyHash := hex.EncodeToString(sum[:])
	switch {
	case payloadHash == "":
		payloadHash = bodyHash
	case payloadHash == "UNSIGNED-PAYLOAD":
	case !strings.EqualFold(payloadHash, bodyHash):
		return "", badHash
	}

	cp := &http.Request{
		Method: r.Method,
		URL:    &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Host:   r.Host,
		Header: make(http.Header, len(a.signedHeaders)),
	}
	for _, h := range a.signedHeaders {
		switch h {
		case "host":
		case "content-length":
			cp.ContentLength = int64(len(body))
		default:
			vals := r.Header.Values(h)
			if len(vals) == 0 {
				return "", badSig // signed a header that is not there
			}
			cp.Header[textproto.CanonicalMIMEHeaderKey(h)] = vals
		}
	}
	creds := aws.Credentials{AccessKeyID: a.accessKey, SecretAccessKey: c.secret}
	if err := v.signer.SignHTTP(context.Background(), creds, cp, payloadHash, a.service, a.region, c.signed); err != nil {
		return "", badSig
	}
	want, rej := parseAuthorization(cp.Header.Get("Authorization"))
	if rej != nil || want.signedHeadersRaw != a.signedHeadersRaw ||
		!hmac.Equal([]byte(want.signature), []byte(a.signature)) {
		return "", badSig
	}
	return a.accessKey, nil
}

// CheckHeaders runs the checks of Verify that do not need the body: that
// r carries a well-formed Authorization header by a configured key, with a
// date within the allowed skew and a credential scope for the right date,
// service and region. It returns the Rejection Verify would for a request
// that fails one of them, and nil otherwise, when only Verify can tell. A
// server calls it to refuse such a request before reading its body.
func (v *Verifier) CheckHeaders(r *http.Request) *Rejection {
	if !v.Enabled() {
		return nil
	}
	_, rej := v.checkHeaders(r)
	return rej
}

// checked is what checkHeaders found in a request's headers.
type checked struct {
	auth   *authorization
	secret string
	signed time.Time
}

func (v *Verifier) checkHeaders(r *http.Request) (checked, *Rejection) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return checked{}, missingAuth
	}
	a, rej := parseAuthorization(auth)
	if rej != nil {
		return checked{}, rej
	}
	dateHeader := r.Header.Get("X-Amz-Date")
	if dateHeader == "" {
		return checked{}, incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	signed, err := time.Parse(amzDate, dateHeader)
	if err != nil {
		return checked{}, incomplete(fmt.Sprintf("Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", dateHeader))
	}
	secret, ok := v.keys[a.accessKey]
	if !ok {
		return checked{}, unknownKey
	}
	if rej := v.checkTime(signed); rej != nil {
		return checked{}, rej
	}
	if rej := v.checkScope(r, a, dateHeader); rej != nil {
		return checked{}, rej
	}

	return checked{auth: a, secret: secret, signed: signed}, nil
}

// checkTime rejects a request date more than v.skew from the clock.
func (v *Verifier) checkTime(signed time.Time) *Rejection {
	now := v.clk.Now().UTC()
	limit := formatSkew(v.skew)
	switch {
	case signed.Before(now.Add(-v.skew)):
		return &Rejection{Code: catalog.CodeInvalidSignature, Message: fmt.Sprintf(
			"Signature expired: %s is now earlier than %s (%s - %s.)",
			signed.Format(amzDate), now.Add(-v.skew).Format(amzDate), now.Format(amzDate), limit)}
	case signed.After(now.Add(v.skew)):
		return &Rejection{Code: catalog.CodeInvalidSignature, Message: fmt.Sprintf(
			"Signature not yet current: %s is still later than %s (%s + %s.)",
			signed.Format(amzDate), now.Add(v.skew).Format(amzDate), now.Format(amzDate), limit)}
	}
	return nil
}

// formatSkew writes d as AWS does in its messages: "5 min".
func formatSkew(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return d.String()
}

// checkScope checks the credential scope's date, service and region.
func (v *Verifier) checkScope(r *http.Request, a *authorization, dateHeader string) *Rejection {
	if a.date != dateHeader[:len(scopeDate)] {
		return &Rejection{Code: catalog.CodeInvalidSignature, Message: fmt.Sprintf(
			"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			a.date, dateHeader[:len(scopeDate)], dateHeader)}
	}
	if a.service != v.service {
		return &Rejection{Code: catalog.CodeInvalidSignature, Message: fmt.Sprintf(
			"Credential should be scoped to correct service: '%s'. ", v.service)}
	}
	if v.region != nil {
		if want := v.region(r); want != "" && a.region != want {
			return &Rejection{Code: catalog.CodeInvalidSignature, Message: fmt.Sprintf(
				"Credential should be scoped to a valid region, not '%s'. ", a.region)}
		}
	}
	return nil
}

// authorization is a parsed SigV4 Authorization header.
type authorization struct {
	accessKey, date, region, service string
	signedHeadersRaw                 string
	signedHeaders                    []string
	signature                        string
}

func incomplete(msg string) *Rejection {
	return &Rejection{Code: catalog.CodeIncompleteSignature, Message: msg}
}

// parseAuthorization reads
//
//	AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=hex
func parseAuthorization(h string) (*authorization, *Rejection) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if scheme != algorithm {
		// The scheme is not quoted back: a client that sends a bare token
		// (no "Bearer ") would see its secret in the answer and in logs.
		return nil, incomplete("Authorization header requires 'Credential' parameter. " +
			"Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. " +
			"Unsupported authorization type; want " + algorithm + ".")
	}
	a := &authorization{}
	var credential string
	var haveCred, haveHeaders, haveSig bool
	for _, part := range strings.Split(rest, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			credential, haveCred = val, true
		case "SignedHeaders":
			a.signedHeadersRaw, haveHeaders = val, true
		case "Signature":
			a.signature, haveSig = val, true
		}
	}
	var missing []string
	for _, p := range []struct {
		name string
		have bool
	}{{"Credential", haveCred}, {"Signature", haveSig}, {"SignedHeaders", haveHeaders}} {
		if !p.have {
			missing = append(missing, fmt.Sprintf("Authorization header requires '%s' parameter.", p.name))
		}
	}
	if len(missing) > 0 {
		return nil, incomplete(strings.Join(missing, " "))
	}
	parts := strings.Split(credential, "/")
	if len(parts) != 5 || parts[0] == "" || parts[4] != terminator {
		return nil, incomplete(fmt.Sprintf("Credential should be scoped to a valid region, service and date: "+
			"want ACCESS_KEY/YYYYMMDD/REGION/SERVICE/%s, got %q.", terminator, credential))
	}
	if _, err := time.Parse(scopeDate, parts[1]); err != nil {
		return nil, incomplete(fmt.Sprintf("Credential date %q is not in YYYYMMDD format.", parts[1]))
	}
	a.accessKey, a.date, a.region, a.service = parts[0], parts[1], parts[2], parts[3]
	a.signedHeaders = strings.Split(a.signedHeadersRaw, ";")
	hasHost := false
	for _, sh := range a.signedHeaders {
		if sh == "host" {
			hasHost = true
		}
	}
	if !hasHost {
		return nil, incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	return a, nil
}
