package classify_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
)

// TestFromTextEveryEntry pastes every entry in every form a person meets it.
func TestFromTextEveryEntry(t *testing.T) {
	type form struct {
		name   string
		text   func(e *catalog.Entry) string
		wire   bool // needs a wire code
		status bool // the text shows the status
		id     bool // the text shows the request id
		msg    bool // the text shows the message
	}
	forms := []form{
		{name: "go sdk", wire: true, status: true, id: true, msg: true, text: func(e *catalog.Entry) string {
			return fmt.Sprintf("operation error Bedrock Runtime: Converse, https response error StatusCode: %d, RequestID: %s, %s: %s",
				e.Status, testRequestID, e.WireCode(), e.DefaultMessage)
		}},
		{name: "go sdk stream", wire: true, msg: true, text: func(e *catalog.Entry) string {
			return fmt.Sprintf("stream error: %s: %s", e.WireCode(), e.DefaultMessage)
		}},
		{name: "boto3", wire: true, msg: true, text: func(e *catalog.Entry) string {
			return fmt.Sprintf("botocore.errorfactory.%s: An error occurred (%s) when calling the InvokeModel operation (reached max retries: 4): %s",
				e.WireCode(), e.WireCode(), e.DefaultMessage)
		}},
		{name: "javascript", wire: true, status: true, id: true, msg: true, text: func(e *catalog.Entry) string {
			return fmt.Sprintf("%s: %s\n    at throwDefaultError (smithy-client)\n  '$metadata': { httpStatusCode: %d, requestId: '%s' }",
				e.WireCode(), e.DefaultMessage, e.Status, testRequestID)
		}},
		{name: "json body", wire: true, msg: true, text: func(e *catalog.Entry) string {
			return fmt.Sprintf(`  {"__type":"com.amazonaws.bedrock#%s","message":%q}`, e.WireCode(), e.DefaultMessage)
		}},
		{name: "keel code", text: func(e *catalog.Entry) string { return e.Code }},
		{name: "keel code lower case", text: func(e *catalog.Entry) string { return strings.ToLower(e.Code) }},
		{name: "keel error", text: func(e *catalog.Entry) string { return "keel: " + e.Code + " after 3 attempt(s)" }},
	}
	for _, e := range catalog.All() {
		for _, f := range forms {
			if f.wire && e.WireCode() == "" {
				continue
			}
			t.Run(e.Code+"/"+f.name, func(t *testing.T) {
				text := f.text(e)
				r, ok := classify.FromText(text)
				if !ok || r.Entry != e {
					t.Fatalf("FromText(%q) = %s, %v; want %s", text, name(r.Entry), ok, e.Code)
				}
				if r.Status != e.Status {
					t.Errorf("Status = %d, want %d", r.Status, e.Status)
				}
				if f.id && r.RequestID != testRequestID {
					t.Errorf("RequestID = %q", r.RequestID)
				}
				if f.msg && r.Message != e.DefaultMessage {
					t.Errorf("Message = %q, want %q", r.Message, e.DefaultMessage)
				}
			})
		}
	}
}

