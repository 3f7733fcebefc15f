package engine

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/stream"
)

// This file ends a streaming call: the typed failure its reader gets, and
// the Report, log line and hook that close every stream once.

// StreamFailure describes a stream that failed after its reader had
// received part of the reply: the reply so far stands, and this is how
// much of it there was.
type StreamFailure struct {
	// Events counts the events the reader received.
	Events int
	// Text is the text the reader received (the text blocks, in order).
	Text string
	// Resumes counts the continuations spliced in before the failure.
	Resumes int
	// Frame is the exception or error frame as Bedrock sent it, when the
	// failure was one, so that a gateway can forward it as it came.
	Frame []byte
}

// fail ends the stream with the failure the reader gets.
func (sb *streamBody) fail(res classify.Result, cause error, gaveUp string, frame []byte) {
	if sb.closing.Load() {
		// The reader closed the stream while a read was waiting: what
		// failed is the cancelled wait, which is no failure of the stream.
		sb.finish(nil)
		sb.err = errClosed
		return
	}
	rid := ""
	if n := len(sb.rep.Attempts); n > 0 {
		rid = sb.rep.Attempts[n-1].RequestID
	}
	events := 0
	for _, a := range sb.rep.Attempts {
		events += a.Events
	}
	ke := &Error{Entry: res.Entry, Code: res.Code, Status: res.Status, Message: res.Message, RequestID: rid,
		GaveUp: gaveUp, Report: sb.rep, Err: cause,
		Stream: &StreamFailure{Events: events, Text: string(sb.sp.Text()), Resumes: sb.resumes, Frame: frame}}
	ke.Status = cmp.Or(ke.Status, res.Entry.Status)
	sb.finish(ke)
}

// finish ends the stream once: the Report gets its usage and total, the
// outcome is logged, and the hook runs. err is nil for a complete stream or
// one the reader closed.
func (sb *streamBody) finish(err *Error) {
	if sb.ended {
		return
	}
	sb.ended = true
	if err != nil {
		sb.err = err
	} else {
		sb.err = io.EOF
	}
	if src := sb.src; src != nil {
		src.close()
	}
	// Nothing reads frames after the end, and the reader has every byte
	// that pointed into the buffer (Read steps only once out is empty).
	sb.fr.Release()
	rep := sb.rep
	for i, g := range sb.sp.Segments() {
		if i < len(sb.segments) {
			rep.Attempts[sb.segments[i]].Usage = usageOf(g)
		}
	}
	rep.Usage = Usage{}
	for _, a := range rep.Attempts {
		rep.Usage = rep.Usage.add(a.Usage)
	}
	if src := sb.src; src != nil {
		// The attempt being read when the stream ended: its final usage, or
		// for a stream closed early, what it delivered.
		src.tk.Settle(admissionUsage(rep.Attempts[src.ai].Usage))
	}
	rep.Total = sb.e.clk.Now().Sub(sb.start)
	var out error
	if err != nil {
		out = err
	}
	sb.e.outcome(sb.ctx, sb.call, rep, out)
	sb.e.logStream(sb.ctx, sb.call, rep, out)
	if h := sb.e.opts.OnStreamEnd; h != nil {
		h(sb.call, rep, out)
	}
	sb.cancel()
}

func usageOf(g stream.Segment) Usage {
	return Usage{InputTokens: g.Usage.InputTokens, OutputTokens: g.Usage.OutputTokens,
		CacheReadInputTokens: g.Usage.CacheReadInputTokens, CacheWriteInputTokens: g.Usage.CacheWriteInputTokens,
		Estimated: g.Estimated}
}

// frameErrorResponse turns an exception or error frame into the error
// response Bedrock sends when it fails before a stream starts: the
// exception's true status, X-Amzn-ErrorType, the frame's JSON body.
func frameErrorResponse(orig *http.Response, res classify.Result, frame []byte) *http.Response {
	code := cmp.Or(res.Entry.WireCode(), res.Code)
	body := []byte(nil)
	var fr stream.Reader
	fr.Reset(bytes.NewReader(frame))
	defer fr.Release() // the payload is copied into body
	if f, err := fr.Next(); err == nil && json.Valid(f.Payload) && len(bytes.TrimSpace(f.Payload)) > 0 && bytes.TrimSpace(f.Payload)[0] == '{' {
		body = append(body, f.Payload...)
	} else {
		body, _ = json.Marshal(map[string]string{"message": res.Message})
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Amzn-Errortype", code)
	h.Set("X-Keel-Stream-Exception", "true") // it came as a frame inside a 200 stream
	if rid := orig.Header.Get("X-Amzn-Requestid"); rid != "" {
		h.Set("X-Amzn-Requestid", rid)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return &http.Response{
		Status: fmt.Sprintf("%d %s", res.Status, http.StatusText(res.Status)), StatusCode: res.Status,
		Proto: orig.Proto, ProtoMajor: orig.ProtoMajor, ProtoMinor: orig.ProtoMinor,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: orig.Request,
	}
}
