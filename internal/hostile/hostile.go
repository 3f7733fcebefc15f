package hostile

import (
	"cmp"
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// Mode is what the upstream does with a request. The zero value is OK.
type Mode string

// The modes. The package documentation says what each imitates.
const (
	// OK answers a normal reply: a Converse JSON body, or a ConverseStream
	// of messageStart, contentBlockDelta events, contentBlockStop,
	// messageStop and metadata.
	OK Mode = ""
	// Truncate sends the 200 headers, with the full Content-Length for
	// Converse, then Options.After bytes of the body, then closes the
	// connection (FIN).
	Truncate Mode = "truncate"
	// Reset is Truncate with a TCP reset (RST) in place of the close.
	Reset Mode = "reset"
	// Hang reads the request and never answers, not even headers, until the
	// request's context ends (the client left or the server closed).
	Hang Mode = "hang"
	// Drip sends the OK reply (Size, Events and EventSize apply) slowly:
	// headers at once, then Options.Chunk bytes after each Options.Interval.
	Drip Mode = "drip"
	// HugeBody is OK with huge defaults: a Converse body of Size bytes
	// (default 1 GiB). On a ConverseStream path it sends the HugeStream.
	HugeBody Mode = "huge-body"
	// HugeStream is OK with huge defaults: a ConverseStream of Events
	// contentBlockDelta events (default 1024) of EventSize bytes each
	// (default 1 MiB). On a Converse path it sends the HugeBody.
	HugeStream Mode = "huge-stream"
	// Redirect answers Options.Status (default 302) with Options.Location.
	Redirect Mode = "redirect"
	// HTMLError answers Options.Status (default 502) with a load balancer's
	// text/html error page.
	HTMLError Mode = "html-error"
)

// Defaults, and what the huge modes send when Options leaves sizes at zero.
const (
	DefaultSize      = 256 // bytes in an OK Converse body
	DefaultEvents    = 3   // contentBlockDelta events in an OK stream
	DefaultEventSize = 64  // bytes in the payload of each of them

	HugeSize      = 1 << 30 // bytes in a huge Converse body: the 1 GiB reply of issue 15
	HugeEvents    = 1024    // events in a huge stream (1 GiB in all)
	HugeEventSize = 1 << 20 // bytes per huge event: the 1 MiB events of issue 15

	// DefaultLocation is where a Redirect points by default: the discard
	// port on the loopback address, where nothing listens, so a client that
	// follows the redirect fails visibly instead of reaching a real server.
	DefaultLocation = "http://127.0.0.1:9/"
)

// Options says what the upstream answers. The zero value answers OK with a
// small reply. Options is a plain value; Handler copies it.
type Options struct {
	// Mode is what the upstream does (zero: OK).
	Mode Mode

	// Status is the status of a Redirect (zero: 302 Found; must be 3xx) or
	// of an HTMLError (zero: 502 Bad Gateway; must be 4xx or 5xx). The other
	// modes answer 200 and must leave it zero.
	Status int
	// Location is the Location header of a Redirect (zero:
	// DefaultLocation).
	Location string

	// After is how many bytes of the body Truncate and Reset send before
	// they cut the connection (zero: half the body). It is capped one byte
	// short of the body, so the body is always cut.
	After int64

	// Size is the exact size in bytes of a Converse JSON body (zero:
	// DefaultSize, or HugeSize for the huge modes). It must be at least
	// MinSize. The reply's text is that many bytes of 'a', less the JSON
	// around it.
	Size int64
	// Events is the number of contentBlockDelta events in a ConverseStream
	// (zero: DefaultEvents, or HugeEvents for the huge modes).
	Events int
	// EventSize is the exact size in bytes of each contentBlockDelta
	// event's JSON payload (zero: DefaultEventSize, or HugeEventSize for the
	// huge modes). It must be at least MinEventSize.
	EventSize int

	// Chunk is how many bytes a Drip sends per Interval (zero: 1).
	Chunk int
	// Interval is how long a Drip waits before each Chunk (zero: 1s). A
	// Drip of n bytes takes ceil(n/Chunk) Intervals after the headers.
	Interval time.Duration
	// Clock makes a Drip's timers (nil: clock.Real, which inside a
	// testing/synctest bubble follows the bubble's fake time).
	Clock clock.Clock
}

// Handler returns a handler that answers every request as o says. Requests
// whose path ends in /converse-stream (ConverseStream) get event streams
// (application/vnd.amazon.eventstream); every other path is answered as
// Converse. The request body is read to its end before anything else, as a
// server does before it answers. The handler is safe for concurrent use.
//
// Handler panics when o is invalid (a Status that does not fit the mode, a
// size below its minimum, a negative field): a test's mistake, caught where
// it is made.
func Handler(o Options) http.Handler {
	o = o.resolve()
	return http.HandlerFunc(o.serve)
}

// resolve validates o and fills in its defaults.
func (o Options) resolve() Options {
	bad := func(format string, args ...any) {
		panic(fmt.Sprintf("hostile: "+format, args...))
	}
	switch o.Mode {
	case OK, Truncate, Reset, Hang, Drip, HugeBody, HugeStream:
		if o.Status != 0 {
			bad("Status %d with mode %q, which always answers 200", o.Status, o.Mode)
		}
	case Redirect:
		o.Status = cmp.Or(o.Status, http.StatusFound)
		if o.Status < 300 || o.Status > 399 {
			bad("Redirect with Status %d; want 3xx", o.Status)
		}
		if o.Location == "" {
			o.Location = DefaultLocation
		}
	case HTMLError:
		o.Status = cmp.Or(o.Status, http.StatusBadGateway)
		if o.Status < 400 || o.Status > 599 {
			bad("HTMLError with Status %d; want 4xx or 5xx", o.Status)
		}
	default:
		bad("unknown mode %q", o.Mode)
	}
	if o.After < 0 || o.Size < 0 || o.Events < 0 || o.EventSize < 0 || o.Chunk < 0 || o.Interval < 0 {
		bad("negative field in %+v", o)
	}
	huge := o.Mode == HugeBody || o.Mode == HugeStream
	if huge {
		o.Size = cmp.Or(o.Size, HugeSize)
		o.Events = cmp.Or(o.Events, HugeEvents)
		o.EventSize = cmp.Or(o.EventSize, HugeEventSize)
	} else {
		o.Size = cmp.Or(o.Size, DefaultSize)
		o.Events = cmp.Or(o.Events, DefaultEvents)
		o.EventSize = cmp.Or(o.EventSize, DefaultEventSize)
	}
	if o.Size < MinSize {
		bad("Size %d is below MinSize (%d)", o.Size, MinSize)
	}
	if o.EventSize < MinEventSize {
		bad("EventSize %d is below MinEventSize (%d)", o.EventSize, MinEventSize)
	}
	o.Chunk = cmp.Or(o.Chunk, 1)
	o.Interval = cmp.Or(o.Interval, time.Second)
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	return o
}

// IsStream reports whether a request path is a ConverseStream call, which
// the upstream answers with an event stream.
func IsStream(path string) bool { return strings.HasSuffix(path, "/converse-stream") }

// serve answers one request; o is resolved.
func (o Options) serve(w http.ResponseWriter, r *http.Request) {
	// Read the whole request first: a server answers a complete request,
	// and only then does net/http watch the connection, so that a client
	// that leaves ends the request's context (and a Hang).
	io.Copy(io.Discard, r.Body)
	ctx := r.Context()
	h := w.Header()
	switch o.Mode {
	case Hang:
		<-ctx.Done()
		return
	case Redirect:
		h.Set("Location", o.Location)
		page(w, o.Status, `<p>The document has moved <a href="`+html.EscapeString(o.Location)+`">here</a>.</p>`)
		return
	case HTMLError:
		// As an AWS Application Load Balancer names itself.
		h.Set("Server", "awselb/2.0")
		page(w, o.Status, "")
		return
	}
	b := o.body(IsStream(r.URL.Path))
	if b.stream {
		h.Set("Content-Type", "application/vnd.amazon.eventstream")
	} else {
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.FormatInt(b.size, 10))
	}
	w.WriteHeader(http.StatusOK)
	switch o.Mode {
	case Truncate, Reset:
		after := min(cmp.Or(o.After, b.size/2), b.size-1)
		if pump(ctx, w, b, after, b.stream) == nil {
			cut(w, o.Mode == Reset)
		}
	case Drip:
		o.drip(ctx, w, b)
	default:
		pump(ctx, w, b, b.size, b.stream)
	}
}

