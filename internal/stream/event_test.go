package stream

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// converseFrame is a ConverseStream event frame.
func converseFrame(t testing.TB, eventType, payload string) []byte {
	return encode(t, eventstream.Message{Headers: strHeaders(":event-type", eventType, ":content-type", "application/json", ":message-type", "event"), Payload: []byte(payload)})
}

// chunkFrame is an InvokeModelWithResponseStream chunk carrying inner.
func chunkFrame(t testing.TB, inner string) []byte {
	return encode(t, eventstream.Message{Headers: strHeaders(":event-type", "chunk", ":content-type", "application/json", ":message-type", "event"),
		Payload: []byte(`{"bytes":"` + base64.StdEncoding.EncodeToString([]byte(inner)) + `","p":"abc"}`)})
}

func parse(t testing.TB, format Format, raw []byte) Event {
	t.Helper()
	f, err := NewReader(bytes.NewReader(raw)).Next()
	if err != nil {
		t.Fatal(err)
	}
	var p Parser
	return p.Parse(format, &f)
}

func TestParseConverse(t *testing.T) {
	tests := []struct {
		name      string
		eventType string
		payload   string
		want      Event
		text      string
	}{
		{"message start", "messageStart", `{"role":"assistant","p":"ab"}`, Event{Kind: KindStart, Index: -1}, ""},
		{"text delta", "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":" keel"},"p":"abcd"}`, Event{Kind: KindDelta, Block: BlockText, Index: 0}, " keel"},
		{"escapes", "contentBlockDelta", `{"delta":{"text":"a\"b\\c\n\u00e9\ud83d\ude00\/"},"contentBlockIndex":2}`, Event{Kind: KindDelta, Block: BlockText, Index: 2}, "a\"b\\c\né😀/"},
		{"tool input", "contentBlockDelta", `{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"a\":"}}}`, Event{Kind: KindDelta, Block: BlockTool, Index: 1}, ""},
		{"reasoning", "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"hmm"}}}`, Event{Kind: KindDelta, Block: BlockReasoning, Index: 0}, ""},
		{"citation", "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"citation":{"title":"x"}}}`, Event{Kind: KindDelta, Block: BlockOther, Index: 0}, ""},
		{"tool start", "contentBlockStart", `{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"t1","name":"get"}}}`, Event{Kind: KindBlockStart, Block: BlockTool, Index: 1}, ""},
		{"block stop", "contentBlockStop", `{"contentBlockIndex":3,"p":"a"}`, Event{Kind: KindBlockStop, Index: 3}, ""},
		{"message stop", "messageStop", `{"stopReason":"end_turn"}`, Event{Kind: KindStop, Index: -1}, ""},
		{"metadata", "metadata", `{"usage":{"inputTokens":12,"outputTokens":34,"totalTokens":46,"cacheReadInputTokens":5,"cacheWriteInputTokens":6},"metrics":{"latencyMs":9}}`,
			Event{Kind: KindMetadata, Index: -1, Final: true, HasInput: true, HasOutput: true, Usage: Usage{12, 34, 5, 6}}, ""},
		{"unknown event", "somethingNew", `{"x":1}`, Event{Kind: KindOther, Index: -1}, ""},
		{"broken JSON", "contentBlockDelta", `{"delta":{"text":"a`, Event{Kind: KindDelta, Index: -1, Unparsed: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parse(t, Converse, converseFrame(t, tt.eventType, tt.payload))
			if string(got.Text) != tt.text {
				t.Errorf("text %q, want %q", got.Text, tt.text)
			}
			got.Text = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseInvokeChunks(t *testing.T) {
	tests := []struct {
		name  string
		inner string
		want  Event
		text  string
	}{
		{"anthropic message start", `{"type":"message_start","message":{"id":"m","usage":{"input_tokens":21,"output_tokens":1}}}`,
			Event{Kind: KindStart, Index: -1, HasInput: true, HasOutput: true, Usage: Usage{InputTokens: 21, OutputTokens: 1}, Anthropic: true}, ""},
		{"anthropic text start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`, Event{Kind: KindBlockStart, Block: BlockText, Index: 0, Anthropic: true}, ""},
		{"anthropic tool start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"n","input":{}}}`, Event{Kind: KindBlockStart, Block: BlockTool, Index: 1, Anthropic: true}, ""},
		{"anthropic thinking start", `{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`, Event{Kind: KindBlockStart, Block: BlockReasoning, Index: 0, Anthropic: true}, ""},
		{"anthropic text delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" hull"}}`, Event{Kind: KindDelta, Block: BlockText, Index: 0, Anthropic: true}, " hull"},
		{"delta keys in any order", `{"delta":{"text":"x","type":"text_delta"},"index":4,"type":"content_block_delta"}`, Event{Kind: KindDelta, Block: BlockText, Index: 4, Anthropic: true}, "x"},
		{"anthropic tool delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a"}}`, Event{Kind: KindDelta, Block: BlockTool, Index: 1, Anthropic: true}, ""},
		{"anthropic thinking delta", `{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"so"}}`, Event{Kind: KindDelta, Block: BlockReasoning, Index: 0, Anthropic: true}, ""},
		{"anthropic block stop", `{"type":"content_block_stop","index":0}`, Event{Kind: KindBlockStop, Index: 0, Anthropic: true}, ""},
		{"anthropic message delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":40}}`,
			Event{Kind: KindStop, Index: -1, HasOutput: true, Usage: Usage{OutputTokens: 40}, Anthropic: true}, ""},
		{"anthropic message stop", `{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":21,"outputTokenCount":40,"invocationLatency":3,"firstByteLatency":1}}`,
			Event{Kind: KindMetadata, Index: -1, Final: true, HasInput: true, HasOutput: true, Usage: Usage{InputTokens: 21, OutputTokens: 40}, Anthropic: true}, ""},
		{"anthropic ping", `{"type":"ping"}`, Event{Kind: KindOther, Index: -1, Anthropic: true}, ""},
		{"nova start", `{"messageStart":{"role":"assistant"}}`, Event{Kind: KindStart, Index: -1}, ""},
		{"nova text", `{"contentBlockDelta":{"delta":{"text":"hi"},"contentBlockIndex":0}}`, Event{Kind: KindDelta, Block: BlockText, Index: 0}, "hi"},
		{"nova metadata", `{"metadata":{"usage":{"inputTokens":3,"outputTokens":4}},"amazon-bedrock-invocationMetrics":{"inputTokenCount":3,"outputTokenCount":4}}`,
			Event{Kind: KindMetadata, Index: -1, Final: true, HasInput: true, HasOutput: true, Usage: Usage{InputTokens: 3, OutputTokens: 4}}, ""},
		{"llama token", `{"generation":" The","prompt_token_count":9,"generation_token_count":1,"stop_reason":null}`, Event{Kind: KindDelta, Block: BlockText, Index: 0}, " The"},
		{"llama last", `{"generation":".","prompt_token_count":null,"generation_token_count":5,"stop_reason":"stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":9,"outputTokenCount":5}}`,
			Event{Kind: KindDelta, Block: BlockText, Index: 0, Final: true, HasInput: true, HasOutput: true, Usage: Usage{InputTokens: 9, OutputTokens: 5}}, "."},
		{"titan token", `{"outputText":"Hi","index":0,"totalOutputTextTokenCount":1,"completionReason":null,"inputTextTokenCount":4}`, Event{Kind: KindDelta, Block: BlockText, Index: 0}, "Hi"},
		{"not JSON", `not json`, Event{Index: -1, Unparsed: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parse(t, Invoke, chunkFrame(t, tt.inner))
			if string(got.Text) != tt.text {
				t.Errorf("text %q, want %q", got.Text, tt.text)
			}
			got.Text = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseChunkEdgeCases(t *testing.T) {
	tests := []struct {
		name    string
		event   string
		payload string
		want    Event
	}{
		{"base64 with escaped slashes", "chunk", `{"bytes":"` + escapeSlashes(base64.StdEncoding.EncodeToString([]byte(`{"type":"content_block_stop","index":0,"x":"???>>>"}`))) + `"}`,
			Event{Kind: KindBlockStop, Index: 0, Anthropic: true}},
		{"not base64", "chunk", `{"bytes":"***"}`, Event{Index: -1, Unparsed: true}},
		{"no bytes", "chunk", `{"other":1}`, Event{Index: -1, Unparsed: true}},
		{"an event type InvokeModel does not define", "surprise", `{}`, Event{Index: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := encode(t, eventstream.Message{Headers: strHeaders(":event-type", tt.event, ":message-type", "event"), Payload: []byte(tt.payload)})
			if got := parse(t, Invoke, raw); got.Kind != tt.want.Kind || got.Index != tt.want.Index || got.Unparsed != tt.want.Unparsed || got.Anthropic != tt.want.Anthropic {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func escapeSlashes(s string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte("/"), []byte(`\/`)))
}

// FuzzParse feeds arbitrary payloads to both parsers: they must not panic,
// and text must only come with a text delta.
func FuzzParse(f *testing.F) {
	f.Add("contentBlockDelta", []byte(`{"contentBlockIndex":0,"delta":{"text":"a"}}`))
	f.Add("chunk", []byte(`{"bytes":"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0="}`))
	f.Add("metadata", []byte(`{"usage":{"inputTokens":1e3}}`))
	f.Fuzz(func(t *testing.T, eventType string, payload []byte) {
		fr := Frame{EventType: []byte(eventType), Payload: payload, MessageType: []byte("event")}
		var p Parser
		for _, format := range []Format{Converse, Invoke} {
			ev := p.Parse(format, &fr)
			if len(ev.Text) > 0 && (ev.Kind != KindDelta || ev.Block != BlockText) {
				t.Fatalf("text %q on a %v/%v event", ev.Text, ev.Kind, ev.Block)
			}
		}
	})
}

// BenchmarkParse reads the events a stream is mostly made of: text deltas.
// No allocation per event.
func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct {
		name   string
		format Format
		raw    []byte
	}{
		{"converse delta", Converse, converseFrame(b, "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":" the keel"},"p":"abcdefghijklmnop"}`)},
		{"invoke anthropic delta", Invoke, chunkFrame(b, `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the keel"}}`)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f, err := NewReader(bytes.NewReader(bc.raw)).Next()
			if err != nil {
				b.Fatal(err)
			}
			var p Parser
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if ev := p.Parse(bc.format, &f); ev.Kind != KindDelta {
					b.Fatal(ev)
				}
			}
		})
	}
}
