package cache

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func TestConverseConversionsRoundTrip(t *testing.T) {
	for _, reply := range []string{
		`{"output":{"message":{"role":"assistant","content":[{"text":"Keels keep ships upright."}]}},"stopReason":"end_turn","usage":{"inputTokens":5,"outputTokens":6,"totalTokens":11},"metrics":{"latencyMs":120}}`,
		`{"output":{"message":{"role":"assistant","content":[{"reasoningContent":{"reasoningText":{"text":"think","signature":"sig=="}}},{"text":"I'll look."},{"toolUse":{"toolUseId":"t1","name":"lookup","input":{"q":"keel","n":2}}}]}},"stopReason":"tool_use","usage":{"inputTokens":5,"outputTokens":9,"totalTokens":14},"metrics":{"latencyMs":80},"additionalModelResponseFields":{"x":1}}`,
		`{"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"t2","name":"noargs","input":{}}}]}},"stopReason":"tool_use","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2},"metrics":{"latencyMs":1}}`,
	} {
		frames, ok := ConverseStreamFromReply([]byte(reply))
		if !ok {
			t.Fatalf("not converted: %s", reply)
		}
		back, ok := ConverseReplyFromStream(frames)
		if !ok {
			t.Fatalf("its stream did not convert back: %s", reply)
		}
		var want, got any
		json.Unmarshal([]byte(reply), &want)
		json.Unmarshal(back, &got)
		if !reflect.DeepEqual(want, got) {
			t.Errorf("round trip:\n got %s\nwant %s", back, reply)
		}
	}
}

func TestConverseConversionsRefuse(t *testing.T) {
	for _, reply := range []string{
		`{"output":{"message":{"role":"assistant","content":[{"text":"x","citationsContent":{}}]}},"stopReason":"end_turn"}`,
		`{"output":{"message":{"role":"assistant","content":[{"image":{}}]}},"stopReason":"end_turn"}`,
		`{"output":{"message":{"role":"assistant","content":[]}},"stopReason":"end_turn","somethingNew":1}`,
		`not json`,
	} {
		if _, ok := ConverseStreamFromReply([]byte(reply)); ok {
			t.Errorf("converted %s", reply)
		}
	}
	frames, _ := ConverseStreamFromReply([]byte(`{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn","usage":{},"metrics":{}}`))
	// A stream cut before its metadata is not a whole reply.
	cut := frames[:bytes.LastIndex(frames, []byte("metadata"))-40]
	for name, f := range map[string][]byte{"cut": cut, "garbage": []byte("garbage")} {
		if _, ok := ConverseReplyFromStream(f); ok {
			t.Errorf("%s stream converted", name)
		}
	}
}
