package engine

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/retry"
	"github.com/keel-run/keel/internal/stream"
)

// Stream defaults. docs/streaming.md explains the choice.
const (
	// DefaultFirstEventTimeout bounds the wait from sending a streaming
	// attempt to its first event, response headers included. Bedrock
	// sends the first event once the prompt is processed: seconds usually,
	// tens of seconds for a prompt of 200k tokens on a loaded model. A
	// stall found too early costs a whole prompt again, so the limit is
	// generous.
	DefaultFirstEventTimeout = 2 * time.Minute
	// DefaultIdleTimeout bounds the wait for each later event. Bedrock
	// streams extended thinking as reasoning deltas, so a healthy stream
	// is rarely silent for long; 60 s is also the read timeout every boto3
	// stream lives under by default.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxResumes bounds the continuations of one call.
	DefaultMaxResumes = 2
	// MaxMaxResumes is the largest MaxResumes accepted.
	MaxMaxResumes = 10
)

// StreamOptions configure streaming calls. The zero value means all
// defaults; each field says what its zero value does.
type StreamOptions struct {
	// FirstEventTimeout bounds the wait from sending an attempt to its first
	// event (headers included). Zero: DefaultFirstEventTimeout.
	FirstEventTimeout time.Duration
	// IdleTimeout bounds the wait for each later event. It counts only while
	// keel waits on Bedrock, never while the reader is busy. Zero:
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// DisableResume turns resume by continuation off: a stream that breaks
	// after its first content ends with the typed error.
	DisableResume bool
	// MaxResumes bounds the continuations of one call. Zero:
	// DefaultMaxResumes.
	MaxResumes int
	// Resume overrides, per model id as callers name it, whether its
	// streams are resumed, over DisableResume: true even for a model keel
	// does not know to accept a prefill, false never. Models not listed are
	// resumed when keel knows they take a prefill (Claude up to 4.5, Nova).
	Resume map[string]bool
}

func (o *StreamOptions) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"FirstEventTimeout", o.FirstEventTimeout}, {"IdleTimeout", o.IdleTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("engine: Streaming.%s must not be negative, got %v", d.name, d.v)
		}
	}
	if o.MaxResumes < 0 || o.MaxResumes > MaxMaxResumes {
		return fmt.Errorf("engine: Streaming.MaxResumes must be between 1 and %d (0 = default %d), got %d", MaxMaxResumes, DefaultMaxResumes, o.MaxResumes)
	}
	return nil
}

