package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/scenario/glob"
	"github.com/keel-run/keel/internal/sigv4verify"
)

// Options configure an Authenticator. The zero Options mean all defaults.
type Options struct {
	// Clock tells the time SigV4 dates are checked against; nil is the
	// wall clock.
	Clock clock.Clock
	// MaxSkew is how far a SigV4 request's X-Amz-Date may be from the
	// clock; zero means 5 minutes, as AWS allows. Negative is an error.
	MaxSkew time.Duration
}

// An Authenticator knows the gateway's callers and tells which one sent a
// request. It is safe for concurrent use.
type Authenticator struct {
	callers []Caller
	bearers [][sha256.Size]byte // SHA-256 of callers[i].Bearer; zero when it has none
	byKey   map[string]*Caller  // by SigV4 access key ID
	byName  map[string]*Caller
	sigv4   *sigv4verify.Verifier
}

// The fixed answers.
var (
	// What Bedrock Runtime answers a request with no credentials
	// (docs/gateway-auth.md gives the sources), as sigv4verify does.
	errMissing = newError(ErrNoCredentials, catalog.CodeAccessDenied, "Authorization header is missing")
	// What Bedrock Runtime answers an API key it does not know
	// (docs/gateway-auth.md gives the sources).
	errBadBearer = newError(ErrUnknownCredentials, catalog.CodeAccessDenied,
		"Authentication failed: Please make sure your API Key is valid.")
	// A bearer token crosses the network as it is: over plain HTTP anyone
	// on the path can read and reuse it. aws-sdk-go-v2 refuses to send one
	// ("bearer token with HTTP request requires HTTPS"); other clients do.
	errBearerPlain = newError(ErrInsecureTransport, catalog.CodeValidation,
		"keel gateway: a bearer token (Bedrock API key) is accepted over HTTPS only; this request came over plain HTTP, "+
			"so treat its token as exposed. Use the gateway's https:// endpoint (keel serve --tls-cert, --tls-key).")
	// An unsigned payload over plain HTTP leaves the body unprotected: anyone
	// on the path can swap the prompt of a signed request and replay it
	// within the skew window.
	errUnsignedPlain = newError(ErrInsecureTransport, catalog.CodeValidation,
		"keel gateway: X-Amz-Content-Sha256: UNSIGNED-PAYLOAD is accepted over HTTPS only; over plain HTTP sign the payload's SHA-256.")
	errPresigned = newError(ErrNoCredentials, catalog.CodeIncompleteSignature,
		"keel's gateway takes a SigV4 signature in the Authorization header only, not in the query string (presigned URLs).")
)

// New returns an Authenticator for callers, which it copies. It checks
// them, and names the caller (by index and name) and the field of the
// first mistake, never a secret:
//
//   - a Name that is set, unique, of letters, digits, '.', '_' and '-';
//   - a Bearer, an AccessKeyID with a SecretAccessKey, or both; each token
//     and access key ID belongs to one caller only; a token has at least
//     MinBearerLen printable ASCII characters;
//   - Models patterns of model-identifier characters and '*';
//   - Priority empty, PriorityInteractive or PriorityBatch;
//   - TokensPerMinute zero or more.
//
// New refuses an empty callers: a gateway without callers is open, and
// has no Authenticator.
func New(callers []Caller, opts Options) (*Authenticator, error) {
	if len(callers) == 0 {
		return nil, errors.New("auth: no callers; a gateway without callers runs open, without an Authenticator")
	}
	if opts.MaxSkew < 0 {
		return nil, fmt.Errorf("auth: Options.MaxSkew is %v; want 0 (AWS's 5 minutes) or more", opts.MaxSkew)
	}
	if err := validateCallers(callers); err != nil {
		return nil, err
	}
	a := &Authenticator{
		callers: make([]Caller, len(callers)),
		bearers: make([][sha256.Size]byte, len(callers)),
		byKey:   make(map[string]*Caller, len(callers)),
		byName:  make(map[string]*Caller, len(callers)),
	}
	keys := make(map[string]string, len(callers))
	for i, c := range callers {
		c.Models = slices.Clone(c.Models)
		a.callers[i] = c
		p := &a.callers[i]
		a.byName[c.Name] = p
		if c.Bearer != "" {
			a.bearers[i] = sha256.Sum256([]byte(c.Bearer))
		}
		if c.AccessKeyID != "" {
			a.byKey[c.AccessKeyID] = p
			keys[c.AccessKeyID] = c.SecretAccessKey
		}
	}
	// Required: with bearer callers only, a SigV4 request still gets AWS's
	// answer (its key is unknown) instead of passing unchecked.
	a.sigv4 = sigv4verify.New(sigv4verify.Options{Keys: keys, Clock: opts.Clock, MaxSkew: opts.MaxSkew, Required: true})
	return a, nil
}

