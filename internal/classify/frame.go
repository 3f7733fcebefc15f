package classify

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/keel-run/keel/internal/catalog"
)

// FromFrame classifies an event-stream frame by its headers and payload.
// An exception frame (:message-type "exception") is looked up by its
// :exception-type, in the lowerCamelCase the service sends
// ("throttlingException"), with the message from the JSON payload; an error
// frame (:message-type "error") by its :error-code and :error-message. The
// Status is the exception's true status (429 for throttling, 503 for
// unavailable, ...), never the 200 of the response that carried the
// stream. An unknown exception counts as an unknown server error. Any other
// frame (an event) yields a Result with a nil Entry.
func FromFrame(h eventstream.Headers, payload []byte) Result {
	return FromFrameValues(header(h, ":message-type"), header(h, ":exception-type"),
		header(h, ":error-code"), header(h, ":error-message"), payload)
}

// FromFrameValues is FromFrame for callers holding the header values
// already, for example decoded with github.com/aws/smithy-go/eventstream.
func FromFrameValues(messageType, exceptionType, errorCode, errorMessage string, payload []byte) Result {
	var r Result
	switch messageType {
	case "exception":
		r.Code = exceptionType
		info := parseBody(payload)
		if r.Code == "" {
			r.Code = info.code
		}
		r.Message = info.message
	case "error":
		r.Code, r.Message = errorCode, errorMessage
	default:
		return Result{}
	}
	if e, ok := catalog.Lookup(r.Code); ok {
		r.Entry = catalog.Refine(e, r.Message)
	} else {
		r.Entry = catalog.Must(catalog.CodeUnknownServerError)
	}
	r.Status = r.Entry.Status
	return r
}

// header returns the string value of a frame header, or "".
func header(h eventstream.Headers, name string) string {
	switch v := h.Get(name).(type) {
	case eventstream.StringValue:
		return string(v)
	case eventstream.BytesValue:
		return string(v)
	}
	return ""
}

// FromStopReason recognises a stop reason that says a content filter or a
// guardrail intervened: Converse's content_filtered and
// guardrail_intervened, and the InvokeModel forms of the model families
// (CONTENT_FILTERED, Anthropic's refusal, Cohere's ERROR_TOXIC, and the
// INTERVENED of amazon-bedrock-guardrailAction). Case, '_', '-' and spaces
// are ignored. For any other stop reason (end_turn, max_tokens, tool_use,
// ...) ok is false.
func FromStopReason(reason string) (r Result, ok bool) {
	var buf [32]byte
	n := 0
	for i := 0; i < len(reason); i++ {
		c := reason[i]
		switch {
		case c == '_' || c == '-' || c == ' ':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if n == len(buf) {
			return Result{}, false
		}
		buf[n] = c
		n++
	}
	var code string
	switch string(buf[:n]) {
	case "contentfiltered", "refusal", "errortoxic":
		code = catalog.CodeContentFiltered
	case "guardrailintervened", "intervened":
		code = catalog.CodeGuardrailIntervened
	default:
		return Result{}, false
	}
	e := catalog.Must(code)
	return Result{Entry: e, Code: strings.TrimSpace(reason), Status: e.Status}, true
}
