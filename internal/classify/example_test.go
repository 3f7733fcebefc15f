package classify_test

import (
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/keel-run/keel/internal/classify"
)

func ExampleFromHTTP() {
	h := http.Header{}
	h.Set("X-Amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/")
	h.Set("Retry-After", "2")
	r := classify.FromHTTP(429, h, []byte(`{"message":"Too many tokens, please wait before trying again."}`))
	fmt.Println(r.Entry.Code, r.Status, r.Entry.Retry, r.RetryAfter)
	// Output: ThrottlingException 429 throttled 2s
}

func ExampleFromFrame() {
	// An exception inside a 200 event stream keeps its own status.
	var h eventstream.Headers
	h.Set(":message-type", eventstream.StringValue("exception"))
	h.Set(":exception-type", eventstream.StringValue("serviceUnavailableException"))
	r := classify.FromFrame(h, []byte(`{"message":"Bedrock is unable to process your request."}`))
	fmt.Println(r.Entry.Code, r.Status, r.Entry.Unhealthy)
	// Output: ServiceUnavailableException 503 true
}

func ExampleFromText() {
	r, ok := classify.FromText("operation error Bedrock Runtime: Converse, https response error StatusCode: 429, " +
		"RequestID: 1b2c3d4e, ModelNotReadyException: Model is not ready to serve inference requests.")
	fmt.Println(ok, r.Entry.Code, r.Status, r.Entry.Retryable(), r.RequestID)
	// Output: true ModelNotReadyException 429 true 1b2c3d4e
}

func ExampleFromStopReason() {
	r, blocked := classify.FromStopReason("guardrail_intervened")
	fmt.Println(blocked, r.Entry.Code, r.Entry.Retry, r.Entry.FallbackOK)
	// Output: true GuardrailIntervened never false
}
