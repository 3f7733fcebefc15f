package engine

import (
	"context"
	"errors"

	"github.com/keel-run/keel/internal/catalog"
)

// ErrStopped is wrapped by the error of a call given up because its
// Call.Stop was closed before its next attempt was sent. Nothing of such a
// call is on the wire: a caller may send it again later as if it had never
// been made (the batch runner leaves its record pending).
var ErrStopped = errors.New("engine: the call was stopped before its next attempt was sent")

// waitContext returns the context the pass's waits (for quota, for a
// retry's backoff) end with: p.ctx, also ended once the call's Stop is
// closed, and a func that releases it once the pass is over. A stream's
// continuation ignores Stop: its reader already holds the reply.
func (p *pass) waitContext() (context.Context, func()) {
	stop := p.call.Stop
	if stop == nil || p.rd.resume {
		return p.ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(p.ctx)
	go func() {
		select {
		case <-stop:
			cancel(ErrStopped)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// stopped reports whether the call's Stop is closed (and applies to this
// pass) while the caller's context has not ended: the caller's own
// cancellation is reported as it always was.
func (p *pass) stopped() bool {
	if p.rd.resume || p.ctx.Err() != nil {
		return false
	}
	select {
	case <-p.call.Stop: // a nil Stop never is
		return true
	default:
		return false
	}
}

// stop ends the call, before its next attempt is sent, because its Stop
// was closed; why says where it was. The last upstream failure, if any,
// stays the call's error, marked as given up.
func (p *pass) stop(why string) verdict {
	if p.last == nil {
		p.last = &Error{Entry: catalog.Must(catalog.CodeContextCanceled), Message: "the call was stopped " + why,
			Report: p.rep, Err: ErrStopped}
		return finish
	}
	p.last.Err = errors.Join(p.last.Err, ErrStopped)
	p.last.GaveUp = "the call was stopped " + why
	return finish
}