// Callers returns the callers a knows, in the order New got them. They
// are a's own; callers must not modify them.
func (a *Authenticator) Callers() []*Caller {
	out := make([]*Caller, len(a.callers))
	for i := range a.callers {
		out[i] = &a.callers[i]
	}
	return out
}

// Authenticate returns the caller that sent r, whose body (already read)
// is body, or an *Error with the answer Bedrock Runtime would give (see
// the package doc). A request with "Authorization: Bearer <token>" is a
// bearer caller's, compared in constant time with every token; any other
// Authorization header is checked as a SigV4 signature. A bearer token,
// and a SigV4 request with X-Amz-Content-Sha256: UNSIGNED-PAYLOAD, are
// refused (400 ValidationException, ErrInsecureTransport) when r did not
// come over TLS (r.TLS is nil). The Caller is a's
// own; callers must not modify it.
func (a *Authenticator) Authenticate(r *http.Request, body []byte) (*Caller, error) {
	return a.authenticate(r, body, true)
}

// CheckHeaders runs the checks of Authenticate that need no body: it
// returns the *Error Authenticate would for a request that fails one of
// them, and nil when the request passes them or only the body can tell. A
// server calls it to refuse a request before reading its body.
func (a *Authenticator) CheckHeaders(r *http.Request) error {
	_, err := a.authenticate(r, nil, false)
	return err
}

// authenticate is Authenticate, or CheckHeaders when withBody is false.
func (a *Authenticator) authenticate(r *http.Request, body []byte, withBody bool) (*Caller, error) {
	vals := r.Header.Values("Authorization")
	switch {
	case len(vals) == 0:
		if q := r.URL.Query(); q.Has("X-Amz-Signature") || q.Has("X-Amz-Credential") {
			return nil, errPresigned
		}
		return nil, errMissing
	case len(vals) > 1:
		return nil, newError(ErrNoCredentials, catalog.CodeIncompleteSignature, fmt.Sprintf(
			"The request has %d Authorization headers; send one: a Bearer API key or a SigV4 signature.", len(vals)))
	}
	if tok, ok := bearerToken(vals[0]); ok {
		if r.TLS == nil {
			return nil, errBearerPlain
		}
		if c := a.bearerCaller(tok); c != nil {
			return c, nil
		}
		return nil, errBadBearer
	}
	if r.TLS == nil && strings.EqualFold(r.Header.Get("X-Amz-Content-Sha256"), unsignedPayload) {
		return nil, errUnsignedPlain
	}
	if !withBody {
		if rej := a.sigv4.CheckHeaders(r); rej != nil {
			return nil, sigv4Error(rej)
		}
		return nil, nil
	}
	key, rej := a.sigv4.Authenticate(r, body)
	if rej != nil {
		return nil, sigv4Error(rej)
	}
	return a.byKey[key], nil
}

