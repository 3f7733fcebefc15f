package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/engine"
)

// maxModelID is the longest model identifier Bedrock accepts (an ARN of a
// provisioned or imported model fits well within it).
const maxModelID = 2048

// A stream is copied by a pump goroutine that reads keel's stream into
// streamAhead+1 buffers of streamChunk bytes while the handler writes them
// to the caller, flushing only when no read is waiting to be written: a
// burst of events goes out in one write, an event that comes alone at once.
// keel's stream gives one event per read, so flushing each read would cost
// a write to the socket per event (a few hundred bytes). A buffer is larger
// than any ordinary event; a larger one passes in pieces.
const (
	streamChunk = 8 << 10
	streamAhead = 3
)

// streamBuffers holds the buffers of streams that ended, for the next.
var streamBuffers = sync.Pool{New: func() any { return new([streamAhead + 1][streamChunk]byte) }}

// streamRead is what one read of keel's stream gave.
type streamRead struct {
	p   []byte
	err error
}

// sdkTTLFormat is how aws-sdk-go-v2 writes the ttl= part of its
// Amz-Sdk-Request header: the attempt's deadline, corrected for clock skew,
// to the second.
const sdkTTLFormat = "20060102T150405Z"

// exchange is one request on /model/ being served.
type exchange struct {
	s      *Server
	w      http.ResponseWriter
	r      *http.Request
	start  time.Time
	caller Caller
	ev     Event
	rid    string // the upstream request id, when one answered
	// bodyHeld is how many bytes of the server's bodies in flight this
	// request holds (readBody, until releaseBody).
	bodyHeld int64
	// usage is what the call used, as the reply reported it, and target
	// where it ran (zero when no attempt was made).
	usage  engine.Usage
	target attempt.Target
	// callerCut reports a stream cut because its caller went away or did
	// not read: no failure of the call, so it is not dead-lettered.
	callerCut bool
}

// serveModel serves POST /model/{modelId}/{operation}.
func (s *Server) serveModel(w http.ResponseWriter, r *http.Request) {
	s.inflight.add()
	defer s.inflight.done()
	x := &exchange{s: s, w: w, r: r, start: time.Now()}
	defer x.finish()
	model, op, ok := attempt.ParsePath(r.URL.EscapedPath())
	if !ok || r.Method != http.MethodPost {
		x.refuse(&Refusal{Code: catalog.CodeInvalidAction, Status: catalog.Must(catalog.CodeInvalidAction).Status,
			Message: fmt.Sprintf("keel gateway: %s %s names no Bedrock Runtime operation; want POST /model/{modelId}/{converse, converse-stream, invoke, invoke-with-response-stream, count-tokens}", r.Method, r.URL.EscapedPath())})
		return
	}
	x.ev.Op, x.ev.Model, x.ev.Streaming = string(op), model, op.Streaming()
	if rf := cmpRefusal(s.hostRefusal(r), browserRefusal(r)); rf != nil {
		x.ev.Refused = true
		x.refuse(rf)
		return
	}
	if msg := checkModelID(model); msg != "" {
		x.refuse(validation(msg))
		return
	}
	if s.opts.CheckHeaders != nil {
		if err := s.opts.CheckHeaders(r); err != nil {
			x.ev.Refused = true
			x.refuse(asRefusal(err, catalog.CodeInternalServer, http.StatusInternalServerError))
			return
		}
	}
	body, rf := x.readBody()
	defer x.releaseBody()
	if rf != nil {
		x.ev.Refused = rf.Status == http.StatusServiceUnavailable
		x.refuse(rf)
		return
	}
	if s.opts.Authenticate != nil {
		c, err := s.opts.Authenticate(r, model, body)
		if err != nil {
			x.ev.Refused = true
			x.refuse(asRefusal(err, catalog.CodeInternalServer, http.StatusInternalServerError))
			return
		}
		x.caller = c
	}
	// The caller is known: its body no longer counts as one being read.
	x.releaseBody()
	x.ev.Caller = x.caller.Name
	// Checked once the caller is known, so that a stranger gets only the
	// refusal.
	if isJSON(r.Header.Get("Content-Type")) && !json.Valid(body) {
		x.refuse(validation("Malformed input request: keel gateway: the request body is not valid JSON"))
		return
	}
	cm, rf := cacheMode(r.Header)
	if rf != nil {
		x.refuse(rf)
		return
	}
	// The call's context, built before the budget wait so that the wait
	// ends at the call's deadline and at a shutdown's cut.
	ctx, cancel := context.WithDeadline(r.Context(), s.deadline(r.Header, op, x.start))
	defer cancel()
	stop := context.AfterFunc(s.cut, cancel)
	defer stop()
	if cm != engine.CacheDefault {
		ctx = engine.WithCache(ctx, cm)
	}
	call := &engine.Call{Op: op, Model: model, Region: attempt.RegionFromAuthorization(r.Header.Get("Authorization")),
		Body: body, Header: s.upstreamHeader(r.Header), Priority: x.caller.Priority, Caller: x.caller.Name}
	if rf := targetRefusal(call.Region, engine.RequestTier(op, r.Header, body)); rf != nil {
		x.refuse(rf)
		return
	}
	if s.opts.Limit != nil {
		est, _ := admission.EstimateBody(body) // a body it cannot read still gets its cautious estimate
		target := attempt.Target{Model: model, Region: call.Region}
		release, err := s.opts.Limit(ctx, x.caller.Name, model, s.hold(est, target))
		if err != nil {
			x.ev.Refused = true
			if s.cut.Err() != nil {
				x.refuse(refusalFor(&engine.Error{Entry: catalog.Must(catalog.CodeContextCanceled), Message: err.Error(), Err: err}, true))
				return
			}
			x.refuse(asRefusal(err, catalog.CodeThrottling, http.StatusTooManyRequests))
			return
		}
		defer func() {
			if x.target.Model != "" {
				target = x.target
			}
			release(s.charge(x.usage, target))
		}()
	}
	x.call(ctx, call)
}

