package emulator

import (
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
)

// streamer writes an event stream response (application/vnd.amazon.eventstream)
// frame by frame, flushing after each, and carries out the request's
// mid-stream fault when its turn comes.
//
// The request is settled (Options.Settle) just before the last event or the
// fault goes out, so a client that reacts at once to the end of its stream
// finds its quota already settled. Callers defer settle for the streams that
// end otherwise (the client went away).
type streamer struct {
	x       *exchange
	g       *generation
	total   int  // events in the unbroken stream
	sent    int  // complete events sent
	tokens  int  // tokens sent
	after   int  // the event index the fault fires at; -1 for none
	over    bool // no more events may be sent
	settled bool
}

// beginStream sends the response headers of a stream of total events
// carrying the reply g.
func (x *exchange) beginStream(total int, invoke bool, g *generation) streamer {
	h := x.w.Header()
	h["Content-Type"] = eventStreamContentType
	if invoke {
		h["X-Amzn-Bedrock-Content-Type"] = jsonContentType
		x.setTierHeader()
	}
	x.w.WriteHeader(http.StatusOK)
	x.wroteHeader = true
	x.flush()
	st := streamer{x: x, g: g, total: total, after: -1}
	if m := x.mid; m != nil {
		st.after = max(m.After, 0)
		last := total
		if m.Kind == fault.Truncate || m.Kind == fault.Corrupt {
			last = total - 1 // these need a frame to act on
		}
		st.after = min(st.after, max(last, 0))
	}
	return st
}

// event sends one event that carries the given number of reply tokens. It
// reports false when the stream is over: the fault fired, or the client is
// gone; the caller must then stop sending.
func (st *streamer) event(eventType string, payload []byte, tokens int) bool {
	if st.over {
		return false
	}
	x := st.x
	x.hdrs = append(x.hdrs[:0], eventHeaders(eventType)...)
	frame := x.encodeFrame(payload)
	if st.sent == st.after {
		st.settle()
		st.fire(frame)
		return false
	}
	if st.sent == st.total-1 {
		st.tokens += tokens
		st.settle()
		tokens = 0
	}
	if _, err := x.w.Write(frame); err != nil {
		st.over = true
		x.code = catalog.CodeClientTimeout // the client went away
		return false
	}
	x.flush()
	st.sent++
	st.tokens += tokens
	return true
}

// eventHeaders returns the headers of an event of the given type. The
// emulator's event types are built once: boxing header values costs
// allocations on every frame otherwise.
func eventHeaders(eventType string) eventstream.Headers {
	if h, ok := builtHeaders[eventType]; ok {
		return h
	}
	return newEventHeaders(eventType)
}

func newEventHeaders(eventType string) eventstream.Headers {
	return eventstream.Headers{
		{Name: ":event-type", Value: eventstream.StringValue(eventType)},
		{Name: ":content-type", Value: eventstream.StringValue("application/json")},
		{Name: ":message-type", Value: eventstream.StringValue("event")},
	}
}

// builtHeaders is read-only after package initialisation.
var builtHeaders = func() map[string]eventstream.Headers {
	m := map[string]eventstream.Headers{}
	for _, t := range []string{"messageStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata", "chunk"} {
		m[t] = newEventHeaders(t)
	}
	return m
}()

// end fires a fault that was due after the last event.
func (st *streamer) end() {
	if !st.over && st.sent == st.after {
		st.settle()
		st.fire(nil)
	}
}

// settle settles the request once, with the tokens sent so far.
func (st *streamer) settle() {
	if !st.settled {
		st.settled = true
		st.x.settle(st.g, st.tokens)
	}
}

// fire carries out the mid-stream fault in place of sending frame (nil when
// the events are all sent).
func (st *streamer) fire(frame []byte) {
	st.over = true
	x, m := st.x, st.x.mid
	switch m.Kind {
	case fault.Exception:
		e := lookupError(m.Code, m.Message)
		x.code = e.code
		x.hdrs = append(x.hdrs[:0],
			eventstream.Header{Name: ":exception-type", Value: eventstream.StringValue(e.streamName)},
			eventstream.Header{Name: ":content-type", Value: eventstream.StringValue("application/json")},
			eventstream.Header{Name: ":message-type", Value: eventstream.StringValue("exception")},
		)
		b := append(x.inner[:0], `{"message":`...)
		b = appendJSONString(b, e.message)
		b = append(b, '}')
		x.inner = b
		x.w.Write(x.encodeFrame(b))
		x.flush()
	case fault.ErrorFrame:
		e := lookupError(m.Code, m.Message)
		x.code = e.code
		x.hdrs = append(x.hdrs[:0],
			eventstream.Header{Name: ":error-code", Value: eventstream.StringValue(e.code)},
			eventstream.Header{Name: ":error-message", Value: eventstream.StringValue(e.message)},
			eventstream.Header{Name: ":message-type", Value: eventstream.StringValue("error")},
		)
		x.w.Write(x.encodeFrame(nil))
		x.flush()
	case fault.Truncate:
		x.code = catalog.CodeStreamTruncated
		x.w.Write(frame[:len(frame)/2])
		x.abort(false) // no final chunk: the body ends mid-frame
	case fault.Corrupt:
		x.code = catalog.CodeStreamCorrupt
		frame[len(frame)-1] ^= 0xff // the message CRC no longer matches
		x.w.Write(frame)
		x.flush()
	case fault.Reset:
		x.code = catalog.CodeConnectionReset
		x.abort(true)
	case fault.Stall:
		x.code = catalog.CodeStreamStalled
		x.flush()
		x.hang()
	default:
		x.code = catalog.CodeConnectionReset
		// An unknown kind cannot be carried out; end the stream visibly
		// rather than pretend it completed.
		x.abort(true)
	}
}

// encodeFrame encodes one message with x.hdrs and payload into x.frame.
func (x *exchange) encodeFrame(payload []byte) []byte {
	if x.enc == nil {
		x.enc = eventstream.NewEncoder()
	}
	x.frame.Reset()
	// Encoding into a bytes.Buffer cannot fail, and the headers are ours.
	_ = x.enc.Encode(&x.frame, eventstream.Message{Headers: x.hdrs, Payload: payload})
	return x.frame.Bytes()
}

// breakBody carries out a fault on a non-streaming reply: Truncate, Reset and
// Stall break the JSON body; the stream-only kinds do not apply. It reports
// whether it took over the response.
func (x *exchange) breakBody(body []byte) bool {
	m := x.mid
	if m == nil {
		return false
	}
	switch m.Kind {
	case fault.Truncate, fault.Reset, fault.Stall:
	default:
		return false
	}
	x.w.WriteHeader(http.StatusOK)
	x.wroteHeader = true
	x.w.Write(body[:len(body)/2])
	switch m.Kind {
	case fault.Truncate:
		x.code = catalog.CodeConnectionReset // the body ends short of its Content-Length
		x.abort(false)
	case fault.Reset:
		x.code = catalog.CodeConnectionReset
		x.abort(true)
	case fault.Stall:
		x.code = catalog.CodeStreamStalled
		x.flush()
		x.hang()
	}
	return true
}
