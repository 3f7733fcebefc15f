package hostile

import (
	"bytes"
	"io"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// The JSON around a Converse reply's text and a delta event's text. The
// text is the only part whose size varies, so every size is exact.
const (
	replyHead = `{"metrics":{"latencyMs":1},"output":{"message":{"content":[{"text":"`
	replyTail = `"}],"role":"assistant"}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":`
	deltaHead = `{"contentBlockIndex":0,"delta":{"text":"`
	deltaTail = `"}}`
)

// MinSize (180) is the smallest Options.Size: a Converse reply with a text
// of a byte or two. The usage counts, about Size/4, have at most two and
// three digits at this size, and their length is taken from the text.
const MinSize = int64(len(replyHead) + 1 + len(replyTail) + len(`99,"totalTokens":100}}`))

// MinEventSize (44) is the smallest Options.EventSize: a contentBlockDelta
// with a one-byte text.
const MinEventSize = len(deltaHead) + 1 + len(deltaTail)

// filler is the text of every reply, a block at a time.
var filler = bytes.Repeat([]byte{'a'}, 32<<10)

// A body is a reply generated as it is read, so a huge one costs no more
// memory than one event: a list of byte slices, each sent some number of
// times. A body is used by one request.
type body struct {
	parts  []part
	off    int   // read offset in parts[0].b
	size   int64 // bytes in all
	stream bool  // an event stream, not a Converse JSON body
}

type part struct {
	b     []byte
	times int64
}

// add appends b, times times.
func (bd *body) add(b []byte, times int64) {
	if len(b) > 0 && times > 0 {
		bd.parts = append(bd.parts, part{b, times})
		bd.size += int64(len(b)) * times
	}
}

// text appends n bytes of filler.
func (bd *body) text(n int64) {
	bd.add(filler, n/int64(len(filler)))
	bd.add(filler[:n%int64(len(filler))], 1)
}

// Read reads at most the rest of one slice, so that a stream, flushed after
// each read, goes out a frame at a time.
func (bd *body) Read(p []byte) (int, error) {
	if len(bd.parts) == 0 {
		return 0, io.EOF
	}
	pt := &bd.parts[0]
	n := copy(p, pt.b[bd.off:])
	bd.off += n
	if bd.off == len(pt.b) {
		bd.off = 0
		if pt.times--; pt.times == 0 {
			bd.parts = bd.parts[1:]
		}
	}
	return n, nil
}

// body returns the reply o describes (o is resolved): a ConverseStream
// event stream when stream is set, else a Converse JSON body.
func (o Options) body(stream bool) *body {
	bd := &body{stream: stream}
	if !stream {
		tokens := max(o.Size/4, 1) // about four bytes a token, as for English text
		tail := replyTail + strconv.FormatInt(tokens, 10) + `,"totalTokens":` + strconv.FormatInt(tokens+1, 10) + `}}`
		bd.add([]byte(replyHead), 1)
		// The text makes up the rest of Size: at least a byte (MinSize).
		bd.text(o.Size - int64(len(replyHead)+len(tail)))
		bd.add([]byte(tail), 1)
		return bd
	}
	tokens := max(int64(o.Events)*int64(o.EventSize-MinEventSize+1)/4, 1)
	var delta bytes.Buffer
	delta.WriteString(deltaHead)
	delta.Write(bytes.Repeat([]byte{'a'}, o.EventSize-len(deltaHead)-len(deltaTail)))
	delta.WriteString(deltaTail)
	bd.add(frame("messageStart", []byte(`{"role":"assistant"}`)), 1)
	bd.add(frame("contentBlockDelta", delta.Bytes()), int64(o.Events))
	bd.add(frame("contentBlockStop", []byte(`{"contentBlockIndex":0}`)), 1)
	bd.add(frame("messageStop", []byte(`{"stopReason":"end_turn"}`)), 1)
	bd.add(frame("metadata", []byte(`{"metrics":{"latencyMs":1},"usage":{"inputTokens":1,"outputTokens":`+
		strconv.FormatInt(tokens, 10)+`,"totalTokens":`+strconv.FormatInt(tokens+1, 10)+`}}`)), 1)
	return bd
}

// frame encodes one event as Bedrock sends it (and as package emulator
// does): the event type, a JSON content type, and the message type "event".
func frame(eventType string, payload []byte) []byte {
	var b bytes.Buffer
	// Encoding into a bytes.Buffer cannot fail, and the headers are short.
	_ = eventstream.NewEncoder().Encode(&b, eventstream.Message{
		Headers: eventstream.Headers{
			{Name: ":event-type", Value: eventstream.StringValue(eventType)},
			{Name: ":content-type", Value: eventstream.StringValue("application/json")},
			{Name: ":message-type", Value: eventstream.StringValue("event")},
		},
		Payload: payload,
	})
	return b.Bytes()
}