// unsignedPayload is the X-Amz-Content-Sha256 of a SigV4 request whose
// signature does not cover its body.
const unsignedPayload = "UNSIGNED-PAYLOAD"

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive (RFC 6750 §2.1, RFC 9110 §11.1).
func bearerToken(h string) (string, bool) {
	const scheme = "bearer"
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	rest := h[len(scheme):]
	if rest != "" && rest[0] != ' ' {
		return "", false // another scheme, such as "BearerX"
	}
	return strings.TrimSpace(rest), true
}

// bearerCaller returns the caller whose token tok is, or nil. It compares
// the SHA-256 of tok with every caller's, in constant time and without
// stopping at a match, so neither the token's length nor which caller
// matched shows in how long it takes.
func (a *Authenticator) bearerCaller(tok string) *Caller {
	if tok == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(tok))
	found := -1
	for i := range a.bearers {
		if a.callers[i].Bearer != "" && subtle.ConstantTimeCompare(sum[:], a.bearers[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil
	}
	return &a.callers[found]
}

// sigv4Error turns a sigv4verify rejection into an *Error.
func sigv4Error(rej *sigv4verify.Rejection) *Error {
	kind := ErrBadSignature
	switch rej.Code {
	case catalog.CodeAccessDenied: // sigv4verify's answer to a request without credentials
		kind = ErrNoCredentials
	case catalog.CodeUnrecognizedClient:
		kind = ErrUnknownCredentials
	}
	return newError(kind, rej.Code, rej.Message)
}

// Allow reports whether caller c may use model, the model identifier as
// the request names it (URL-decoded from the path): nil, or an *Error
// with Bedrock's AccessDeniedException in IAM's words (naming
// bedrock:InvokeModel whatever the operation). c must be a Caller of a (one
// Authenticate returned, or one with the same Name); a nil or unknown
// caller is denied.
//
// The rule: a caller with no Models may use every model. Otherwise model
// must match one of the patterns as a whole, case-sensitively, where '*'
// matches any run of characters ('/' and ':' included), as in the
// emulator's scenario files. The identifier is matched as the caller
// wrote it, not
// resolved: "*anthropic.claude*" matches the model ID
// "anthropic.claude-sonnet-4-5-20250929-v1:0", the inference profile ID
// "us.anthropic.claude-sonnet-4-5-20250929-v1:0" and an ARN that contains
// either; a pattern "anthropic.*" matches only the bare model IDs. An
// application inference profile's ARN names no model, so a caller limited
// to some models needs a pattern for that ARN itself.
func (a *Authenticator) Allow(c *Caller, model string) error {
	var own *Caller
	if c != nil {
		own = a.byName[c.Name]
	}
	if own == nil {
		name := "an unknown caller"
		if c != nil {
			name = fmt.Sprintf("unknown caller %q", c.Name)
		}
		return newError(ErrModelDenied, catalog.CodeAccessDenied, fmt.Sprintf(
			"User: %s is not authorized to perform: bedrock:InvokeModel on resource: %s because the gateway has no such caller", name, shown(model)))
	}
	if len(own.Models) == 0 {
		return nil
	}
	for _, p := range own.Models {
		if glob.Match(p, model) {
			return nil
		}
	}
	return newError(ErrModelDenied, catalog.CodeAccessDenied, fmt.Sprintf(
		"User: %s is not authorized to perform: bedrock:InvokeModel on resource: %s because no models pattern of this gateway caller allows it",
		own.Name, shown(model)))
}

// shown is model as a message shows it: as is when it is made of model
// identifier characters and at most maxPatternLen long, as AWS writes a
// resource; otherwise quoted (control characters escaped) and cut to
// maxPatternLen bytes, so that no request can put a line break or a
// megabyte into an answer or a log line.
func shown(model string) string {
	if len(model) <= maxPatternLen && validatePattern(model) == nil {
		return model
	}
	if len(model) > maxPatternLen {
		return strconv.Quote(model[:maxPatternLen]) + "..."
	}
	return strconv.Quote(model)
}
