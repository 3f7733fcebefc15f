package classify_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
)

// TestFromHTTPEveryEntry sends every entry that arrives as an HTTP error
// through every way a response can name its code.
func TestFromHTTPEveryEntry(t *testing.T) {
	type shape struct {
		name string
		make func(e *catalog.Entry) (http.Header, []byte)
	}
	jsonBody := func(kv ...string) []byte {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		b, _ := json.Marshal(m)
		return b
	}
	shapes := []shape{
		{name: "header with coral suffix", make: func(e *catalog.Entry) (http.Header, []byte) {
			h := http.Header{}
			h.Set("X-Amzn-ErrorType", e.WireCode()+":http://internal.amazon.com/coral/com.amazon.bedrock/")
			return h, jsonBody("message", e.DefaultMessage)
		}},
		{name: "header plain, Message capitalised", make: func(e *catalog.Entry) (http.Header, []byte) {
			h := http.Header{}
			h.Set("X-Amzn-ErrorType", e.WireCode())
			return h, jsonBody("Message", e.DefaultMessage)
		}},
		{name: "body __type with namespace", make: func(e *catalog.Entry) (http.Header, []byte) {
			return http.Header{}, jsonBody("__type", "com.amazonaws.bedrock#"+e.WireCode(), "message", e.DefaultMessage)
		}},
		{name: "body code", make: func(e *catalog.Entry) (http.Header, []byte) {
			return http.Header{}, jsonBody("code", e.WireCode(), "message", e.DefaultMessage)
		}},
		{name: "body lowerCamel code", make: func(e *catalog.Entry) (http.Header, []byte) {
			return nil, jsonBody("code", e.StreamName(), "message", e.DefaultMessage)
		}},
		{name: "json 1.0 Output", make: func(e *catalog.Entry) (http.Header, []byte) {
			b, _ := json.Marshal(map[string]any{"Output": map[string]string{"__type": "com.amazon.coral.service#" + e.WireCode(), "message": e.DefaultMessage}, "Version": "1.0"})
			return nil, b
		}},
	}
	for _, e := range wireEntries() {
		for _, s := range shapes {
			t.Run(e.Code+"/"+s.name, func(t *testing.T) {
				h, body := s.make(e)
				r := classify.FromHTTP(e.Status, h, body)
				if r.Entry != e {
					t.Fatalf("FromHTTP = %s, want %s (code %q, message %q)", name(r.Entry), e.Code, r.Code, r.Message)
				}
				if r.Status != e.Status || r.Message != e.DefaultMessage || r.Code == "" {
					t.Errorf("Status %d Message %q Code %q", r.Status, r.Message, r.Code)
				}
			})
		}
	}
}