// checkModelID returns what is wrong with a model id, or "".
func checkModelID(model string) string {
	if len(model) > maxModelID {
		return fmt.Sprintf("1 validation error detected: Value at 'modelId' failed to satisfy constraint: Member must have length less than or equal to %d", maxModelID)
	}
	for _, c := range []byte(model) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".:/_-", c) >= 0) {
			return fmt.Sprintf("1 validation error detected: Value %q at 'modelId' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9.:/_-]+", model)
		}
	}
	return ""
}

func validation(msg string) *Refusal {
	return &Refusal{Code: catalog.CodeValidation, Status: http.StatusBadRequest, Message: msg}
}

// asRefusal returns err's *Refusal, or one of code and status carrying
// err's text.
func asRefusal(err error, code string, status int) *Refusal {
	var rf *Refusal
	if errors.As(err, &rf) {
		return rf
	}
	return &Refusal{Code: code, Status: status, Message: "keel gateway: " + err.Error()}
}

// isJSON reports whether a request's content type is JSON, or unset (the
// SDKs always set one; Bedrock's bodies are JSON).
func isJSON(ct string) bool {
	if ct == "" || ct == jsonContentType {
		return true // what every SDK sends: no parsing
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == jsonContentType || strings.HasSuffix(mt, "+json"))
}

// upstreamHeader is the caller's headers the engine sends upstream: those
// Bedrock reads (Content-Type, Accept, the X-Amzn-Bedrock-* options such as
// guardrails, trace, latency and service tier) and User-Agent, never the
// caller's credentials to the gateway nor anything else it sent (cookies,
// proxies' headers). Authorization is the gateway's bearer key, or none:
// the engine signs each attempt anew.
func (s *Server) upstreamHeader(in http.Header) http.Header {
	h := make(http.Header, 4)
	for k, vs := range in {
		switch {
		case k == "Content-Type" || k == "Accept" || k == "User-Agent" || strings.HasPrefix(k, "X-Amzn-Bedrock-"):
			h[k] = vs // the engine replaces, never appends to, a value it changes
		}
	}
	if s.opts.UpstreamBearer != "" {
		h["Authorization"] = []string{"Bearer " + s.opts.UpstreamBearer}
	}
	return h
}

