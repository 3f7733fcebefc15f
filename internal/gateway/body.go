package gateway

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/keel-run/keel/internal/catalog"
)

// bodyStep is how much more of a body of unknown length (chunked) is held
// and read into at a time, doubling from there: small bodies hold little,
// and a large one grows in a few steps.
const bodyStep = 64 << 10

// byteBudget counts the bytes of request bodies being read, up to max. It
// is safe for concurrent use.
type byteBudget struct {
	mu   sync.Mutex
	max  int64
	used int64
}

// tryTake takes n bytes when they fit, and reports whether they did.
func (b *byteBudget) tryTake(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *byteBudget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

func (b *byteBudget) held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// readBody reads the request body whole, bounded by BodyLimit, holding its
// bytes (its Content-Length, or what it has read so far) of the server's
// BodyBytesInFlight until releaseBody: a request that does not fit is
// refused with 503 before more is read, so that strangers cannot make the
// gateway hold many bodies at once.
func (x *exchange) readBody() ([]byte, *Refusal) {
	limit := x.s.opts.BodyLimit
	tooLong := validation(fmt.Sprintf("Input is too long. keel gateway: the request body is over the %d-byte limit", limit))
	if x.r.ContentLength > limit {
		return nil, tooLong
	}
	size := x.r.ContentLength + 1 // the byte past it reads io.EOF at once
	if x.r.ContentLength < 0 {
		size = min(bodyStep, limit+1)
	}
	if !x.holdBody(size) {
		return nil, x.s.bodiesBusy()
	}
	rc := http.NewResponseController(x.w)
	rc.SetReadDeadline(time.Now().Add(bodyReadTimeout)) // not every ResponseWriter has one: then none
	defer rc.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return nil, tooLong
			}
			grow := min(int64(cap(buf)), limit+1-int64(cap(buf)))
			if !x.holdBody(grow) {
				return nil, x.s.bodiesBusy()
			}
			buf = append(buf, make([]byte, grow)...)[:len(buf)]
		}
		n, err := x.r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, validation("keel gateway: reading the request body: " + err.Error())
		}
	}
	if int64(len(buf)) > limit {
		return nil, tooLong
	}
	return buf, nil
}

// holdBody takes n more bytes of the server's bodies in flight for this
// request, and reports whether they fit.
func (x *exchange) holdBody(n int64) bool {
	if !x.s.bodies.tryTake(n) {
		return false
	}
	x.bodyHeld += n
	return true
}

// releaseBody gives back the bytes readBody held. Calls after the first do
// nothing.
func (x *exchange) releaseBody() {
	x.s.bodies.give(x.bodyHeld)
	x.bodyHeld = 0
}

func (s *Server) bodiesBusy() *Refusal {
	return &Refusal{Code: catalog.CodeServiceUnavailable, Status: http.StatusServiceUnavailable, Message: fmt.Sprintf(
		"keel gateway: too many request bodies are being read at once (up to %d bytes); try again", s.bodies.max)}
}