// page sends a small HTML page for status, as nginx-style load balancers and
// proxies write them.
func page(w http.ResponseWriter, status int, extra string) {
	title := fmt.Sprintf("%d %s", status, http.StatusText(status))
	body := "<html>\r\n<head><title>" + title + "</title></head>\r\n<body>\r\n<center><h1>" + title +
		"</h1></center>\r\n" + extra + "</body>\r\n</html>\r\n"
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// pump copies n bytes of b to w, flushing after each piece when flush is set
// (a stream: one frame, or 32 KiB of a larger one). It stops early, with the
// error, when the client is gone.
func pump(ctx context.Context, w http.ResponseWriter, b *body, n int64, flush bool) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, min(n, 32<<10))
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, _ := b.Read(buf[:min(n, int64(len(buf)))]) // b has n more bytes
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		n -= int64(k)
		if flush {
			if err := rc.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// drip sends b Chunk bytes at a time, waiting Interval before each.
func (o Options) drip(ctx context.Context, w http.ResponseWriter, b *body) {
	if http.NewResponseController(w).Flush() != nil { // the headers, at once
		return
	}
	for n := b.size; n > 0; n -= int64(o.Chunk) {
		t := o.Clock.NewTimer(o.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		if pump(ctx, w, b, min(n, int64(o.Chunk)), true) != nil {
			return
		}
	}
}

// cut ends the response without an HTTP ending: what was written is
// flushed, then the connection is closed, with a TCP reset when rst is set.
func cut(w http.ResponseWriter, rst bool) {
	rc := http.NewResponseController(w)
	rc.Flush()
	conn, _, err := rc.Hijack()
	if err != nil {
		// Not HTTP/1 (or already gone): make net/http drop the connection
		// or stream, which is a cut too.
		panic(http.ErrAbortHandler)
	}
	if l, ok := conn.(interface{ SetLinger(sec int) error }); ok && rst {
		l.SetLinger(0) // close sends RST instead of FIN (a *net.TCPConn, or a Pipe connection)
	}
	conn.Close()
}