// deadline is when the call must end: Timeout from now, or the caller's
// own deadline when its SDK sends an earlier one (the Amz-Sdk-Request
// ttl=). A ttl counts for non-streaming calls only: botocore writes its
// read timeout from now there, which bounds a wait for a reply but not a
// stream that keeps sending. A ttl already past is ignored: aws-sdk-go-v2
// writes its deadline in the client's local time with a literal Z, so on a
// client west of UTC it reads hours early; such a caller's own timeout
// still ends the call, by disconnecting.
func (s *Server) deadline(h http.Header, op attempt.Op, now time.Time) time.Time {
	d := now.Add(s.opts.Timeout)
	if op.Streaming() {
		return d
	}
	if t, err := time.Parse(sdkTTLFormat, sdkRequest(h, "ttl")); err == nil && t.After(now) && t.Before(d) {
		d = t
	}
	return d
}

// sdkRequest returns the value of key in a request's Amz-Sdk-Request
// header ("attempt=1; max=3; ttl=..." in any order, as aws-sdk-go-v2, the
// AWS SDK for JavaScript v3 and botocore send it), or "".
func sdkRequest(h http.Header, key string) string {
	for part := range strings.SplitSeq(h.Get("Amz-Sdk-Request"), ";") {
		if k, v, _ := strings.Cut(strings.TrimSpace(part), "="); k == key {
			return v
		}
	}
	return ""
}

// callerRetries reports whether the caller's SDK will send the call again
// after this answer: the answer is one the SDKs retry (429, or a 5xx
// status), and the Amz-Sdk-Request header says this was attempt N of M
// with N < M. Without the header, or its attempt and max, it reports
// false: nothing says the caller will retry.
func (x *exchange) callerRetries() bool {
	if x.ev.Status != http.StatusTooManyRequests && x.ev.Status < 500 {
		return false
	}
	n, err1 := strconv.Atoi(sdkRequest(x.r.Header, "attempt"))
	m, err2 := strconv.Atoi(sdkRequest(x.r.Header, "max"))
	return err1 == nil && err2 == nil && n < m
}

// call runs the call through the engine within ctx (the call's deadline,
// cut by a shutdown) and writes its outcome.
func (x *exchange) call(ctx context.Context, call *engine.Call) {
	s := x.s
	resp, rep, err := s.opts.Engine.Do(ctx, call)
	if rep != nil {
		x.target = rep.Target
		x.ev.Attempts = rep.Sent() // a stream's grows until its end: stream sets it again
		for _, a := range rep.Attempts {
			if a.Status != 0 {
				s.ready.Store(true)
				break
			}
		}
	}
	var f *engine.Error
	if err != nil && !errors.As(err, &f) {
		f = &engine.Error{Entry: catalog.Must(catalog.CodeUnclassified), Message: err.Error(), Report: rep, Err: err}
	}
	if f != nil && f.Entry == nil {
		f.Entry = catalog.Must(catalog.CodeUnclassified)
	}
	shutdown := s.cut.Err() != nil
	switch {
	case f == nil && call.Op.Streaming():
		f = x.stream(resp, rep)
	case f == nil:
		x.reply(resp, rep, nil)
	case resp != nil && !shutdown && !refusedByKeel(f) && f.Entry.Category != catalog.Auth:
		// Bedrock's own error response, as it came.
		x.reply(resp, rep, f)
	default:
		if resp != nil {
			resp.Body.Close()
		}
		x.ev.Refused = refusedByKeel(f)
		x.rid = lastRequestID(rep)
		x.refuse(refusalFor(f, shutdown))
	}
	if f != nil {
		x.ev.Code = f.Entry.Code
		// A call its caller will send again is not parked: a redrive
		// would send it twice.
		if !x.callerCut && !x.callerRetries() {
			x.park(ctx, call, f)
		}
	}
}

// refusedByKeel reports a call keel refused rather than the upstream
// failed: the quota governor's refusals and an open breaker.
func refusedByKeel(f *engine.Error) bool {
	switch f.Entry.Code {
	case catalog.CodeNoQuotaBeforeDeadline, catalog.CodeTargetOverloaded, catalog.CodeRequestTooLargeForQuota, catalog.CodeCircuitOpen:
		return true
	}
	return false
}

func lastRequestID(rep *engine.Report) string {
	if rep == nil {
		return ""
	}
	for i := len(rep.Attempts) - 1; i >= 0; i-- {
		if id := rep.Attempts[i].RequestID; id != "" {
			return id
		}
	}
	return ""
}

