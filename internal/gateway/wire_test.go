package gateway

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/engine"
)

// TestRefusalTable is the table docs/gateway.md shows: what a caller sees
// for each failure keel answers without an upstream response.
func TestRefusalTable(t *testing.T) {
	tests := []struct {
		code     string
		shutdown bool
		want     string
		status   int
	}{
		{catalog.CodeNoQuotaBeforeDeadline, false, catalog.CodeThrottling, 429},
		{catalog.CodeTargetOverloaded, false, catalog.CodeThrottling, 429},
		{catalog.CodeRequestTooLargeForQuota, false, catalog.CodeValidation, 400},
		{catalog.CodeCircuitOpen, false, catalog.CodeServiceUnavailable, 503},
		{catalog.CodeAttemptTimeout, false, catalog.CodeModelTimeout, 408},
		{catalog.CodeDeadlineExceeded, false, catalog.CodeModelTimeout, 408},
		{catalog.CodeClientTimeout, false, catalog.CodeModelTimeout, 408},
		{catalog.CodeConnectionRefused, false, catalog.CodeServiceUnavailable, 503},
		{catalog.CodeConnectionReset, false, catalog.CodeServiceUnavailable, 503},
		{catalog.CodeStreamTruncated, false, catalog.CodeServiceUnavailable, 503},
		{catalog.CodeStreamStalled, false, catalog.CodeServiceUnavailable, 503},
		{catalog.CodeResponseTooLarge, false, catalog.CodeServiceUnavailable, 503},
		{catalog.CodeCredentialsUnavailable, false, catalog.CodeInternalServer, 500},
		{catalog.CodeUnrecognizedClient, false, catalog.CodeInternalServer, 500},
		{catalog.CodePrefillUnsupported, false, catalog.CodeValidation, 400},
		{catalog.CodeContextCanceled, false, catalog.CodeValidation, 400},
		{catalog.CodeThrottling, false, catalog.CodeThrottling, 429},
		{catalog.CodeModelStreamError, false, catalog.CodeModelStreamError, 424},
		{catalog.CodeUnclassified, false, catalog.CodeInternalServer, 500},
		{catalog.CodeContextCanceled, true, catalog.CodeServiceUnavailable, 503},
		{catalog.CodeThrottling, true, catalog.CodeServiceUnavailable, 503},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			r := refusalFor(&engine.Error{Entry: catalog.Must(tt.code), Message: "m"}, tt.shutdown)
			if r.Code != tt.want || r.Status != tt.status || r.KeelCode != tt.code || r.Message == "" {
				t.Fatalf("refusalFor(%s) = %+v, want %s %d", tt.code, r, tt.want, tt.status)
			}
		})
	}
}

func TestExceptionFrame(t *testing.T) {
	upstream := []byte("the upstream's own frame")
	tests := []struct {
		name     string
		f        *engine.Error
		shutdown bool
		want     string // :exception-type; empty: the upstream's frame as it came
	}{
		{"the upstream's frame", &engine.Error{Entry: catalog.Must(catalog.CodeThrottling), Stream: &engine.StreamFailure{Frame: upstream}}, false, ""},
		{"truncated", &engine.Error{Entry: catalog.Must(catalog.CodeStreamTruncated), Stream: &engine.StreamFailure{}}, false, "modelStreamErrorException"},
		{"stalled", &engine.Error{Entry: catalog.Must(catalog.CodeStreamStalled)}, false, "modelStreamErrorException"},
		{"reset", &engine.Error{Entry: catalog.Must(catalog.CodeConnectionReset)}, false, "serviceUnavailableException"},
		{"cut at shutdown", &engine.Error{Entry: catalog.Must(catalog.CodeContextCanceled), Stream: &engine.StreamFailure{Frame: upstream}}, true, "serviceUnavailableException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := exceptionFrame(tt.f, tt.shutdown)
			if tt.want == "" {
				if !bytes.Equal(b, upstream) {
					t.Fatalf("frame %q", b)
				}
				return
			}
			m, err := eventstream.NewDecoder().Decode(bytes.NewReader(b), nil)
			if err != nil {
				t.Fatal(err)
			}
			if mt, et := m.Headers.Get(":message-type"), m.Headers.Get(":exception-type"); mt == nil || mt.String() != "exception" || et == nil || et.String() != tt.want {
				t.Fatalf("headers %v", m.Headers)
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	s := &Server{opts: Options{Timeout: time.Hour}}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	ttl := func(d time.Duration) http.Header {
		return http.Header{"Amz-Sdk-Request": {"attempt=2; max=3; ttl=" + now.Add(d).Format(sdkTTLFormat)}}
	}
	tests := []struct {
		name string
		h    http.Header
		op   attempt.Op
		want time.Time
	}{
		{"no header", http.Header{}, attempt.Converse, now.Add(time.Hour)},
		{"an earlier ttl", ttl(time.Minute), attempt.Converse, now.Add(time.Minute)},
		{"a later ttl", ttl(2 * time.Hour), attempt.Invoke, now.Add(time.Hour)},
		{"a past ttl", ttl(-time.Minute), attempt.Converse, now.Add(time.Hour)},
		{"a stream ignores the ttl", ttl(time.Minute), attempt.ConverseStream, now.Add(time.Hour)},
		{"a malformed ttl", http.Header{"Amz-Sdk-Request": {"ttl=tomorrow; attempt=2"}}, attempt.Converse, now.Add(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.deadline(tt.h, tt.op, now); !got.Equal(tt.want) {
				t.Fatalf("deadline = %v, want %v", got, tt.want)
			}
		})
	}
}