func TestFromHTTP(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		want       string
		wantStatus int
		wantCode   string
		wantMsg    string
		wantID     string
		wantAfter  time.Duration
	}{
		{name: "header wins over body", status: 429, header: hdr("X-Amzn-ErrorType", "ThrottlingException"),
			body: `{"__type":"ValidationException","message":"m"}`, want: catalog.CodeThrottling, wantStatus: 429,
			wantCode: "ThrottlingException", wantMsg: "m"},
		{name: "true status kept when it differs", status: 400, header: hdr("X-Amzn-ErrorType", "ThrottlingException"),
			want: catalog.CodeThrottling, wantStatus: 400, wantCode: "ThrottlingException"},
		{name: "unknown code, 4xx", status: 418, body: `{"__type":"TeapotException","message":"short and stout"}`,
			want: catalog.CodeUnknownClientError, wantStatus: 418, wantCode: "TeapotException", wantMsg: "short and stout"},
		{name: "unknown code, 5xx", status: 500, header: hdr("X-Amzn-ErrorType", "BrandNewFault"),
			want: catalog.CodeUnknownServerError, wantStatus: 500, wantCode: "BrandNewFault"},
		{name: "no code, 429", status: 429, want: catalog.CodeTooManyRequests, wantStatus: 429},
		{name: "no code, 503 html", status: 503, body: "<html><body>503 Service Temporarily Unavailable</body></html>",
			want: catalog.CodeUnknownServerError, wantStatus: 503, wantMsg: "<html><body>503 Service Temporarily Unavailable</body></html>"},
		{name: "no code, 502 empty", status: 502, want: catalog.CodeUnknownServerError, wantStatus: 502},
		{name: "no code, 404", status: 404, body: `{"message":"Not Found"}`, want: catalog.CodeUnknownClientError, wantStatus: 404, wantMsg: "Not Found"},
		{name: "truncated json", status: 429, body: `{"__type":"Throttl`, want: catalog.CodeTooManyRequests, wantStatus: 429, wantMsg: `{"__type":"Throttl`},
		{name: "non-string fields", status: 400, body: `{"__type":42,"code":"ValidationException","message":["x"]}`,
			want: catalog.CodeValidation, wantStatus: 400, wantCode: "ValidationException"},
		{name: "null message", status: 400, body: `{"__type":"ValidationException","message":null}`,
			want: catalog.CodeValidation, wantStatus: 400, wantCode: "ValidationException"},
		{name: "status 0 takes the entry's", status: 0, header: hdr("X-Amzn-ErrorType", "ModelTimeoutException"),
			want: catalog.CodeModelTimeout, wantStatus: 408, wantCode: "ModelTimeoutException"},
		{name: "status 0 without code", status: 0, want: catalog.CodeUnknownNetworkError, wantStatus: 0},
		{name: "refined by message", status: 404, header: hdr("X-Amzn-ErrorType", "ResourceNotFoundException"),
			body: `{"message":"Model use case details have not been submitted for this account."}`,
			want: catalog.CodeFTUFormNotFilled, wantStatus: 404, wantCode: "ResourceNotFoundException",
			wantMsg: "Model use case details have not been submitted for this account."},
		{name: "request id", status: 503, header: hdr("X-Amzn-ErrorType", "ServiceUnavailableException", "X-Amzn-RequestId", "abc-123"),
			want: catalog.CodeServiceUnavailable, wantStatus: 503, wantCode: "ServiceUnavailableException", wantID: "abc-123"},
		{name: "s3-style request id", status: 500, header: hdr("X-Amz-Request-Id", "def-456"),
			want: catalog.CodeUnknownServerError, wantStatus: 500, wantID: "def-456"},
		{name: "retry-after seconds", status: 429, header: hdr("X-Amzn-ErrorType", "ThrottlingException", "Retry-After", "3"),
			want: catalog.CodeThrottling, wantStatus: 429, wantCode: "ThrottlingException", wantAfter: 3 * time.Second},
		{name: "retry-after fractional seconds", status: 429, header: hdr("Retry-After", "1.5"),
			want: catalog.CodeTooManyRequests, wantStatus: 429, wantAfter: 1500 * time.Millisecond},
		{name: "retry-after http date", status: 503, header: hdr("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)),
			want: catalog.CodeUnknownServerError, wantStatus: 503, wantAfter: 90 * time.Second},
		{name: "retry-after date in the past", status: 503, header: hdr("Retry-After", now.Add(-time.Hour).Format(http.TimeFormat)),
			want: catalog.CodeUnknownServerError, wantStatus: 503},
		{name: "x-amz-retry-after milliseconds wins", status: 429, header: hdr("X-Amz-Retry-After", "250", "Retry-After", "9"),
			want: catalog.CodeTooManyRequests, wantStatus: 429, wantAfter: 250 * time.Millisecond},
		{name: "retry-after garbage", status: 429, header: hdr("Retry-After", "soon"), want: catalog.CodeTooManyRequests, wantStatus: 429},
		{name: "retry-after negative", status: 429, header: hdr("Retry-After", "-5"), want: catalog.CodeTooManyRequests, wantStatus: 429},
		{name: "retry-after huge is clamped", status: 429, header: hdr("Retry-After", "1e300"),
			want: catalog.CodeTooManyRequests, wantStatus: 429, wantAfter: classify.MaxRetryAfter},
		{name: "retry-after NaN", status: 429, header: hdr("X-Amz-Retry-After", "NaN"), want: catalog.CodeTooManyRequests, wantStatus: 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := classify.FromHTTPAt(now, tt.status, tt.header, []byte(tt.body))
			if r.Entry == nil || r.Entry.Code != tt.want {
				t.Fatalf("FromHTTP = %s, want %s", name(r.Entry), tt.want)
			}
			if r.Status != tt.wantStatus {
				t.Errorf("Status = %d, want %d", r.Status, tt.wantStatus)
			}
			if r.Code != tt.wantCode && !strings.HasPrefix(r.Code, tt.wantCode+":") {
				t.Errorf("Code = %q, want %q", r.Code, tt.wantCode)
			}
			if r.Message != tt.wantMsg {
				t.Errorf("Message = %q, want %q", r.Message, tt.wantMsg)
			}
			if r.RequestID != tt.wantID {
				t.Errorf("RequestID = %q, want %q", r.RequestID, tt.wantID)
			}
			if r.RetryAfter != tt.wantAfter {
				t.Errorf("RetryAfter = %v, want %v", r.RetryAfter, tt.wantAfter)
			}
		})
	}
}

func TestFromHTTPLongBodyIsBounded(t *testing.T) {
	body := strings.Repeat("é", 10000)
	r := classify.FromHTTP(502, nil, []byte(body))
	if len(r.Message) > 300 || !strings.HasSuffix(r.Message, "…") {
		t.Errorf("message of %d bytes: %q...", len(r.Message), r.Message[:20])
	}
	if !strings.HasPrefix(body, strings.TrimSuffix(r.Message, "…")) {
		t.Errorf("message is not a prefix cut on a rune boundary")
	}
}

func TestResultString(t *testing.T) {
	h := http.Header{}
	h.Set("X-Amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/")
	h.Set("X-Amzn-RequestId", "r-1")
	tests := []struct {
		name string
		r    classify.Result
		want string
	}{
		{name: "zero", r: classify.Result{}, want: "no error"},
		{name: "decorated code", r: classify.FromHTTP(429, h, []byte(`{"message":"slow down"}`)),
			want: "ThrottlingException (HTTP 429): slow down [request r-1]"},
		{name: "refined", r: classify.FromHTTP(404, http.Header{"X-Amzn-Errortype": {"ResourceNotFoundException"}},
			[]byte(`{"message":"Model use case details have not been submitted for this account."}`)),
			want: "FTUFormNotFilled (as ResourceNotFoundException) (HTTP 404): Model use case details have not been submitted for this account."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