func TestFromText(t *testing.T) {
	tests := []struct {
		name       string
		text       string
		want       string // "" = not found
		wantStatus int
		wantMsg    string
	}{
		{name: "issue example", text: "operation error Bedrock Runtime: Converse, https response error StatusCode: 429, RequestID: 1b2c..., ThrottlingException: Too many tokens, please wait before trying again.",
			want: catalog.CodeThrottling, wantStatus: 429, wantMsg: "Too many tokens, please wait before trying again."},
		{name: "lower case code in prose", text: "got a throttlingexception again", want: catalog.CodeThrottling, wantStatus: 429},
		{name: "stream name", text: "exception frame modelStreamErrorException", want: catalog.CodeModelStreamError, wantStatus: 424},
		{name: "header value", text: "X-Amzn-ErrorType: ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/",
			want: catalog.CodeServiceUnavailable, wantStatus: 503},
		{name: "dial refused", text: `Post "http://127.0.0.1:1/model/m/converse": dial tcp 127.0.0.1:1: connect: connection refused`,
			want: catalog.CodeConnectionRefused, wantMsg: `Post "http://127.0.0.1:1/model/m/converse": dial tcp 127.0.0.1:1: connect: connection refused`},
		{name: "reset by peer", text: "read tcp 10.0.0.2:51234->52.1.2.3:443: read: connection reset by peer", want: catalog.CodeConnectionReset},
		{name: "bare EOF from transport", text: `Post "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse": EOF`, want: catalog.CodeConnectionReset},
		{name: "unexpected EOF", text: "decode event: unexpected EOF", want: catalog.CodeStreamTruncated},
		{name: "no such host", text: "dial tcp: lookup bedrock-runtime.us-fake-1.amazonaws.com: no such host", want: catalog.CodeDNSNotFound},
		{name: "x509", text: "tls: failed to verify certificate: x509: certificate signed by unknown authority", want: catalog.CodeTLSFailure},
		{name: "client timeout", text: "net/http: request canceled (Client.Timeout exceeded while awaiting headers)", want: catalog.CodeClientTimeout},
		{name: "sdk deadline", text: "operation error Bedrock Runtime: Converse, https response error StatusCode: 0, RequestID: , canceled, context deadline exceeded",
			want: catalog.CodeDeadlineExceeded},
		{name: "sdk canceled", text: "operation error Bedrock Runtime: Converse, https response error StatusCode: 0, RequestID: , canceled, context canceled",
			want: catalog.CodeContextCanceled},
		{name: "checksum", text: "decode event: message checksum mismatch", want: catalog.CodeStreamCorrupt},
		{name: "credentials", text: "operation error Bedrock Runtime: Converse, get identity: get credentials: failed to refresh cached credentials, no EC2 IMDS role found",
			want: catalog.CodeCredentialsUnavailable},
		{name: "ftu refined from pasted text", text: "ResourceNotFoundException: Model use case details have not been submitted for this account.",
			want: catalog.CodeFTUFormNotFilled, wantStatus: 404, wantMsg: "Model use case details have not been submitted for this account."},
		{name: "marketplace refined", text: "An error occurred (AccessDeniedException) when calling the Converse operation: Model access is denied due to IAM user or service role is not authorized to perform the required AWS Marketplace actions",
			want: catalog.CodeMarketplaceAgreementFailed, wantStatus: 403},
		{name: "status only", text: "request failed with status code 502 Bad Gateway", want: catalog.CodeUnknownServerError, wantStatus: 502},
		{name: "anthropic sdk status", text: "Error code: 429 - {'message': 'Too many requests'}", want: catalog.CodeTooManyRequests, wantStatus: 429},
		{name: "short name", text: "ValidationError", want: catalog.CodeValidationError, wantStatus: 400},
		{name: "stop reason", text: "stopReason: guardrail_intervened", want: catalog.CodeGuardrailIntervened, wantStatus: 200},
		{name: "nothing", text: "the weather is fine today"},
		{name: "empty", text: ""},
		{name: "blank", text: " \n\t "},
		{name: "status out of range", text: "StatusCode: 999"},
		{name: "close but not a code", text: "Throttle"},
		{name: "short words ignored", text: "EOF x y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := classify.FromText(tt.text)
			if tt.want == "" {
				if ok || r.Entry != nil {
					t.Fatalf("FromText(%q) = %s, want not found", tt.text, name(r.Entry))
				}
				return
			}
			if !ok || r.Entry == nil || r.Entry.Code != tt.want {
				t.Fatalf("FromText(%q) = %s, %v; want %s", tt.text, name(r.Entry), ok, tt.want)
			}
			if r.Status != tt.wantStatus {
				t.Errorf("Status = %d, want %d", r.Status, tt.wantStatus)
			}
			if tt.wantMsg != "" && r.Message != tt.wantMsg {
				t.Errorf("Message = %q, want %q", r.Message, tt.wantMsg)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		n     int
		first string // "" = expect no suggestions
	}{
		{name: "typo", text: "ModelNotReadyExcepton", n: 3, first: catalog.CodeModelNotReady},
		{name: "prefix", text: "Throttle", n: 3, first: catalog.CodeThrottling},
		{name: "part of a code", text: "quota", n: 3, first: catalog.CodeServiceQuotaExceeded},
		{name: "lower case typo", text: "validaton", n: 1, first: catalog.CodeValidation},
		{name: "marketplace", text: "marketplace", n: 3, first: catalog.CodeMarketplaceAgreementFailed},
		{name: "unrelated", text: "banana", n: 3},
		{name: "zero n", text: "Throttle", n: 0},
		{name: "empty", text: "", n: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify.Suggest(tt.text, tt.n)
			if len(got) > tt.n && tt.n >= 0 {
				t.Fatalf("Suggest(%q, %d) returned %d", tt.text, tt.n, len(got))
			}
			if tt.first == "" {
				if len(got) != 0 {
					t.Fatalf("Suggest(%q) = %s..., want none", tt.text, got[0].Code)
				}
				return
			}
			if len(got) == 0 || got[0].Code != tt.first {
				var codes []string
				for _, e := range got {
					codes = append(codes, e.Code)
				}
				t.Fatalf("Suggest(%q) = %v, want %s first", tt.text, codes, tt.first)
			}
		})
	}
}

// TestSuggestBoundedOnLongText: a pasted paragraph cannot make Suggest slow
// or unbounded.
func TestSuggestBoundedOnLongText(t *testing.T) {
	text := strings.Repeat("lorem ipsum dolor sit amet consectetur ", 5000)
	if got := classify.Suggest(text, 5); len(got) > 5 {
		t.Fatalf("Suggest returned %d", len(got))
	}
	if _, ok := classify.FromText(text); ok {
		t.Fatalf("FromText found an error in lorem ipsum")
	}
}
