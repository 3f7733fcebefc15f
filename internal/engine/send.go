package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
)

// Size limits: far above any real Bedrock reply, low enough that a faulty
// or hostile endpoint cannot make keel read until the process runs out of
// memory.
const (
	// DefaultMaxResponseBytes bounds a non-streaming reply's body and the
	// text a stream keeps for its resume. Bedrock's largest replies are a
	// few MiB (a 128K-token reply is about 0.5 MiB of text; an image
	// model's base64 images a few MiB).
	DefaultMaxResponseBytes = 64 << 20
	// DefaultMaxEventBytes bounds one event-stream message. Bedrock's
	// events are a few hundred bytes to a few KiB.
	DefaultMaxEventBytes = 1 << 20
)

// ErrAttemptTimeout is the cause of an attempt ended by keel's per-attempt
// timeout (catalog entry AttemptTimeout). It does not match
// context.DeadlineExceeded: the caller's deadline has not passed.
var ErrAttemptTimeout = errors.New("engine: the attempt took longer than its timeout")

// TooLargeError reports a reply or stream event larger than keel's limit
// (catalog entry ResponseTooLarge).
type TooLargeError struct {
	What  string // "reply body", "stream event", "stream text"
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("engine: %s larger than keel's limit of %d bytes (limits: in the config)", e.What, e.Limit)
}

// CatalogEntry lets the classifier map the error to ResponseTooLarge.
func (e *TooLargeError) CatalogEntry() *catalog.Entry {
	return catalog.Must(catalog.CodeResponseTooLarge)
}

// truncatedError reports a reply body that ended before it was complete.
type truncatedError struct {
	read int64
	err  error
}

func (e *truncatedError) Error() string {
	return fmt.Sprintf("engine: reply body cut short after %d bytes: %v", e.read, e.err)
}
func (e *truncatedError) Unwrap() error { return e.err }
func (e *truncatedError) CatalogEntry() *catalog.Entry {
	return catalog.Must(catalog.CodeResponseTruncated)
}

// timeoutError is an attempt ended by its timeout.
type timeoutError struct {
	target  attempt.Target
	timeout time.Duration
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("engine: attempt on %s timed out after %v (keel's per-attempt timeout)", e.target, e.timeout)
}
func (e *timeoutError) Unwrap() error                { return ErrAttemptTimeout }
func (e *timeoutError) CatalogEntry() *catalog.Entry { return catalog.Must(catalog.CodeAttemptTimeout) }

// send sends one non-streaming attempt and reads its reply whole, within
// the attempt's timeout: a body cut short or reset fails the attempt
// (retried like a reset), and a body over the limit fails it too, instead
// of surprising the caller later. ok is true for a 2xx reply read whole;
// the returned response's body is then in memory. A failure's error
// response keeps its (bounded) body, for the SDK to decode.
//
// A successful reply's body is returned as well, for the quota governor to
// read its usage from.
func (e *Engine) send(ctx context.Context, req *attempt.Request, a *Attempt, timeout time.Duration) (*http.Response, []byte, classify.Result, bool, error) {
	actx, cancel := context.WithTimeoutCause(ctx, timeout, ErrAttemptTimeout)
	defer cancel()
	resp, err := e.sender.Send(actx, req)
	var (
		res  classify.Result
		ok   bool
		body []byte
	)
	if err == nil {
		res, ok = e.inspect(resp, nil, a)
		if ok {
			body, err = e.readReply(resp)
			if err != nil {
				ok = false
				resp = nil
			}
		}
	}
	a.Duration = e.clk.Now().Sub(a.Start)
	if err != nil {
		// The first cause stands: keel's timer, if it fired before the
		// caller's context ended (do joins the caller's error then).
		if errors.Is(context.Cause(actx), ErrAttemptTimeout) {
			err = &timeoutError{target: req.Target, timeout: timeout}
		}
		res = classify.FromError(err)
	}
	return resp, body, res, ok, err
}

// replyPrealloc bounds what readReply allocates up front on the word of a
// Content-Length header: a lying header must not cost its size per attempt.
const replyPrealloc = 1 << 20

// readReply reads a 2xx reply's body into memory, at most MaxResponseBytes,
// and puts it back as the response's body.
func (e *Engine) readReply(resp *http.Response) ([]byte, error) {
	limit := e.opts.MaxResponseBytes
	if resp.ContentLength > limit {
		resp.Body.Close()
		return nil, &TooLargeError{What: "reply body", Limit: limit}
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(min(resp.ContentLength, replyPrealloc)) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	resp.Body.Close()
	switch {
	case n > limit:
		return nil, &TooLargeError{What: "reply body", Limit: limit}
	case err == nil && resp.ContentLength > 0 && n < resp.ContentLength:
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
			errors.Is(err, syscall.ECONNRESET) {
			return nil, fmt.Errorf("engine: reading the reply body: %w", err)
		}
		return nil, &truncatedError{read: n, err: err}
	}
	body := buf.Bytes()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return body, nil
}
