package classify_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/classify"
)

func FuzzFromHTTP(f *testing.F) {
	seeds := []struct {
		status     int
		errType    string
		retryAfter string
		body       string
	}{
		{429, "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/", "3", `{"message":"Too many tokens, please wait before trying again."}`},
		{400, "", "", `{"__type":"com.amazonaws.bedrock#ValidationException","Message":"bad"}`},
		{404, "", "", `{"code":"resourceNotFoundException","message":"Model use case details have not been submitted for this account."}`},
		{503, "", "Wed, 21 Oct 2015 07:28:00 GMT", "<html>503</html>"},
		{500, "", "", `{"Output":{"__type":"com.amazon.coral.service#InternalFailure"},"Version":"1.0"}`},
		{0, "#:", "-1", `{"__type":`},
		{999, "ModelNotReady", "1e400", `{"message":null,"code":42}`},
		{403, "AccessDeniedException", "", "\xff\xfe{"},
	}
	for _, s := range seeds {
		f.Add(s.status, s.errType, s.retryAfter, []byte(s.body))
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, errType, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set("X-Amzn-ErrorType", errType)
		h.Set("Retry-After", retryAfter)
		r := classify.FromHTTPAt(now, status, h, body)
		if r.Entry == nil {
			t.Fatalf("FromHTTP(%d, %q, %q) has no entry", status, errType, body)
		}
		if r.RetryAfter < 0 || r.RetryAfter > classify.MaxRetryAfter {
			t.Fatalf("RetryAfter %v out of range", r.RetryAfter)
		}
		if status > 0 && status <= 599 && r.Status != status {
			t.Fatalf("Status %d, response said %d", r.Status, status)
		}
		if len(r.Message) > 1<<20 {
			t.Fatalf("message of %d bytes", len(r.Message))
		}
	})
}

func FuzzFromText(f *testing.F) {
	for _, s := range []string{
		"operation error Bedrock Runtime: Converse, https response error StatusCode: 429, RequestID: 1b2c, ThrottlingException: Too many tokens, please wait before trying again.",
		"An error occurred (ModelNotReadyException) when calling the InvokeModel operation (reached max retries: 4): Model is not ready",
		`{"__type":"com.amazonaws.bedrock#AccessDeniedException","message":"Model access is denied due to IAM user or service role is not authorized to perform the required AWS Marketplace actions"}`,
		"dial tcp 127.0.0.1:1: connect: connection refused",
		"StatusCode: 503",
		"throttlingException",
		"ThrottlingException:",
		"RequestID:",
		"status code 4",
		"\x00\xff",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		r, ok := classify.FromText(text)
		if ok != (r.Entry != nil) {
			t.Fatalf("FromText(%q): ok=%v entry=%v", text, ok, r.Entry)
		}
		if ok && r.Status != 0 && (r.Status < 100 || r.Status > 599) {
			t.Fatalf("FromText(%q): status %d", text, r.Status)
		}
		if got := classify.Suggest(text, 3); len(got) > 3 {
			t.Fatalf("Suggest returned %d", len(got))
		}
	})
}
