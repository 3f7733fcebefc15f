package cache

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

func TestAnthropicConversionsRoundTrip(t *testing.T) {
	tests := []struct {
		name, reply string
	}{
		{"text", `{"id":"msg_bdrk_01","type":"message","role":"assistant","model":"claude-3-haiku-20240307","content":[{"type":"text","text":"Keels keep ships upright."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":6}}`},
		{"thinking, text and a tool", `{"id":"msg_bdrk_02","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"Let me look.","signature":"sig=="},{"type":"redacted_thinking","data":"abc"},{"type":"text","text":"I'll look."},{"type":"tool_use","id":"toolu_1","name":"lookup","input":{"q":"keel","n":2}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":9}}`},
		{"a tool without input, a stop sequence", `{"id":"msg_bdrk_03","type":"message","role":"assistant","model":"m","content":[{"type":"tool_use","id":"toolu_2","name":"noargs","input":{}},{"type":"text","text":""}],"stop_reason":"stop_sequence","stop_sequence":"END","usage":{"input_tokens":1,"output_tokens":0}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{headerLatency: {"340"}}
			frames, ok := AnthropicStreamFromReply([]byte(tt.reply), h)
			if !ok {
				t.Fatalf("not converted: %s", tt.reply)
			}
			back, bh, ok := AnthropicReplyFromStream(frames)
			if !ok {
				t.Fatalf("its stream did not convert back: %s", tt.reply)
			}
			var want, got any
			json.Unmarshal([]byte(tt.reply), &want)
			json.Unmarshal(back, &got)
			if !reflect.DeepEqual(want, got) {
				t.Errorf("round trip:\n got %s\nwant %s", back, tt.reply)
			}
			var u struct {
				Usage struct {
					In  int `json:"input_tokens"`
					Out int `json:"output_tokens"`
				}
			}
			json.Unmarshal([]byte(tt.reply), &u)
			if bh.Get(headerLatency) != "340" || bh.Get(headerInputTokens) != itoa(u.Usage.In) || bh.Get(headerOutputTokens) != itoa(u.Usage.Out) {
				t.Errorf("headers %v; want the latency 340 and the usage %+v", bh, u.Usage)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// chunks encodes Anthropic stream events as InvokeModelWithResponseStream
// chunk frames.
func chunks(t *testing.T, events ...string) []byte {
	t.Helper()
	var out bytes.Buffer
	enc := eventstream.NewEncoder()
	for _, ev := range events {
		p, _ := json.Marshal(map[string]any{"bytes": []byte(ev), "p": "abc"})
		if err := enc.Encode(&out, eventstream.Message{Headers: eventstream.Headers{
			{Name: ":event-type", Value: eventstream.StringValue("chunk")},
			{Name: ":message-type", Value: eventstream.StringValue("event")},
		}, Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

func TestAnthropicReplyFromStream(t *testing.T) {
	const (
		start    = `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":7,"output_tokens":1}}}`
		block    = `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`
		delta1   = `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}`
		delta2   = `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}`
		stop     = `{"type":"content_block_stop","index":0}`
		msgDelta = `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}`
		msgStop  = `{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":7,"outputTokenCount":2,"invocationLatency":90,"firstByteLatency":30}}`
		ping     = `{"type":"ping"}`
	)
	tests := []struct {
		name   string
		events []string
		want   string // "": not converted
	}{
		{"whole, with a ping", []string{start, ping, block, delta1, delta2, stop, msgDelta, msgStop},
			`{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":7,"output_tokens":2}}`},
		{"no message_stop: cut", []string{start, block, delta1, stop, msgDelta}, ""},
		{"no stop reason", []string{start, block, delta1, stop, msgStop}, ""},
		{"an unknown block", []string{start, `{"type":"content_block_start","index":0,"content_block":{"type":"image"}}`, msgDelta, msgStop}, ""},
		{"an unknown delta", []string{start, block, `{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{}}}`, stop, msgDelta, msgStop}, ""},
		{"a delta of another block type", []string{start, block, `{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}}`, stop, msgDelta, msgStop}, ""},
		{"a delta to no block", []string{start, block, `{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"x"}}`, msgDelta, msgStop}, ""},
		{"an unknown event", []string{start, `{"type":"something_new"}`, msgDelta, msgStop}, ""},
		{"an unknown message field", []string{`{"type":"message_start","message":{"id":"m","role":"assistant","content":[],"usage":{},"container":{}}}`, msgDelta, msgStop}, ""},
		{"tool input that is not JSON", []string{start, `{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"n","input":{}}}`,
			`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"q\":"}}`, stop, msgDelta, msgStop}, ""},
		{"events after the stop", []string{start, block, delta1, stop, msgDelta, msgStop, ping}, ""},
		{"not JSON", []string{"garbage"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, _, ok := AnthropicReplyFromStream(chunks(t, tt.events...))
			if ok != (tt.want != "") {
				t.Fatalf("converted %v (%s); want %v", ok, body, tt.want != "")
			}
			if !ok {
				return
			}
			var want, got any
			json.Unmarshal([]byte(tt.want), &want)
			json.Unmarshal(body, &got)
			if !reflect.DeepEqual(want, got) {
				t.Errorf("got %s\nwant %s", body, tt.want)
			}
		})
	}
	if _, _, ok := AnthropicReplyFromStream([]byte("not frames")); ok {
		t.Error("converted bytes that are not frames")
	}
}

func TestAnthropicStreamFromReplyRefuses(t *testing.T) {
	for _, reply := range []string{
		`{"id":"m","type":"message","role":"assistant","content":[{"type":"image","source":{}}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`,
		`{"id":"m","type":"message","role":"assistant","content":[{"type":"text","text":"x","citations":[]}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`,
		`{"id":"m","type":"message","role":"assistant","content":[],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1},"container":{}}`,
		`{"id":"m","type":"message","role":"assistant","content":[],"stop_reason":"end_turn"}`,          // no usage
		`{"id":"m","type":"message","content":[],"stop_reason":"end_turn","usage":{"output_tokens":1}}`, // no role
		`{"generation":"a Llama reply","stop_reason":"stop"}`,
		`not json`,
	} {
		if _, ok := AnthropicStreamFromReply([]byte(reply), nil); ok {
			t.Errorf("converted %s", reply)
		}
	}
}