func (o *StreamOptions) firstEvent() time.Duration {
	return orDefault(o.FirstEventTimeout, DefaultFirstEventTimeout)
}
func (o *StreamOptions) idle() time.Duration { return orDefault(o.IdleTimeout, DefaultIdleTimeout) }
func (o *StreamOptions) maxResumes() int {
	if o.MaxResumes <= 0 {
		return DefaultMaxResumes
	}
	return o.MaxResumes
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

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

// errClosed is what Read returns after Close.
var errClosed = errors.New("keel: read on a closed stream")

// doStream runs a streaming call: attempts until one delivers its first
// content, then hands the reader a body that keeps going.
func (e *Engine) doStream(ctx context.Context, call *Call, rep *Report, start time.Time) (*http.Response, *Report, error) {
	sb := newStreamBody(e, ctx, call, rep, start)
	resp, err := e.do(sb.ctx, call, rep, sb, round{body: call.Body})
	rep.Total = e.clk.Now().Sub(start)
	if err != nil {
		sb.abandon()
		e.outcome(ctx, call, rep, err)
		return resp, rep, err
	}
	resp.Body = sb
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	return resp, rep, nil
}

// streamBody is the body of a streaming call. It reads frames from the
// current attempt's body, passes them to the reader through the splicer,
// and when the stream breaks, resumes it with a continuation, or ends with
// the typed error. Read and Close may be called from different goroutines.
type streamBody struct {
	e      *Engine
	ctx    context.Context // the call's, cancelled by Close
	cancel context.CancelFunc
	call   *Call
	rep    *Report
	start  time.Time
	format stream.Format
	sp     *stream.Splicer
	fr     stream.Reader
	frame  []byte // the last exception or error frame, kept

	// resume says whether this call may be resumed at all, and why not.
	resume    bool
	noResume  string
	resumes   int
	prefill   int    // tokens of prefill the latest round's request carried
	segments  []int  // attempt index of each attempt that delivered content
	held      []byte // frames held back until the attempt's first content
	out       []byte // bytes ready for the reader
	final     bool   // the stream's final event was delivered
	err       error  // sticky: io.EOF after the end, or the failure
	closeOnce sync.Once
	src       *source // the attempt being read

	// readMu is held by Read. Close cancels the context first, which ends
	// whatever Read is waiting on, then takes it: src and the Report are
	// only touched under it (or in Do, before the body is handed out).
	readMu  sync.Mutex
	ended   bool
	closing atomic.Bool // Close has begun
}

// source is one attempt's upstream body.
type source struct {
	body   io.ReadCloser
	cancel context.CancelFunc
	wd     *watchdog
	ai     int // the attempt's index in Report.Attempts
	closed bool
	// tk is the attempt's share of its target's quota, settled with the
	// attempt's usage when the stream ends or breaks.
	tk admission.Ticket
}

func (src *source) close() {
	if src.closed {
		return
	}
	src.closed = true
	src.wd.stop()
	src.cancel()
	src.body.Close()
}

func newStreamBody(e *Engine, ctx context.Context, call *Call, rep *Report, start time.Time) *streamBody {
	sctx, cancel := context.WithCancel(ctx)
	format := stream.Converse
	if call.Op == attempt.InvokeWithResponseStream {
		format = stream.Invoke
	}
	sb := &streamBody{e: e, ctx: sctx, cancel: cancel, call: call, rep: rep, start: start,
		format: format, sp: stream.NewSplicer(format)}
	sb.fr.Max = int(min(e.opts.MaxEventBytes, stream.MaxFrame))
	sb.resume, sb.noResume = e.mayResume(call, format)
	return sb
}

// mayResume says whether streams of this call may be resumed after their
// first content, and if not, why.
func (e *Engine) mayResume(call *Call, format stream.Format) (bool, string) {
	o := &e.opts.Streaming
	switch v, set := o.Resume[call.Model]; {
	case set && !v:
		return false, "resume is turned off for " + call.Model
	case set: // turned on for this model, whatever keel knows of it
	case o.DisableResume:
		return false, "resume is turned off"
	case !stream.AcceptsPrefill(call.Model):
		return false, call.Model + " is not known to accept a prefill"
	}
	if _, refused := e.noPrefill.Load(call.Model); refused {
		return false, call.Model + " refused a prefill earlier"
	}
	if stream.Thinking(format, call.Body) {
		return false, "extended thinking is on, and a prefill is refused with it"
	}
	return true, ""
}

// attempt sends one attempt of a streaming call and reads it up to its
// first content. ok reports that the reader can have it; otherwise res
// classifies the failure and resp is the error response to hand an SDK,
// if any.
func (sb *streamBody) attempt(ctx context.Context, req *attempt.Request, a *Attempt, ai int) (resp *http.Response, res classify.Result, ok bool, err error) {
	e := sb.e
	actx, cancel := context.WithCancel(ctx)
	wd := startWatchdog(e.clk, e.opts.Streaming.firstEvent(), e.opts.Streaming.idle(), cancel)
	resp, err = e.sender.Send(actx, req)
	a.Duration = e.clk.Now().Sub(a.Start)
	res, ok = e.inspect(resp, err, a)
	if !ok {
		if wd.stop() {
			res, resp = stalled(wd.first), nil
		}
		cancel()
		return resp, res, false, err
	}
	src := &source{body: resp.Body, cancel: cancel, wd: wd, ai: ai}
	events := 0
	res, events, ok, err = sb.prime(src)
	a.Duration = e.clk.Now().Sub(a.Start)
	if !ok {
		seg := sb.sp.Abort()
		a.Usage = usageOf(seg)
		src.close()
		if res.Entry != nil && len(sb.frame) > 0 && res.Status >= 400 {
			// Every byte of this attempt was thrown away, so its exception
			// can be told the way Bedrock tells one before a stream starts:
			// as an error response of the exception's true status.
			return frameErrorResponse(resp, res, sb.frame), res, false, err
		}
		return nil, res, false, err
	}
	a.Events = events
	sb.src = src
	sb.segments = append(sb.segments, ai)
	return resp, res, true, nil
}

// prime reads frames from src until its first content, holding back what
// comes before it (the message start), so that a failure up to there can
// be retried with nothing sent to the reader.
func (sb *streamBody) prime(src *source) (res classify.Result, events int, ok bool, err error) {
	sb.sp.Begin(sb.prefill)
	sb.fr.Reset(src.body)
	sb.held = sb.held[:0]
	sb.frame = sb.frame[:0]
	for {
		f, err := sb.next(src)
		if err != nil {
			return sb.readError(src, err), 0, false, err
		}
		if !f.IsEvent() {
			return sb.failureFrame(&f), 0, false, nil
		}
		v := sb.sp.Feed(&f)
		if res, over := sb.overLimit(); over {
			return res, 0, false, nil
		}
		if v.Out != nil {
			sb.held = append(sb.held, v.Out...)
			events++
		}
		if v.Content {
			sb.out = sb.held
			sb.final = v.Final
			return classify.Result{}, events, true, nil
		}
	}
}

// next reads one frame from src, timing the wait on its watchdog.
func (sb *streamBody) next(src *source) (stream.Frame, error) {
	src.wd.waiting()
	f, err := sb.fr.Next()
	if err == nil {
		src.wd.event()
	}
	return f, err
}

// overLimit reports that the text kept for the stream's resume has grown
// past MaxResponseBytes: no Bedrock reply is that long.
func (sb *streamBody) overLimit() (classify.Result, bool) {
	limit := sb.e.opts.MaxResponseBytes
	if int64(len(sb.sp.Text())) <= limit {
		return classify.Result{}, false
	}
	return classify.Result{Entry: catalog.Must(catalog.CodeResponseTooLarge),
		Message: (&TooLargeError{What: "stream text", Limit: limit}).Error()}, true
}

// readError classifies a failed frame read.
func (sb *streamBody) readError(src *source, err error) classify.Result {
	if src.wd.stop() {
		return stalled(src.wd.limit())
	}
	var tl *stream.FrameTooLargeError
	if errors.As(err, &tl) {
		return classify.Result{Entry: catalog.Must(catalog.CodeResponseTooLarge),
			Message: (&TooLargeError{What: "stream event", Limit: int64(tl.Max)}).Error()}
	}
	if err == io.EOF {
		e := catalog.Must(catalog.CodeStreamTruncated)
		return classify.Result{Entry: e, Message: "the stream ended cleanly between frames but before its final event"}
	}
	return classify.FromError(err)
}

// failureFrame classifies an exception or error frame and keeps it.
func (sb *streamBody) failureFrame(f *stream.Frame) classify.Result {
	sb.frame = append(sb.frame[:0], f.Raw...)
	res := classify.FromFrameValues(string(f.MessageType), string(f.ExceptionType), string(f.ErrorCode), string(f.ErrorMessage), f.Payload)
	if res.Entry == nil {
		// Neither an event, an exception nor an error: the SDK fails on it
		// too ("missing :message-type header").
		res = classify.Result{Entry: catalog.Must(catalog.CodeStreamCorrupt), Message: fmt.Sprintf("a frame with :message-type %q", f.MessageType)}
		sb.frame = sb.frame[:0]
	}
	return res
}

func stalled(limit time.Duration) classify.Result {
	return classify.Result{Entry: catalog.Must(catalog.CodeStreamStalled), Message: fmt.Sprintf("no event within %s", limit)}
}

// Read gives the reader the stream's bytes: whole frames, as the SDK's
// decoder expects them. After the final event it returns io.EOF; after a
// failure keel could not recover, the *Error describing it.
func (sb *streamBody) Read(p []byte) (int, error) {
	sb.readMu.Lock()
	defer sb.readMu.Unlock()
	for len(sb.out) == 0 {
		if sb.err != nil {
			return 0, sb.err
		}
		sb.step()
	}
	n := copy(p, sb.out)
	sb.out = sb.out[n:]
	return n, nil
}

// step reads the next frame and decides what the reader gets.
func (sb *streamBody) step() {
	src := sb.src
	f, err := sb.next(src)
	switch {
	case err != nil && sb.final:
		// The final event was delivered: the reply is complete, whatever
		// happens to the connection afterwards. (An exception frame after
		// it is still an error: Bedrock said so.)
		sb.finish(nil)
		return
	case err != nil:
		sb.broke(sb.readError(src, err), err)
		return
	case !f.IsEvent():
		sb.broke(sb.failureFrame(&f), nil)
		return
	}
	v := sb.sp.Feed(&f)
	if res, over := sb.overLimit(); over {
		sb.broke(res, nil)
		return
	}
	if v.Out != nil {
		sb.out = v.Out
		sb.rep.Attempts[src.ai].Events++
	}
	if v.Final {
		sb.final = true
	}
}

// broke handles a failure after the stream's first content: resume when
// the policies allow, else end with the typed error.
func (sb *streamBody) broke(res classify.Result, cause error) {
	src := sb.src
	src.close()
	a := &sb.rep.Attempts[src.ai]
	a.Code = res.Entry.Code
	sb.e.logBreak(sb.ctx, sb.call, a, res)
	cont := sb.sp.Break()
	if src.tk.Governed() {
		// Settle now, before a continuation is admitted: Bedrock charged
		// what the attempt produced (its input, if its stream told it;
		// else the governor charges its estimate).
		if segs := sb.sp.Segments(); len(segs) > 0 {
			src.tk.Settle(admissionUsage(usageOf(segs[len(segs)-1])))
		}
	}
	frame := append([]byte(nil), sb.frame...)
	gaveUp := ""
	switch {
	case sb.ctx.Err() != nil:
	case !res.Entry.Retryable():
	case !sb.resume:
		gaveUp = "not resumed: " + sb.noResume
	case !cont.OK:
		gaveUp = "not resumed: " + cont.Why
	case sb.resumes >= sb.e.opts.Streaming.maxResumes():
		gaveUp = fmt.Sprintf("not resumed: the limit of %d resumes was reached", sb.e.opts.Streaming.maxResumes())
	default:
		why := sb.resumeWith(res, cont)
		if why == "" {
			return
		}
		gaveUp = "not resumed: " + why
		if err := sb.ctx.Err(); err != nil {
			// The caller ended the call while keel waited to resume: the
			// reader's error says so as well as what broke the stream.
			cause = errors.Join(cause, err)
		}
	}
	sb.fail(res, cause, gaveUp, frame)
}

// resumeWith sends the continuation of the broken reply, under the same
// policies as any retry: the retry policy's backoff, the budget, the
// breakers and the route. It returns "" once the continuation's first
// content is there, or why it could not be had.
func (sb *streamBody) resumeWith(res classify.Result, cont stream.Continuation) string {
	e := sb.e
	d := e.opts.Retry.Decide(sb.resumes+1, res.Entry, res.RetryAfter, e.opts.Rand)
	if !d.Retry {
		return "the retry policy allows no further attempt (" + d.Reason + ")"
	}
	// Always from the caller's body: the prefill is the whole text so far,
	// not what the last continuation added.
	body, err := stream.Continue(sb.format, sb.call.Body, cont)
	if errors.Is(err, stream.ErrLimitReached) {
		return "the reply had produced its whole output limit"
	} else if err != nil {
		return err.Error()
	}
	if e.spend(sb.ctx, sb.call, sb.rep.Target, sb.resumes+1, nil) != nil {
		return "the retry budget is exhausted"
	}
	if err := retry.Wait(sb.ctx, e.clk, d.Delay, nil); err != nil {
		if errors.Is(err, retry.ErrDeadline) {
			return "the next wait would cross the deadline"
		}
		return "the context ended while waiting to resume"
	}
	sb.resumes++
	sb.rep.Resumes++
	sb.prefill = cont.Tokens
	_, err = e.do(sb.ctx, sb.call, sb.rep, sb, round{body: body, resume: true, delay: d.Delay})
	if err != nil {
		var ke *Error
		if errors.As(err, &ke) && ke.Entry != nil {
			if ke.Entry.Code == catalog.CodeValidation && strings.Contains(strings.ToLower(ke.Message), "prefill") {
				e.noPrefill.Store(sb.call.Model, true)
			}
			return "the continuation failed with " + ke.Entry.Code
		}
		return "the continuation failed: " + err.Error()
	}
	return ""
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

// abandon releases a stream body that never reached its reader.
func (sb *streamBody) abandon() {
	if sb.src != nil {
		sb.src.close()
		sb.src.tk.Cancel()
	}
	sb.cancel()
}

// Close stops the stream: the call's context is cancelled (which ends any
// read, backoff or continuation in progress), and the upstream body is
// closed. A reader that closes before the end is not a failure.
func (sb *streamBody) Close() error {
	sb.closeOnce.Do(func() {
		sb.closing.Store(true)
		sb.cancel()
		sb.readMu.Lock()
		defer sb.readMu.Unlock()
		sb.finish(nil)
		sb.err = errClosed
		sb.out = nil
	})
	return nil
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

// logBreak writes one line when a stream breaks after its first content.
func (e *Engine) logBreak(ctx context.Context, call *Call, a *Attempt, res classify.Result) {
	if e.log == nil || !e.log.Enabled(ctx, slog.LevelWarn) {
		return
	}
	e.log.LogAttrs(ctx, slog.LevelWarn, "stream broke", slog.String("op", string(call.Op)), slog.String("model", a.Target.Model),
		slog.String("region", a.Target.Region), slog.String("requestId", a.RequestID), slog.Int("events", a.Events),
		slog.String("code", res.Entry.Code), slog.String("category", string(res.Entry.Category)), slog.String("retry", string(res.Entry.Retry)))
}

// logStream writes one line when a stream ends.
func (e *Engine) logStream(ctx context.Context, call *Call, rep *Report, err error) {
	if e.log == nil {
		return
	}
	level := slog.LevelInfo
	outcome := "ok"
	var ke *Error
	if errors.As(err, &ke) && ke.Entry != nil {
		level, outcome = slog.LevelError, ke.Entry.Code
	}
	if !e.log.Enabled(ctx, level) {
		return
	}
	events := 0
	for _, a := range rep.Attempts {
		events += a.Events
	}
	e.log.LogAttrs(ctx, level, "stream", slog.String("op", string(call.Op)), slog.String("model", call.Model), slog.String("outcome", outcome),
		slog.Int("events", events), slog.Int("resumes", rep.Resumes), slog.Int("attempts", rep.Sent()),
		slog.Int("inputTokens", rep.Usage.InputTokens), slog.Int("outputTokens", rep.Usage.OutputTokens),
		slog.Bool("usageEstimated", rep.Usage.Estimated), slog.Int64("totalMs", rep.Total.Milliseconds()))
}
