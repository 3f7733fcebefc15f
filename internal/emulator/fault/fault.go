// Package fault describes how the emulator misbehaves for one request. The
// scenario package decides a Plan per request; the emulator's server carries
// it out. Keeping the plan a plain value lets both sides be tested apart.
package fault

import "time"

// Request identifies what a plan is decided for.
type Request struct {
	Model     string // model id as sent, unescaped (an ARN or inference profile id is fine)
	Region    string // region the emulator believes the request was sent to
	Operation string // "converse", "converse-stream", "invoke", "invoke-with-response-stream", "count-tokens"
	// Tier is the service tier the request asks for: "default" when it
	// names none.
	Tier string
}

// Streaming reports whether the operation answers with an event stream.
func (r Request) Streaming() bool {
	return r.Operation == "converse-stream" || r.Operation == "invoke-with-response-stream"
}

// MidStreamKind says what goes wrong inside a response body.
type MidStreamKind string

// Mid-stream fault kinds.
const (
	// Exception sends an exception frame (:message-type exception) with
	// :exception-type set to the lowerCamelCase form of Code, then ends the body.
	Exception MidStreamKind = "exception"
	// ErrorFrame sends an error frame (:message-type error, :error-code Code, :error-message).
	ErrorFrame MidStreamKind = "error"
	// Truncate ends the body in the middle of a frame.
	Truncate MidStreamKind = "truncate"
	// Corrupt sends a frame whose message CRC does not match.
	Corrupt MidStreamKind = "corrupt"
	// Reset aborts the TCP connection (RST) in the middle of the body.
	Reset MidStreamKind = "reset"
	// Stall stops sending and holds the connection open until the client gives up.
	Stall MidStreamKind = "stall"
)

// MidStream is a fault inside a response body.
type MidStream struct {
	Kind MidStreamKind
	// After is the number of complete events sent before the fault (0: before
	// the first event). For a non-streaming reply, Reset, Truncate and Stall
	// apply to the JSON body and After is ignored.
	After int
	// Code is the catalog code for Exception and ErrorFrame (for example
	// "ThrottlingException"); ignored otherwise.
	Code string
	// Message overrides the catalog's default message; empty keeps it.
	Message string
}

// Plan is what the emulator does with one request. The zero Plan means: behave.
type Plan struct {
	// Refuse closes the connection without sending a response (the client sees
	// a reset or EOF); it stands in for a region that refuses connections.
	Refuse bool
	// Hang sends nothing at all until the client gives up.
	Hang bool
	// Latency is added before the first byte of the response.
	Latency time.Duration
	// Error answers with this catalog code before any reply (status, headers and
	// JSON body as the service sends them). Empty means no error.
	Error string
	// ErrorMessage overrides the default message for Error.
	ErrorMessage string
	// MidStream, when non-nil, breaks the response body.
	MidStream *MidStream
	// Rule names the scenario rule that produced the plan, for counters and logs.
	Rule string
}

// Zero reports whether the plan asks for no misbehaviour at all.
func (p Plan) Zero() bool {
	return !p.Refuse && !p.Hang && p.Latency == 0 && p.Error == "" && p.MidStream == nil
}
