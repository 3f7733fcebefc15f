package emulator

import (
	"cmp"
	"net/http"
	"strconv"

	"github.com/keel-run/keel/internal/catalog"
)

// apiError is one error the emulator answers with, resolved from the catalog.
type apiError struct {
	status     int
	code       string // X-Amzn-ErrorType, without the namespace suffix
	streamName string // :exception-type inside an event stream
	namespace  string // the suffix Bedrock's front end appends to X-Amzn-ErrorType
	message    string
}

// lookupError resolves a catalog code. An empty message takes the catalog's
// default. A code the catalog does not know, or one with no HTTP status of
// its own, becomes an InternalServerException that names it, so a typo in a
// scenario is visible rather than silently answered as something else.
func lookupError(code, message string) apiError {
	e, ok := catalog.Lookup(code)
	if !ok || e.Status < 400 || e.WireCode() == "" {
		return apiError{status: http.StatusInternalServerError, code: "InternalServerException",
			streamName: "internalServerException", namespace: bedrockNamespace,
			message: "emulator: " + strconv.Quote(code) + " is not a catalog code the service can answer with"}
	}
	message = cmp.Or(message, e.DefaultMessage)
	ns := bedrockNamespace
	if e.Source == "aws-auth" {
		ns = coralNamespace
	}
	return apiError{status: e.Status, code: e.WireCode(), streamName: e.StreamName(), namespace: ns, message: message}
}

// Bedrock's front end sends X-Amzn-ErrorType as "Code:namespace"; the SDKs
// strip everything from the colon on. Sending the suffix keeps clients honest.
const (
	bedrockNamespace = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
	coralNamespace   = ":http://internal.amazon.com/coral/com.amazon.coral.service/"
)

// Codes the emulator answers with on its own account.
const (
	codeValidation = catalog.CodeValidation
	codeNotFound   = catalog.CodeResourceNotFound
	codeUnknownOp  = catalog.CodeInvalidAction
)

// writeError answers with e as the service does: status, X-Amzn-ErrorType,
// a JSON body {"message": ...}. The request id header is already set.
func (x *exchange) writeError(e apiError) {
	x.code = e.code
	h := x.w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Amzn-Errortype"] = []string{e.code + e.namespace}
	b := x.out[:0]
	b = append(b, `{"message":`...)
	b = appendJSONString(b, e.message)
	b = append(b, '}')
	x.out = b
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	x.w.WriteHeader(e.status)
	x.w.Write(b)
}

// fail answers with a catalog code and message.
func (x *exchange) fail(code, message string) {
	x.writeError(lookupError(code, message))
}
