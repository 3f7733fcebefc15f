package cache

import (
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

func TestEntryRoundTrip(t *testing.T) {
	h := http.Header{"Content-Type": {"application/json"}, "X-Amzn-Requestid": {"r1"}, "X-Amzn-Bedrock-Output-Token-Count": {"7"},
		"Date": {"today"}, "Content-Length": {"9"}, "Connection": {"close"}}
	now := time.Unix(1700000000, 5)
	e := NewEntry(200, h, []byte(`{"ok":1}`), now)
	if _, ok := e.Header["Date"]; ok || len(e.Header) != 3 {
		t.Fatalf("kept headers %v; want Content-Type, X-Amzn-Requestid, X-Amzn-Bedrock-*", e.Header)
	}
	got, err := Decode(e.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != 200 || string(got.Body) != `{"ok":1}` || !got.Stored.Equal(now) || got.Header.Get("X-Amzn-Bedrock-Output-Token-Count") != "7" {
		t.Errorf("decoded %+v", got)
	}
	resp := got.Response()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != `{"ok":1}` || resp.ContentLength != 8 || resp.Header.Get("Content-Length") != "8" {
		t.Errorf("response %d %q %d", resp.StatusCode, b, resp.ContentLength)
	}
	resp.Header.Set("X-Changed", "1")
	if got.Header.Get("X-Changed") != "" {
		t.Error("Response shares the entry's header map")
	}
}

func TestDecodeRefusesDamage(t *testing.T) {
	good := NewEntry(200, http.Header{"Content-Type": {"application/json"}}, []byte(`{"a":1}`), time.Unix(1, 0)).Encode()
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 0x01
		return b
	}
	for name, b := range map[string][]byte{
		"empty":        nil,
		"short":        good[:3],
		"truncated":    good[:len(good)-5],
		"magic":        flip(0),
		"body bit":     flip(len(good) - 6),
		"checksum bit": flip(len(good) - 1),
		"other bytes":  []byte("hello, this is not an entry at all"),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", name, err)
		}
	}
}

func TestFiltered(t *testing.T) {
	for _, tt := range []struct {
		body string
		want bool
	}{
		{`{"output":{},"stopReason":"end_turn"}`, false},
		{`{"output":{},"stopReason":"content_filtered"}`, true},
		{`{"output":{},"stopReason":"guardrail_intervened"}`, true},
		{`{"content":[],"stop_reason":"refusal"}`, true},
		{`{"content":[],"stop_reason":"max_tokens"}`, false},
		{`{"results":[{"outputText":"x","completionReason":"CONTENT_FILTERED"}]}`, true},
		{`{"results":[{"outputText":"x","completionReason":"FINISH"}]}`, false},
		{`{"outputs":[{"text":"x","stop_reason":"stop"}]}`, false},
		{`{"generations":[{"finish_reason":"ERROR_TOXIC"}]}`, true},
		{`{"amazon-bedrock-guardrailAction":"INTERVENED"}`, true},
		{`{"type":"message_delta","delta":{"stop_reason":"refusal"}}`, true},
		{`{"type":"message_delta","delta":{"stop_reason":"end_turn"}}`, false},
		{`not json`, true},
	} {
		if got := Filtered([]byte(tt.body)); got != tt.want {
			t.Errorf("Filtered(%s) = %v, want %v", tt.body, got, tt.want)
		}
	}
}

func TestEventFiltered(t *testing.T) {
	for _, tt := range []struct {
		payload string
		want    bool
	}{{`{"stopReason":"content_filtered"}`, true}, {`{"stopReason":"end_turn"}`, false}, {`{"delta":{"text":"x"}}`, false}, {`not json`, false}} {
		if got := EventFiltered([]byte(tt.payload)); got != tt.want {
			t.Errorf("EventFiltered(%s) = %v, want %v", tt.payload, got, tt.want)
		}
	}
}
