package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/engine"
)

// Refusal is an error answered in Bedrock's shape: status, X-Amzn-ErrorType
// Code and a JSON body {"message": Message}. Authenticate and Limit return
// one to refuse a request as AWS would (403 AccessDeniedException, 429
// ThrottlingException, ...).
type Refusal struct {
	Code    string // a Bedrock error code, such as AccessDeniedException
	Status  int    // its HTTP status
	Message string
	// KeelCode, when set, is sent as X-Keel-Code in place of Code: the
	// catalog's name for what happened, when it is finer than Code.
	KeelCode string
}

func (r *Refusal) Error() string {
	return "gateway: " + r.Code + " (HTTP " + strconv.Itoa(r.Status) + "): " + r.Message
}

// Error shape. The namespace suffix is Bedrock's: the SDKs strip everything
// from the colon on, as they do for the service's own errors.
const (
	bedrockNamespace = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
	jsonContentType  = "application/json"
)

// Header names. The X-Keel ones tell what keel did.
const (
	hdrAttempts  = "X-Keel-Attempts"
	hdrCode      = "X-Keel-Code"
	hdrRequestID = "X-Amzn-Requestid"
	hdrErrorType = "X-Amzn-Errortype"
	// hdrCache asks, in a request, to bypass or refresh the response
	// cache; in an answer, it says how the cache served the call (hit,
	// miss, coalesced).
	hdrCache = "X-Keel-Cache"
)

// cacheMode reads a request's X-Keel-Cache: bypass, refresh, or none.
func cacheMode(h http.Header) (engine.CacheMode, *Refusal) {
	switch v := h.Get(hdrCache); v {
	case "":
		return engine.CacheDefault, nil
	case "bypass":
		return engine.CacheBypass, nil
	case "refresh":
		return engine.CacheRefresh, nil
	default:
		return 0, validation("keel gateway: " + hdrCache + ": " + strconv.Quote(v) + ": want bypass or refresh")
	}
}

// setCache tells the caller how the response cache served the call; a call
// the cache did not serve (bypass, or no cache) gets no header.
func setCache(h http.Header, rep *engine.Report) {
	switch rep.Cache {
	case "hit", "miss", "coalesced":
		h.Set(hdrCache, rep.Cache)
	}
}

// refusalFor maps a keel failure that has no upstream response to write
// (keel refused the call, or no usable HTTP exchange happened) onto the
// Bedrock error a caller already handles. docs/gateway.md has the table.
// shutdown reports that the gateway cut the call while stopping.
func refusalFor(f *engine.Error, shutdown bool) *Refusal {
	e := f.Entry
	if e == nil {
		e = catalog.Must(catalog.CodeUnclassified)
	}
	msg := f.Error()
	r := &Refusal{Message: msg, KeelCode: e.Code}
	switch {
	case shutdown:
		r.Code, r.Status = catalog.CodeServiceUnavailable, http.StatusServiceUnavailable
		r.Message = "keel gateway: shutting down; the call was cut after the drain timeout: " + msg
	case e.Code == catalog.CodeNoQuotaBeforeDeadline || e.Code == catalog.CodeTargetOverloaded:
		// Slow down: the SDKs' retryers back off on it.
		r.Code, r.Status = catalog.CodeThrottling, http.StatusTooManyRequests
	case e.Code == catalog.CodeRequestTooLargeForQuota:
		// Can never fit: retrying it is pointless.
		r.Code, r.Status = catalog.CodeValidation, http.StatusBadRequest
	case e.Code == catalog.CodeAttemptTimeout || e.Code == catalog.CodeDeadlineExceeded || e.Code == catalog.CodeClientTimeout:
		r.Code, r.Status = catalog.CodeModelTimeout, catalog.Must(catalog.CodeModelTimeout).Status
	case e.Category == catalog.Auth:
		// The gateway's own upstream credentials failed, not the caller's:
		// a caller told UnrecognizedClientException would look at its keys.
		r.Code, r.Status = catalog.CodeInternalServer, http.StatusInternalServerError
		r.Message = "keel gateway: the gateway's upstream credentials were refused: " + msg
	case e.WireCode() != "" && e.Status >= 400:
		// A Bedrock error without a response (a stream's exception
		// before content, rebuilt): its own code and status.
		r.Code, r.Status = e.WireCode(), e.Status
	case e.Category == catalog.Validation || e.Category == catalog.Client:
		r.Code, r.Status = catalog.CodeValidation, http.StatusBadRequest
	case e.Category == catalog.Server || e.Category == catalog.Network || e.Category == catalog.Stream || e.Category == catalog.Quota:
		// CircuitOpen, connection errors, broken streams: the service
		// is unavailable from here for now; the SDKs retry it.
		r.Code, r.Status = catalog.CodeServiceUnavailable, http.StatusServiceUnavailable
	default:
		r.Code, r.Status = catalog.CodeInternalServer, http.StatusInternalServerError
	}
	return r
}

// writeRefusal answers with r in Bedrock's error shape, and returns the
// error of writing it.
func writeRefusal(w http.ResponseWriter, r *Refusal, attempts int, requestID string) error {
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	h.Set(hdrErrorType, r.Code+bedrockNamespace)
	h.Set(hdrAttempts, strconv.Itoa(attempts))
	code := r.KeelCode
	if code == "" {
		code = r.Code
	}
	h.Set(hdrCode, code)
	if requestID != "" {
		h.Set(hdrRequestID, requestID)
	}
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{r.Message})
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(r.Status)
	_, err := w.Write(body)
	return err
}

// exceptionFrame encodes an event-stream exception frame for a stream that
// failed after it began: the upstream's own frame when the failure was one,
// else one whose :exception-type is the Bedrock exception refusalFor names.
func exceptionFrame(f *engine.Error, shutdown bool) []byte {
	if !shutdown && f.Stream != nil && len(f.Stream.Frame) > 0 {
		return f.Stream.Frame
	}
	r := refusalFor(f, shutdown)
	if r.Code == catalog.CodeServiceUnavailable && !shutdown && f.Entry != nil && f.Entry.Category == catalog.Stream {
		// A stream that broke beyond repair (truncated, corrupt, stalled)
		// is a model stream error to the SDKs.
		r.Code = catalog.CodeModelStreamError
	}
	entry, _ := catalog.Lookup(r.Code)
	payload, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{r.Message})
	var buf bytes.Buffer
	eventstream.NewEncoder().Encode(&buf, eventstream.Message{
		Headers: eventstream.Headers{
			{Name: ":message-type", Value: eventstream.StringValue("exception")},
			{Name: ":exception-type", Value: eventstream.StringValue(entry.StreamName())},
			{Name: ":content-type", Value: eventstream.StringValue(jsonContentType)},
		},
		Payload: payload,
	})
	return buf.Bytes()
}
