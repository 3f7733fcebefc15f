// Package classify maps anything keel sees go wrong onto a catalog entry: an
// aws-sdk-go-v2 error, a raw HTTP error response, an event-stream exception
// or error frame, a Go network or context error, a stop reason that says a
// content filter intervened, or error text pasted by a person.
//
// Each function returns a Result carrying the entry and what was observed
// (code as spelled, true status, message, request id, Retry-After). Every
// decision keel makes is then read from Result.Entry. The functions never
// panic, whatever the input, and are safe for concurrent use.
//
// Most callers want FromError for a failed call and FromHTTP for a non-2xx
// response read off the wire.
package classify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsstream "github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	smithy "github.com/aws/smithy-go"
	smithystream "github.com/aws/smithy-go/eventstream"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keel-run/keel/internal/catalog"
)

// Result is what the classifier found.
type Result struct {
	// Entry is the catalog entry that decides what to do. It is nil only for
	// a nil error, or for a frame that is not an exception or error frame.
	Entry *catalog.Entry
	// Code is the error code as it appeared on the wire or in the error
	// ("throttlingException", "ThrottlingException:http://..."), or "" if
	// there was none (a network error, a response without a code).
	Code string
	// Status is the true HTTP status: the response's when there was one,
	// otherwise the entry's (an exception inside a 200 event stream keeps
	// its own status, 429 for throttling, never a blanket 400). Zero when no
	// response exists.
	Status int
	// Message is the service's message, or the error's text for Go errors.
	Message string
	// RequestID is the AWS request id, when the response carried one.
	RequestID string
	// RetryAfter is the server's hint from x-amz-retry-after (milliseconds)
	// or Retry-After (seconds or an HTTP date), clamped to MaxRetryAfter;
	// zero if absent or unparseable.
	RetryAfter time.Duration
}

// MaxRetryAfter bounds Result.RetryAfter, so a hostile or broken header
// cannot park a request for days.
const MaxRetryAfter = 24 * time.Hour

// String formats the result for logs: "ThrottlingException (HTTP 429): Too
// many tokens [request 1b2c]".
func (r Result) String() string {
	if r.Entry == nil {
		return "no error"
	}
	s := r.Entry.Code
	if code := bareCode(r.Code); code != "" && code != r.Entry.Code {
		s += " (as " + code + ")"
	}
	if r.Status != 0 {
		s += " (HTTP " + strconv.Itoa(r.Status) + ")"
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	if r.RequestID != "" {
		s += " [request " + r.RequestID + "]"
	}
	return s
}

// bareCode strips the decorations a wire code may carry: a ":..." suffix
// and a "namespace#" prefix.
func bareCode(code string) string {
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[:i]
	}
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	return code
}

// entrier lets error types outside this package (keel's engine errors) name
// their entry directly.
type entrier interface{ CatalogEntry() *catalog.Entry }

// FromError classifies err. It sees through wrapping: smithy.OperationError,
// the SDK's response errors (for status, request id and Retry-After),
// smithy.APIError and the typed bedrock-runtime exceptions (for the code
// and message), and Go's network, TLS, DNS, event-stream and context
// errors. An error that implements CatalogEntry() *catalog.Entry is taken
// at its word. A nil err yields the zero Result.
func FromError(err error) (r Result) {
	if err == nil {
		return Result{}
	}
	defer func() {
		// A typed nil or a broken Error method in some wrapped error must
		// not take the caller down.
		if p := recover(); p != nil {
			r = Result{Entry: catalog.Must(catalog.CodeUnclassified), Message: "classify: panic while reading the error"}
		}
	}()

	if credentialsFailure(err) {
		return Result{Entry: must(catalog.CodeCredentialsUnavailable), Message: err.Error()}
	}
	var resp *http.Response
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil && re.Response.Response != nil {
		resp = re.Response.Response
		r.Status = resp.StatusCode
		r.RequestID = requestID(resp.Header)
		r.RetryAfter = retryAfter(resp.Header, time.Now())
	}
	var rid interface{ ServiceRequestID() string }
	if errors.As(err, &rid) && rid.ServiceRequestID() != "" {
		r.RequestID = rid.ServiceRequestID()
	}

	var api smithy.APIError
	hasAPI := errors.As(err, &api)
	if hasAPI {
		r.Code = api.ErrorCode()
		r.Message = api.ErrorMessage()
		if r.Code == "UnknownError" { // the SDK's placeholder when the response named no code
			r.Code = ""
		}
	}

	if isRedirect(r.Status) {
		// The SDK read a 3xx as an error: the code it found, if any, is the
		// redirecting server's, not Bedrock's.
		r.Code = ""
		r.Entry = must(catalog.CodeUnexpectedRedirect)
		r.Message = redirectMessage(r.Status, resp.Header.Get("Location"))
	}
	var own entrier
	if r.Entry == nil && errors.As(err, &own) {
		if e := own.CatalogEntry(); e != nil {
			r.Entry = e
		}
	}
	if r.Entry == nil && hasAPI {
		if e, ok := catalog.Lookup(r.Code); ok {
			r.Entry = catalog.Refine(e, r.Message)
		} else if r.Status != 0 {
			r.Entry = forStatus(r.Status)
		} else if api.ErrorFault() == smithy.FaultClient {
			r.Entry = catalog.Must(catalog.CodeUnknownClientError)
		} else {
			// An unknown exception inside a stream: assume the service's side.
			r.Entry = catalog.Must(catalog.CodeUnknownServerError)
		}
	}
	if r.Entry == nil && r.Status >= 400 {
		// An error response whose body the SDK could not read or decode.
		r.Entry = catalog.ForStatus(r.Status)
	}
	if r.Entry == nil {
		r.Entry = fromGoError(err)
	}
	if r.Message == "" {
		r.Message = err.Error()
	}
	if r.Status == 0 {
		r.Status = r.Entry.Status
	}
	return r
}

