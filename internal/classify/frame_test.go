package classify_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
)

// decodeFrame round-trips frame bytes through the SDK's decoder, so
// FromFrame sees headers exactly as they come off the wire.
func decodeFrame(t *testing.T, b []byte) eventstream.Message {
	t.Helper()
	m, err := eventstream.NewDecoder().Decode(bytes.NewReader(b), nil)
	if err != nil {
		t.Fatalf("decode frame: %v", err)
	}
	return m
}

// TestFromFrameEveryEntry sends every entry with a wire code as an
// exception frame and as an error frame.
func TestFromFrameEveryEntry(t *testing.T) {
	for _, e := range catalog.All() {
		if e.WireCode() == "" {
			continue
		}
		t.Run(e.Code+"/exception", func(t *testing.T) {
			m := decodeFrame(t, exceptionFrame(e))
			r := classify.FromFrame(m.Headers, m.Payload)
			if r.Entry != e {
				t.Fatalf("FromFrame = %s, want %s", name(r.Entry), e.Code)
			}
			if r.Status != e.Status || r.Code != e.StreamName() || r.Message != e.DefaultMessage {
				t.Errorf("Status %d Code %q Message %q", r.Status, r.Code, r.Message)
			}
		})
		t.Run(e.Code+"/error", func(t *testing.T) {
			var m eventstream.Message
			m.Headers.Set(":message-type", eventstream.StringValue("error"))
			m.Headers.Set(":error-code", eventstream.StringValue(e.WireCode()))
			m.Headers.Set(":error-message", eventstream.StringValue(e.DefaultMessage))
			m = decodeFrame(t, encode(m))
			r := classify.FromFrame(m.Headers, m.Payload)
			if r.Entry != e || r.Status != e.Status || r.Message != e.DefaultMessage {
				t.Fatalf("FromFrame = %s status %d message %q, want %s", name(r.Entry), r.Status, r.Message, e.Code)
			}
		})
	}
}

func TestFromFrame(t *testing.T) {
	frame := func(kv ...string) eventstream.Headers {
		var h eventstream.Headers
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], eventstream.StringValue(kv[i+1]))
		}
		return h
	}
	payload := func(m map[string]any) []byte { b, _ := json.Marshal(m); return b }
	tests := []struct {
		name       string
		headers    eventstream.Headers
		payload    []byte
		want       string // "" = nil Entry
		wantStatus int
		wantMsg    string
	}{
		{name: "event frame is not an error", headers: frame(":message-type", "event", ":event-type", "chunk"), payload: []byte(`{}`)},
		{name: "no headers", headers: nil},
		{name: "throttling keeps 429", headers: frame(":message-type", "exception", ":exception-type", "throttlingException"),
			payload: payload(map[string]any{"message": "slow"}), want: catalog.CodeThrottling, wantStatus: 429, wantMsg: "slow"},
		{name: "internal keeps 500", headers: frame(":message-type", "exception", ":exception-type", "internalServerException"),
			want: catalog.CodeInternalServer, wantStatus: 500},
		{name: "unavailable keeps 503", headers: frame(":message-type", "exception", ":exception-type", "serviceUnavailableException"),
			want: catalog.CodeServiceUnavailable, wantStatus: 503},
		{name: "model stream error keeps 424", headers: frame(":message-type", "exception", ":exception-type", "modelStreamErrorException"),
			payload: payload(map[string]any{"message": "boom", "originalStatusCode": 500, "originalMessage": "x"}),
			want:    catalog.CodeModelStreamError, wantStatus: 424, wantMsg: "boom"},
		{name: "model timeout keeps 408", headers: frame(":message-type", "exception", ":exception-type", "modelTimeoutException"),
			want: catalog.CodeModelTimeout, wantStatus: 408},
		{name: "validation keeps 400", headers: frame(":message-type", "exception", ":exception-type", "validationException"),
			want: catalog.CodeValidation, wantStatus: 400},
		{name: "exception type only in payload", headers: frame(":message-type", "exception"),
			payload: payload(map[string]any{"__type": "ThrottlingException", "Message": "m"}), want: catalog.CodeThrottling, wantStatus: 429, wantMsg: "m"},
		{name: "unknown exception", headers: frame(":message-type", "exception", ":exception-type", "brandNewException"),
			want: catalog.CodeUnknownServerError, wantStatus: 500},
		{name: "exception with garbage payload", headers: frame(":message-type", "exception", ":exception-type", "throttlingException"),
			payload: []byte{0xff, 0x00, '{'}, want: catalog.CodeThrottling, wantStatus: 429, wantMsg: "\x00{"},
		{name: "error frame without code", headers: frame(":message-type", "error"), want: catalog.CodeUnknownServerError, wantStatus: 500},
		{name: "non-string header value", headers: eventstream.Headers{{Name: ":message-type", Value: eventstream.Int32Value(3)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := classify.FromFrame(tt.headers, tt.payload)
			if tt.want == "" {
				if r.Entry != nil {
					t.Fatalf("FromFrame = %s, want nil", r.Entry.Code)
				}
				return
			}
			if r.Entry == nil || r.Entry.Code != tt.want || r.Status != tt.wantStatus {
				t.Fatalf("FromFrame = %s status %d, want %s %d", name(r.Entry), r.Status, tt.want, tt.wantStatus)
			}
			if r.Message != tt.wantMsg {
				t.Errorf("Message = %q, want %q", r.Message, tt.wantMsg)
			}
		})
	}
}

func TestFromStopReason(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		want   string // "" = not a filter
	}{
		{name: "converse content filter", reason: "content_filtered", want: catalog.CodeContentFiltered},
		{name: "converse guardrail", reason: "guardrail_intervened", want: catalog.CodeGuardrailIntervened},
		{name: "titan upper case", reason: "CONTENT_FILTERED", want: catalog.CodeContentFiltered},
		{name: "camel case", reason: "guardrailIntervened", want: catalog.CodeGuardrailIntervened},
		{name: "guardrail action header value", reason: "INTERVENED", want: catalog.CodeGuardrailIntervened},
		{name: "anthropic refusal", reason: "refusal", want: catalog.CodeContentFiltered},
		{name: "cohere toxic", reason: "ERROR_TOXIC", want: catalog.CodeContentFiltered},
		{name: "end turn", reason: "end_turn"},
		{name: "max tokens", reason: "max_tokens"},
		{name: "tool use", reason: "tool_use"},
		{name: "guardrail NONE", reason: "NONE"},
		{name: "empty", reason: ""},
		{name: "very long", reason: "content_filtered_content_filtered_content_filtered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := classify.FromStopReason(tt.reason)
			if tt.want == "" {
				if ok || r.Entry != nil {
					t.Fatalf("FromStopReason(%q) = %s, want not a filter", tt.reason, name(r.Entry))
				}
				return
			}
			if !ok || r.Entry.Code != tt.want || r.Code != tt.reason || r.Status != 200 {
				t.Fatalf("FromStopReason(%q) = %s %v code %q status %d", tt.reason, name(r.Entry), ok, r.Code, r.Status)
			}
			if r.Entry.FallbackOK || r.Entry.Retry != catalog.Never {
				t.Errorf("a content filter must not be retried or fall back")
			}
		})
	}
}