// park sends a call that failed for good to the dead-letter queue.
func (x *exchange) park(ctx context.Context, call *engine.Call, f *engine.Error) {
	if x.s.opts.DLQ == nil {
		return
	}
	rec := *x.s.opts.DLQ
	rec.Source = "gateway/" + x.caller.Name
	// The call's context ended when the caller went away: dlq.Record
	// then parks nothing, as for any cancelled call.
	if _, err := rec.Record(ctx, call, f, ""); err != nil && x.s.opts.Logger != nil {
		x.s.opts.Logger.LogAttrs(ctx, slog.LevelError, "dlq", slog.String("caller", x.caller.Name),
			slog.String("model", call.Model), slog.String("error", err.Error()))
	}
}

// refuse answers with rf.
func (x *exchange) refuse(rf *Refusal) {
	x.ev.Status = rf.Status
	x.ev.Code = rf.KeelCode
	if x.ev.Code == "" {
		x.ev.Code = rf.Code
	}
	x.writeDeadline()
	x.wrote(writeRefusal(x.w, rf, x.ev.Attempts, x.rid))
}

// writeDeadline bounds the writing of a non-streaming answer by
// WriteTimeout, as each write of a stream is: a client that reads nothing
// cannot hold the handler, its buffer and its connection. Not every
// ResponseWriter can set one (a test recorder): those write without it.
func (x *exchange) writeDeadline() {
	http.NewResponseController(x.w).SetWriteDeadline(time.Now().Add(x.s.opts.WriteTimeout))
}

// wrote records the failure of writing a non-streaming answer, when it
// failed: the caller timed out (ClientTimeout) or went away.
func (x *exchange) wrote(err error) {
	if err == nil || x.ev.Code != "" {
		return
	}
	x.ev.Code = catalog.CodeContextCanceled
	if errors.Is(err, os.ErrDeadlineExceeded) {
		x.ev.Code = catalog.CodeClientTimeout
	}
}

// hopHeaders are the response headers not copied from the upstream's
// response: they describe its connection or body framing, not the reply.
var hopHeaders = []string{"Connection", "Keep-Alive", "Transfer-Encoding", "Trailer", "Upgrade", "Content-Length", "Date"}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = vs
	}
	for _, k := range hopHeaders {
		dst.Del(k)
	}
}

