package classify_test

import (
	"net/http"
	"testing"

	"github.com/keel-run/keel/internal/classify"
)

func BenchmarkFromHTTP(b *testing.B) {
	h := http.Header{}
	h.Set("X-Amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/")
	h.Set("X-Amzn-RequestId", "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901")
	body := []byte(`{"message":"Too many tokens, please wait before trying again."}`)
	b.ReportAllocs()
	for b.Loop() {
		classify.FromHTTP(429, h, body)
	}
}

func BenchmarkFromText(b *testing.B) {
	text := "operation error Bedrock Runtime: Converse, https response error StatusCode: 429, RequestID: 1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901, ThrottlingException: Too many tokens, please wait before trying again."
	b.ReportAllocs()
	for b.Loop() {
		classify.FromText(text)
	}
}

func BenchmarkSuggest(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		classify.Suggest("ModelNotReadyExcepton Throttle", 3)
	}
}
