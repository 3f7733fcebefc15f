package auth

import (
	"errors"
	"fmt"

	"github.com/keel-run/keel/internal/catalog"
)

// The failure modes. Every *Error wraps one of them, so errors.Is tells
// them apart through any wrapping.
var (
	// ErrNoCredentials: the request carries no credentials keel can read
	// (none, two Authorization headers, or SigV4 in the query string).
	ErrNoCredentials = errors.New("auth: no usable credentials")
	// ErrUnknownCredentials: no caller has the bearer token or access key.
	ErrUnknownCredentials = errors.New("auth: credentials of no caller")
	// ErrBadSignature: the SigV4 signature is malformed, expired or wrong.
	ErrBadSignature = errors.New("auth: signature does not verify")
	// ErrModelDenied: the caller may not use the model (Allow).
	ErrModelDenied = errors.New("auth: model not allowed for the caller")
	// ErrInsecureTransport: credentials that need TLS came over plain
	// HTTP (a bearer token, or a SigV4 request whose payload is unsigned).
	ErrInsecureTransport = errors.New("auth: credentials over plain HTTP")
	// ErrOverBudget: the caller's tokens-per-minute budget has no room for
	// the request before its deadline, or never will (Budgets.Reserve).
	ErrOverBudget = errors.New("auth: caller over its budget")
)

// Error is a refusal in Bedrock's shape: the server answers it with
// Status, the header X-Amzn-ErrorType: Code, and the JSON body
// {"message": Message}. Message never holds a secret.
type Error struct {
	// Code is AWS's error code as sent in X-Amzn-ErrorType, a catalog code
	// (catalog.CodeAccessDenied, ...).
	Code string
	// Status is the HTTP status AWS answers Code with.
	Status int
	// Message is the message AWS would give, or keel's where AWS's is not
	// known (docs/gateway-auth.md says which).
	Message string

	kind error // one of the Err* failure modes
}

func (e *Error) Error() string { return fmt.Sprintf("auth: %s (%d): %s", e.Code, e.Status, e.Message) }

// Unwrap returns the failure mode (ErrNoCredentials, ...).
func (e *Error) Unwrap() error { return e.kind }

// newError returns an Error with code's catalog status.
func newError(kind error, code, msg string) *Error {
	e, ok := catalog.Lookup(code)
	if !ok {
		panic("auth: code " + code + " is not in the catalog") // the package's own constants only
	}
	return &Error{Code: e.WireCode(), Status: e.Status, Message: msg, kind: kind}
}