// fromGoError classifies errors that carry no AWS code. It never returns nil.
func fromGoError(err error) *catalog.Entry {
	var (
		dnsErr     *net.DNSError
		urlErr     *url.Error
		netErr     net.Error
		opErr      *net.OpError
		conn       interface{ ConnectionError() bool }
		paramsErr  smithy.InvalidParamsError
		paramsPtr  *smithy.InvalidParamsError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		certErr    x509.CertificateInvalidError
		rootsErr   x509.SystemRootsError
		verifyErr  *tls.CertificateVerificationError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		awsSum     awsstream.ChecksumError
		awsLen     awsstream.LengthError
		smithySum  smithystream.ChecksumError
		smithyLen  smithystream.LengthError
		awsSumPtr  *awsstream.ChecksumError
		smithyPtr  *smithystream.ChecksumError
		missingReg *aws.MissingRegionError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return must(catalog.CodeContextCanceled)
	case errors.Is(err, context.DeadlineExceeded):
		// http.Client.Timeout errors also match DeadlineExceeded; they are
		// the client's own timeout, not the caller's deadline.
		if catalog.ContainsFold(err.Error(), "client.timeout exceeded") {
			return must(catalog.CodeClientTimeout)
		}
		return must(catalog.CodeDeadlineExceeded)
	case errors.As(err, &awsSum), errors.As(err, &awsLen), errors.As(err, &smithySum), errors.As(err, &smithyLen),
		errors.As(err, &awsSumPtr), errors.As(err, &smithyPtr):
		return must(catalog.CodeStreamCorrupt)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return must(catalog.CodeStreamTruncated)
	case errors.Is(err, syscall.ECONNREFUSED):
		return must(catalog.CodeConnectionRefused)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return must(catalog.CodeConnectionReset)
	case errors.Is(err, io.EOF):
		// EOF inside a *url.Error: the server or the path closed the
		// connection before answering, typically a pooled connection that
		// was dropped while idle. A bare EOF: a body ended before it was complete.
		if errors.As(err, &urlErr) {
			return must(catalog.CodeConnectionReset)
		}
		return must(catalog.CodeStreamTruncated)
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return must(catalog.CodeDNSNotFound)
		}
		return must(catalog.CodeDNSFailure)
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &certErr), errors.As(err, &rootsErr),
		errors.As(err, &verifyErr), errors.As(err, &recordErr), errors.As(err, &alertErr):
		return must(catalog.CodeTLSFailure)
	case errors.As(err, &netErr) && netErr.Timeout():
		return must(catalog.CodeClientTimeout)
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return must(catalog.CodeUnknownNetworkError)
	case errors.As(err, &paramsErr), errors.As(err, &paramsPtr):
		return must(catalog.CodeInvalidParameters)
	case errors.As(err, &missingReg):
		return must(catalog.CodeMissingRegion)
	}
	// Errors without a type to test: match their text against the
	// catalog's hints (credentials, missing region, "server closed idle
	// connection", ...).
	if e := matchHints(err.Error()); e != nil {
		return e
	}
	switch {
	case errors.As(err, &conn) && conn.ConnectionError(), errors.As(err, &opErr), errors.As(err, &urlErr):
		return must(catalog.CodeUnknownNetworkError)
	}
	return must(catalog.CodeUnclassified)
}

func must(code string) *catalog.Entry { return catalog.Must(code) }

// credentialsFailure reports an error raised while the credential chain
// was searched, before any request was sent. What it wraps (the instance
// metadata service's 403, a dial that found no network) belongs to a
// credential source, not to Bedrock, so it must not decide the entry: read
// as a network error it would be retried, as a 4xx blamed on the request.
// The SDK gives these errors no type; its messages are the entry's hints.
// An error that names its own entry, or that the caller's cancel ended, is
// left to the rest of FromError.
func credentialsFailure(err error) bool {
	var own entrier
	if errors.As(err, &own) || errors.Is(err, context.Canceled) {
		return false
	}
	msg := err.Error()
	for _, h := range must(catalog.CodeCredentialsUnavailable).Hints {
		if catalog.ContainsFold(msg, h) {
			return true
		}
	}
	return false
}

// requestID returns the AWS request id from response headers.
func requestID(h http.Header) string {
	if v := h.Get("X-Amzn-Requestid"); v != "" {
		return v
	}
	return h.Get("X-Amz-Request-Id")
}
