package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/stream"
)

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

	// mode says how this call's stream is resumed, if at all (empty), and
	// noResume why not.
	mode      stream.Mode
	noResume  string
	resumes   int
	round     stream.Mode // how the latest round's request continues the reply; "" for the call's own
	prefill   int         // tokens the latest round's request added to carry the reply so far
	segments  []int       // attempt index of each attempt that delivered content
	held      []byte      // frames held back until the attempt's first content
	out       []byte      // bytes ready for the reader
	pending   *broken     // a failure step found, not yet handled
	final     bool        // the stream's final event was delivered
	err       error       // sticky: io.EOF after the end, or the failure
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
	sb.mode, sb.noResume = e.resumeMode(call, format)
	return sb
}

// resumeMode says how streams of this call are resumed after their first
// content: by a prefill, for models known to take one (or named in
// Streaming.Resume); by a continue-turn continuation, for models known to
// refuse one (Claude 4.6 and later, and models that refused a prefill
// earlier); or not at all, and then why.
func (e *Engine) resumeMode(call *Call, format stream.Format) (stream.Mode, string) {
	o := &e.opts.Streaming
	v, set := o.Resume[call.Model]
	switch {
	case set && !v:
		return "", "resume is turned off for " + call.Model
	case !set && o.DisableResume:
		return "", "resume is turned off"
	}
	_, refused := e.noPrefill.Load(call.Model)
	refuses := refused || stream.RefusesPrefill(call.Model)
	var mode stream.Mode
	switch {
	case refuses && !o.DisableContinueTurn:
		mode = stream.ContinueTurn
	case refused:
		return "", call.Model + " refused a prefill earlier, and continue-turn resume is turned off"
	case set || stream.AcceptsPrefill(call.Model): // set: turned on for this model, whatever keel knows of it
		mode = stream.Prefill
	case refuses:
		return "", call.Model + " refuses a prefill, and continue-turn resume is turned off"
	default:
		return "", call.Model + " is not known to accept a prefill"
	}
	if stream.Thinking(format, call.Body) {
		// A prefill is refused with it, and its reasoning cannot be
		// carried into a continuation.
		return "", "extended thinking is on, and its reasoning cannot be continued"
	}
	return mode, ""
}

// attempt sends one attempt of a streaming call and reads it up to its
// first content. ok reports that the reader can have it; otherwise res
// classifies the failure and resp is the error response to hand an SDK,
// if any.
func (sb *streamBody) attempt(ctx context.Context, req *attempt.Request, a *Attempt, ai int) (resp *http.Response, res classify.Result, ok bool, err error) {
	e := sb.e
	actx, cancel := context.WithCancel(ctx)
	wd := startWatchdog(e.clk, e.opts.Streaming.firstEvent(), e.opts.Streaming.idle(), cancel)
	if a.Resume {
		a.ResumeMode = string(sb.round)
	}
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
	a.OverlapDropped = sb.sp.Dropped()
	sb.src = src
	sb.segments = append(sb.segments, ai)
	return resp, res, true, nil
}

// prime reads frames from src until its first content, holding back what
// comes before it (the message start), so that a failure up to there can
// be retried with nothing sent to the reader.
func (sb *streamBody) prime(src *source) (res classify.Result, events int, ok bool, err error) {
	sb.sp.Begin(sb.round, sb.prefill)
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

// next reads one frame from src, timing the wait on its watchdog. A frame
// already read ahead costs no wait, and no reading of the clock.
func (sb *streamBody) next(src *source) (stream.Frame, error) {
	if !sb.fr.Buffered() {
		src.wd.waiting()
	}
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
	// Add the events already read ahead, without waiting for more: a burst
	// reaches the reader in one Read, and a gateway writes it at once. A
	// failure found meanwhile waits for the next Read (see step).
	for len(sb.out) == 0 && n < len(p) && sb.err == nil && sb.pending == nil && !sb.final && sb.fr.Buffered() {
		sb.step()
		c := copy(p[n:], sb.out)
		sb.out = sb.out[c:]
		n += c
	}
	return n, nil
}

// broken is a failure of the stream found by step, handled by the next.
type broken struct {
	res   classify.Result
	cause error
}

// step reads the next frame and decides what the reader gets. A failure
// it finds is kept in pending and handled (resumed, or ended with the
// typed error) by the next step, so that the events before it reach the
// reader first, without waiting on a resume.
func (sb *streamBody) step() {
	if b := sb.pending; b != nil {
		sb.pending = nil
		sb.broke(b.res, b.cause)
		return
	}
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
		sb.pending = &broken{sb.readError(src, err), err}
		return
	case !f.IsEvent():
		sb.pending = &broken{sb.failureFrame(&f), nil}
		return
	}
	v := sb.sp.Feed(&f)
	if res, over := sb.overLimit(); over {
		sb.pending = &broken{res, nil}
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

// abandon releases a stream body that never reached its reader.
func (sb *streamBody) abandon() {
	if sb.src != nil {
		sb.src.close()
		sb.src.tk.Cancel()
	}
	sb.fr.Release()
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