// reply writes a non-streaming response: the upstream's status, headers and
// body, with keel's headers added. f is the failure when the response is
// Bedrock's error.
func (x *exchange) reply(resp *http.Response, rep *engine.Report, f *engine.Error) {
	body, err := io.ReadAll(resp.Body) // read whole by the engine already
	resp.Body.Close()
	if err != nil {
		x.refuse(refusalFor(&engine.Error{Entry: catalog.Must(catalog.CodeResponseTruncated), Message: err.Error(), Report: rep, Err: err}, false))
		return
	}
	h := x.w.Header()
	copyHeader(h, resp.Header)
	h.Set(hdrAttempts, strconv.Itoa(rep.Sent()))
	setCache(h, rep)
	if f != nil {
		h.Set(hdrCode, f.Entry.Code)
	} else {
		x.usage = engine.ReplyUsage(resp.Header, body)
		x.ev.Input, x.ev.Output = x.usage.InputTokens, x.usage.OutputTokens
		if rep.Cache == "hit" || rep.Cache == "coalesced" {
			x.usage = engine.Usage{} // served without Bedrock: nothing against the caller's budget
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	x.rid = resp.Header.Get(hdrRequestID)
	x.ev.Status = resp.StatusCode
	x.writeDeadline()
	x.w.WriteHeader(resp.StatusCode)
	_, werr := x.w.Write(body)
	x.wrote(werr)
}

// stream copies a streaming reply to the caller, flushing each write, and
// ends a stream that failed with an exception frame. X-Keel-Attempts and
// X-Keel-Code go out as trailers. It returns the failure, if any.
func (x *exchange) stream(resp *http.Response, rep *engine.Report) (failed *engine.Error) {
	h := x.w.Header()
	copyHeader(h, resp.Header)
	setCache(h, rep)
	h.Set("Trailer", hdrAttempts+", "+hdrCode)
	x.rid = resp.Header.Get(hdrRequestID)
	x.ev.Status = resp.StatusCode
	x.w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(x.w)
	werr := x.write(rc, nil, true)
	bufs := streamBuffers.Get().(*[streamAhead + 1][streamChunk]byte)
	defer streamBuffers.Put(bufs)
	// Every buffer is either free, being read into, or in reads: neither
	// channel's send ever blocks.
	free := make(chan []byte, len(bufs))
	reads := make(chan streamRead, len(bufs))
	for i := range bufs {
		free <- bufs[i][:]
	}
	stop := make(chan struct{})
	go func() {
		defer close(reads)
		for {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			n, err := resp.Body.Read(b)
			reads <- streamRead{b[:n], err}
			if err != nil {
				return
			}
		}
	}()
	unflushed := false // written, not flushed
	for werr == nil {
		rd, more := <-reads
		if !more {
			break
		}
		// Flush when nothing more is ready to write.
		last := len(reads) == 0 || rd.err != nil
		if len(rd.p) > 0 || (unflushed && last) {
			werr = x.write(rc, rd.p, last)
			unflushed = !last
		}
		free <- rd.p[:cap(rd.p)]
		if rd.err == io.EOF || werr != nil {
			break
		}
		if rd.err != nil {
			if !errors.As(rd.err, &failed) {
				failed = &engine.Error{Entry: catalog.Must(catalog.CodeUnclassified), Message: rd.err.Error(), Report: rep, Err: rd.err}
			}
			if x.r.Context().Err() == nil {
				x.write(rc, exceptionFrame(failed, x.s.cut.Err() != nil), true)
			}
			break
		}
	}
	close(stop)
	// Closing ends the upstream attempt (a caller that went away) and
	// settles its quota, and ends a read the pump is waiting on; the Report
	// is final once the pump has stopped.
	resp.Body.Close()
	for range reads {
	}
	// The end of the body and the trailers are written after the handler
	// returns: within one more WriteTimeout (the server clears the
	// deadline then).
	rc.SetWriteDeadline(time.Now().Add(x.s.opts.WriteTimeout))
	x.callerCut = werr != nil || x.r.Context().Err() != nil
	if werr != nil && failed == nil {
		// The caller took too long to read a write (or went away while
		// one was under way): its stream is cut.
		code := catalog.CodeContextCanceled
		if errors.Is(werr, os.ErrDeadlineExceeded) {
			code = catalog.CodeClientTimeout
		}
		failed = &engine.Error{Entry: catalog.Must(code), Message: "keel gateway: writing the stream to the caller: " + werr.Error(), Report: rep, Err: werr}
	}
	x.ev.Attempts = rep.Sent()
	h.Set(hdrAttempts, strconv.Itoa(x.ev.Attempts))
	if failed != nil {
		h.Set(hdrCode, failed.Entry.Code)
	}
	x.usage = rep.Usage
	x.ev.Input, x.ev.Output = rep.Usage.InputTokens, rep.Usage.OutputTokens
	return failed
}

// write writes p (nothing: the headers alone) to a stream's caller within
// WriteTimeout, and flushes what was written when flush is set; an error
// means the caller is gone or too slow.
func (x *exchange) write(rc *http.ResponseController, p []byte, flush bool) error {
	// Not every ResponseWriter can set a deadline (a test recorder):
	// those write without one.
	rc.SetWriteDeadline(time.Now().Add(x.s.opts.WriteTimeout))
	if len(p) > 0 {
		if _, err := x.w.Write(p); err != nil {
			return err
		}
	}
	if !flush {
		return nil
	}
	return rc.Flush()
}

// finish reports the request: the access log and Observe.
func (x *exchange) finish() {
	x.ev.Duration = time.Since(x.start)
	o := &x.s.opts
	if o.Logger != nil {
		o.Logger.LogAttrs(x.r.Context(), slog.LevelInfo, "request",
			slog.String("caller", x.ev.Caller), slog.String("op", x.ev.Op), slog.String("model", x.ev.Model),
			slog.Int("status", x.ev.Status), slog.String("code", x.ev.Code), slog.Int("attempts", x.ev.Attempts),
			slog.Int64("duration_ms", x.ev.Duration.Milliseconds()), slog.String("request_id", x.rid),
			slog.Int("input_tokens", x.ev.Input), slog.Int("output_tokens", x.ev.Output), slog.Bool("refused", x.ev.Refused))
	}
	if o.Observe != nil {
		o.Observe(x.ev)
	}
}
