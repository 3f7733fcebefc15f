package catalog_test

import (
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/schemas"
	smithy "github.com/aws/smithy-go"
	"github.com/aws/smithy-go/traits"

	"github.com/keel-run/keel/internal/catalog"
)

// TestRequiredCodes is the acceptance list: every code a Bedrock
// user can meet, with its status and retry class.
func TestRequiredCodes(t *testing.T) {
	tests := []struct {
		name   string
		code   string
		status int
		retry  catalog.RetryClass
	}{
		// Troubleshooting guide.
		{name: "guide AccessDeniedException", code: "AccessDeniedException", status: 403, retry: catalog.Fallback},
		{name: "guide FTUFormNotFilled", code: "FTUFormNotFilled", status: 404, retry: catalog.Never},
		{name: "guide IncompleteSignature", code: "IncompleteSignature", status: 400, retry: catalog.Never},
		{name: "guide InternalFailure", code: "InternalFailure", status: 500, retry: catalog.Backoff},
		{name: "guide InvalidAction", code: "InvalidAction", status: 400, retry: catalog.Never},
		{name: "guide InvalidClientTokenId", code: "InvalidClientTokenId", status: 403, retry: catalog.Never},
		{name: "guide Marketplace failed", code: "MarketplaceAgreementFailed", status: 403, retry: catalog.Never},
		{name: "guide Marketplace pending", code: "MarketplaceAgreementPending", status: 403, retry: catalog.LongWait},
		{name: "guide MPAgreementBeingCreated", code: "MPAgreementBeingCreated", status: 403, retry: catalog.LongWait},
		{name: "guide NotAuthorized", code: "NotAuthorized", status: 400, retry: catalog.Never},
		{name: "guide RequestExpired", code: "RequestExpired", status: 400, retry: catalog.Never},
		{name: "guide ServiceUnavailable", code: "ServiceUnavailable", status: 503, retry: catalog.Backoff},
		{name: "guide ThrottlingException", code: "ThrottlingException", status: 429, retry: catalog.Throttled},
		{name: "guide ValidationError", code: "ValidationError", status: 400, retry: catalog.Never},
		{name: "guide ResourceNotFound", code: "ResourceNotFound", status: 404, retry: catalog.Fallback},
		{name: "guide idle connection", code: "IdleConnectionDropped", status: 0, retry: catalog.Backoff},
		// bedrock-runtime exceptions.
		{name: "runtime AccessDenied", code: "AccessDeniedException", status: 403, retry: catalog.Fallback},
		{name: "runtime Conflict", code: "ConflictException", status: 400, retry: catalog.Never},
		{name: "runtime InternalServer", code: "InternalServerException", status: 500, retry: catalog.Backoff},
		{name: "runtime ModelError", code: "ModelErrorException", status: 424, retry: catalog.Never},
		{name: "runtime ModelNotReady", code: "ModelNotReadyException", status: 429, retry: catalog.Backoff},
		{name: "runtime ModelStreamError", code: "ModelStreamErrorException", status: 424, retry: catalog.Backoff},
		{name: "runtime ModelTimeout", code: "ModelTimeoutException", status: 408, retry: catalog.Backoff},
		{name: "runtime ResourceNotFound", code: "ResourceNotFoundException", status: 404, retry: catalog.Fallback},
		{name: "runtime ServiceQuotaExceeded", code: "ServiceQuotaExceededException", status: 400, retry: catalog.Fallback},
		{name: "runtime ServiceUnavailable", code: "ServiceUnavailableException", status: 503, retry: catalog.Backoff},
		{name: "runtime Throttling", code: "ThrottlingException", status: 429, retry: catalog.Throttled},
		{name: "runtime Validation", code: "ValidationException", status: 400, retry: catalog.Never},
		// Authentication before the service runs.
		{name: "auth UnrecognizedClient", code: "UnrecognizedClientException", status: 403, retry: catalog.Never},
		{name: "auth InvalidSignature", code: "InvalidSignatureException", status: 403, retry: catalog.Never},
		{name: "auth ExpiredToken", code: "ExpiredTokenException", status: 403, retry: catalog.Never},
		// Transport, stream, client.
		{name: "connection refused", code: "ConnectionRefused", status: 0, retry: catalog.Backoff},
		{name: "connection reset", code: "ConnectionReset", status: 0, retry: catalog.Backoff},
		{name: "dns not found", code: "DNSNotFound", status: 0, retry: catalog.Fallback},
		{name: "dns failure", code: "DNSFailure", status: 0, retry: catalog.Backoff},
		{name: "tls", code: "TLSFailure", status: 0, retry: catalog.Never},
		{name: "client timeout", code: "ClientTimeout", status: 0, retry: catalog.Backoff},
		{name: "stream truncated", code: "StreamTruncated", status: 0, retry: catalog.Backoff},
		{name: "stream corrupt", code: "StreamCorrupt", status: 0, retry: catalog.Backoff},
		{name: "stream stalled", code: "StreamStalled", status: 0, retry: catalog.Backoff},
		{name: "context canceled", code: "ContextCanceled", status: 0, retry: catalog.Never},
		{name: "deadline exceeded", code: "DeadlineExceeded", status: 0, retry: catalog.Never},
		{name: "content filtered", code: "ContentFiltered", status: 200, retry: catalog.Never},
		{name: "guardrail intervened", code: "GuardrailIntervened", status: 200, retry: catalog.Never},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := catalog.Lookup(tt.code)
			if !ok {
				t.Fatalf("Lookup(%q): not found", tt.code)
			}
			if e.Code != tt.code {
				t.Errorf("Lookup(%q).Code = %q", tt.code, e.Code)
			}
			if e.Status != tt.status {
				t.Errorf("%s: Status = %d, want %d", tt.code, e.Status, tt.status)
			}
			if e.Retry != tt.retry {
				t.Errorf("%s: Retry = %q, want %q", tt.code, e.Retry, tt.retry)
			}
		})
	}
}

// TestPolicyFlags pins the decisions the engine reads: Unhealthy and FallbackOK.
func TestPolicyFlags(t *testing.T) {
	tests := []struct {
		name       string
		code       string
		unhealthy  bool
		fallbackOK bool
		wait       time.Duration
	}{
		{name: "throttling is not unhealthy", code: catalog.CodeThrottling, unhealthy: false, fallbackOK: true},
		{name: "service unavailable", code: catalog.CodeServiceUnavailable, unhealthy: true, fallbackOK: true},
		{name: "internal server", code: catalog.CodeInternalServer, unhealthy: true, fallbackOK: true},
		{name: "internal failure", code: catalog.CodeInternalFailure, unhealthy: true, fallbackOK: true},
		{name: "model not ready", code: catalog.CodeModelNotReady, unhealthy: true, fallbackOK: true},
		{name: "model timeout", code: catalog.CodeModelTimeout, unhealthy: true, fallbackOK: true},
		{name: "model error falls back to another model", code: catalog.CodeModelError, unhealthy: false, fallbackOK: true},
		{name: "validation", code: catalog.CodeValidation, unhealthy: false, fallbackOK: false},
		{name: "access denied", code: catalog.CodeAccessDenied, unhealthy: false, fallbackOK: true},
		{name: "not found", code: catalog.CodeResourceNotFound, unhealthy: false, fallbackOK: true},
		{name: "unrecognized client", code: catalog.CodeUnrecognizedClient, unhealthy: false, fallbackOK: false},
		{name: "marketplace pending waits 15m", code: catalog.CodeMarketplaceAgreementPending, fallbackOK: true, wait: 15 * time.Minute},
		{name: "mp agreement waits 15m", code: catalog.CodeMPAgreementBeingCreated, fallbackOK: true, wait: 15 * time.Minute},
		{name: "connection reset", code: catalog.CodeConnectionReset, unhealthy: true, fallbackOK: true},
		{name: "idle drop is the path, not the target", code: catalog.CodeIdleConnectionDropped, unhealthy: false, fallbackOK: true},
		{name: "context canceled", code: catalog.CodeContextCanceled},
		{name: "deadline exceeded", code: catalog.CodeDeadlineExceeded},
		{name: "content filtered never falls back", code: catalog.CodeContentFiltered},
		{name: "guardrail never falls back", code: catalog.CodeGuardrailIntervened},
		{name: "quota wait past the deadline falls back", code: catalog.CodeNoQuotaBeforeDeadline, fallbackOK: true},
		{name: "too large for this quota may fit another", code: catalog.CodeRequestTooLargeForQuota, fallbackOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := catalog.Must(tt.code)
			if e.Unhealthy != tt.unhealthy || e.FallbackOK != tt.fallbackOK || e.Wait != tt.wait {
				t.Errorf("%s: Unhealthy=%v FallbackOK=%v Wait=%v, want %v %v %v",
					tt.code, e.Unhealthy, e.FallbackOK, e.Wait, tt.unhealthy, tt.fallbackOK, tt.wait)
			}
		})
	}
}

// TestEntriesWellFormed checks every row has what keel explain and the
// engine need.
func TestEntriesWellFormed(t *testing.T) {
	categories := map[catalog.Category]bool{
		catalog.Auth: true, catalog.Access: true, catalog.Quota: true, catalog.Validation: true,
		catalog.NotFound: true, catalog.Model: true, catalog.Server: true, catalog.Network: true,
		catalog.Stream: true, catalog.Client: true, catalog.ContentFilter: true, catalog.Unknown: true,
	}
	retries := map[catalog.RetryClass]bool{
		catalog.Never: true, catalog.Backoff: true, catalog.Throttled: true, catalog.LongWait: true, catalog.Fallback: true,
	}
	sources := map[string]bool{
		"bedrock-runtime": true, "aws-auth": true, "guide": true, "transport": true, "stream": true, "sdk": true, "keel": true,
	}
	for _, e := range catalog.All() {
		t.Run(e.Code, func(t *testing.T) {
			if e.Code == "" || !unicode.IsUpper(rune(e.Code[0])) || strings.ContainsAny(e.Code, " _-:#") {
				t.Errorf("Code %q is not CamelCase", e.Code)
			}
			if !categories[e.Category] {
				t.Errorf("Category %q unknown", e.Category)
			}
			if !retries[e.Retry] {
				t.Errorf("Retry %q unknown", e.Retry)
			}
			if !sources[e.Source] {
				t.Errorf("Source %q unknown", e.Source)
			}
			if e.Status != 0 && (e.Status < 200 || e.Status > 599) {
				t.Errorf("Status %d out of range", e.Status)
			}
			if (e.Retry == catalog.LongWait) != (e.Wait > 0) {
				t.Errorf("Retry %q with Wait %v", e.Retry, e.Wait)
			}
			if e.Retry == catalog.Fallback && !e.FallbackOK {
				t.Errorf("Retry fallback but FallbackOK false")
			}
			if e.Summary == "" || e.Cause == "" || len(e.Fix) == 0 {
				t.Errorf("missing Summary, Cause or Fix")
			}
			for i, f := range e.Fix {
				if strings.TrimSpace(f) == "" {
					t.Errorf("Fix[%d] empty", i)
				}
			}
			for _, h := range e.Hints {
				if h != strings.ToLower(h) || h == "" {
					t.Errorf("hint %q must be non-empty lower case", h)
				}
			}
			if e.WireCode() != "" && e.DefaultMessage == "" {
				t.Errorf("wire code %q without DefaultMessage", e.WireCode())
			}
			if e.Streamable && e.StreamName() == "" {
				t.Errorf("Streamable without a stream name")
			}
			if e.Refines != "" {
				base, ok := catalog.Lookup(e.Refines)
				if !ok || base.Code != e.Refines {
					t.Errorf("Refines %q does not name a canonical entry", e.Refines)
				}
				if len(e.Hints) == 0 {
					t.Errorf("Refines %q without Hints cannot be told apart", e.Refines)
				}
				if catalog.Refine(base, e.DefaultMessage) != e {
					t.Errorf("Refine(%s, DefaultMessage) does not find %s", base.Code, e.Code)
				}
			}
		})
	}
}

func TestWireAndStreamNames(t *testing.T) {
	tests := []struct {
		name   string
		code   string
		wire   string
		stream string
	}{
		{name: "throttling", code: catalog.CodeThrottling, wire: "ThrottlingException", stream: "throttlingException"},
		{name: "model stream error", code: catalog.CodeModelStreamError, wire: "ModelStreamErrorException", stream: "modelStreamErrorException"},
		{name: "auth", code: catalog.CodeExpiredToken, wire: "ExpiredTokenException", stream: "expiredTokenException"},
		{name: "guide short name", code: catalog.CodeGuideServiceUnavailable, wire: "ServiceUnavailable", stream: "serviceUnavailable"},
		{name: "ftu arrives as not found", code: catalog.CodeFTUFormNotFilled, wire: "ResourceNotFoundException", stream: "resourceNotFoundException"},
		{name: "marketplace arrives as access denied", code: catalog.CodeMarketplaceAgreementPending, wire: "AccessDeniedException", stream: "accessDeniedException"},
		{name: "keel network code has none", code: catalog.CodeConnectionReset},
		{name: "stream stall has none", code: catalog.CodeStreamStalled},
		{name: "content filter has none", code: catalog.CodeContentFiltered},
		{name: "fallback has none", code: catalog.CodeTooManyRequests},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := catalog.Must(tt.code)
			if got := e.WireCode(); got != tt.wire {
				t.Errorf("WireCode() = %q, want %q", got, tt.wire)
			}
			if got := e.StreamName(); got != tt.stream {
				t.Errorf("StreamName() = %q, want %q", got, tt.stream)
			}
		})
	}
	// An entry built outside the table computes the same names.
	e := &catalog.Entry{Code: "ThrottlingException", Source: "bedrock-runtime"}
	if e.WireCode() != "ThrottlingException" || e.StreamName() != "throttlingException" {
		t.Errorf("out-of-table entry: WireCode %q StreamName %q", e.WireCode(), e.StreamName())
	}
}

// TestLookupSpellings pushes every entry through every spelling Lookup
// accepts.
func TestLookupSpellings(t *testing.T) {
	type spelling struct {
		name string
		key  func(e *catalog.Entry) string
	}
	spellings := []spelling{
		{name: "code", key: func(e *catalog.Entry) string { return e.Code }},
		{name: "lower", key: func(e *catalog.Entry) string { return strings.ToLower(e.Code) }},
		{name: "upper", key: func(e *catalog.Entry) string { return strings.ToUpper(e.Code) }},
		{name: "spaces", key: func(e *catalog.Entry) string { return "  " + e.Code + "\n" }},
		{name: "errortype suffix", key: func(e *catalog.Entry) string {
			return e.Code + ":http://internal.amazon.com/coral/com.amazon.bedrock/"
		}},
		{name: "namespace", key: func(e *catalog.Entry) string { return "com.amazonaws.bedrock#" + e.Code }},
		{name: "namespace and suffix", key: func(e *catalog.Entry) string {
			return "com.amazonaws.bedrockruntime#" + e.Code + ":http://internal.amazon.com/coral/"
		}},
	}
	for _, e := range catalog.All() {
		for _, s := range spellings {
			t.Run(e.Code+"/"+s.name, func(t *testing.T) {
				key := s.key(e)
				got, ok := catalog.Lookup(key)
				if !ok || got != e {
					t.Fatalf("Lookup(%q) = %v, %v; want %s", key, code(got), ok, e.Code)
				}
			})
		}
		for _, a := range e.Aliases {
			t.Run(e.Code+"/alias "+a, func(t *testing.T) {
				if got, ok := catalog.Lookup(a); !ok || got != e {
					t.Fatalf("Lookup(alias %q) = %v, %v; want %s", a, code(got), ok, e.Code)
				}
			})
		}
		if e.Refines == "" && e.StreamName() != "" {
			t.Run(e.Code+"/stream name", func(t *testing.T) {
				if got, ok := catalog.Lookup(e.StreamName()); !ok || got != e {
					t.Fatalf("Lookup(%q) = %v, %v; want %s", e.StreamName(), code(got), ok, e.Code)
				}
			})
		}
	}
}

func TestLookupTolerance(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" = not found
	}{
		{name: "missing Exception suffix", in: "ModelNotReady", want: catalog.CodeModelNotReady},
		{name: "missing suffix lower", in: "modelstreamerror", want: catalog.CodeModelStreamError},
		{name: "extra Exception suffix", in: "RequestExpiredException", want: catalog.CodeRequestExpired},
		{name: "short name is its own entry", in: "ServiceUnavailable", want: catalog.CodeGuideServiceUnavailable},
		{name: "cloudtrail spelling", in: "AccessDenied", want: catalog.CodeAccessDenied},
		{name: "query throttling", in: "Throttling", want: catalog.CodeThrottling},
		{name: "unknown operation", in: "com.amazon.coral.service#UnknownOperationException", want: catalog.CodeInvalidAction},
		{name: "stop reason", in: "content_filtered", want: catalog.CodeContentFiltered},
		{name: "empty", in: ""},
		{name: "only decorations", in: "#:"},
		{name: "only suffix", in: "Exception"},
		{name: "unknown", in: "FooBarException"},
		{name: "too long", in: strings.Repeat("A", 500)},
		{name: "non-ascii", in: "Thröttling"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := catalog.Lookup(tt.in)
			if tt.want == "" {
				if ok {
					t.Fatalf("Lookup(%q) = %s, want not found", tt.in, e.Code)
				}
				return
			}
			if !ok || e.Code != tt.want {
				t.Fatalf("Lookup(%q) = %v, %v; want %s", tt.in, code(e), ok, tt.want)
			}
		})
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "canonical", in: "ThrottlingException"},
		{name: "stream name", in: "throttlingException"},
		{name: "header with suffix", in: "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"},
		{name: "namespace", in: "com.amazonaws.bedrock#ModelNotReadyException"},
		{name: "no suffix", in: "ModelNotReady"},
		{name: "miss", in: "NoSuchCodeException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, func() { catalog.Lookup(tt.in) }); n != 0 {
				t.Errorf("Lookup(%q) allocates %.0f times", tt.in, n)
			}
		})
	}
}

func TestForStatus(t *testing.T) {
	tests := []struct {
		name   string
		status int
		want   string
	}{
		{name: "no response", status: 0, want: catalog.CodeUnknownNetworkError},
		{name: "negative", status: -1, want: catalog.CodeUnknownNetworkError},
		{name: "absurd", status: 1000, want: catalog.CodeUnknownNetworkError},
		{name: "redirect", status: 302, want: catalog.CodeUnknownClientError},
		{name: "bad request", status: 400, want: catalog.CodeUnknownClientError},
		{name: "forbidden", status: 403, want: catalog.CodeUnknownClientError},
		{name: "request timeout", status: 408, want: catalog.CodeUnknownServerError},
		{name: "too many requests", status: 429, want: catalog.CodeTooManyRequests},
		{name: "internal", status: 500, want: catalog.CodeUnknownServerError},
		{name: "bad gateway", status: 502, want: catalog.CodeUnknownServerError},
		{name: "gateway timeout", status: 504, want: catalog.CodeUnknownServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := catalog.ForStatus(tt.status); got.Code != tt.want {
				t.Errorf("ForStatus(%d) = %s, want %s", tt.status, got.Code, tt.want)
			}
		})
	}
	if e := catalog.ForStatus(503); e.Retry != catalog.Backoff || !e.Unhealthy {
		t.Errorf("ForStatus(503) must back off and count as unhealthy")
	}
	if e := catalog.ForStatus(404); e.Retry != catalog.Never || e.Unhealthy {
		t.Errorf("ForStatus(404) must never retry")
	}
}

func TestRefine(t *testing.T) {
	tests := []struct {
		name    string
		code    string
		message string
		want    string
	}{
		{name: "ftu form", code: catalog.CodeResourceNotFound,
			message: "Model use case details have not been submitted for this account. Fill out the Anthropic use case details form before using the model.",
			want:    catalog.CodeFTUFormNotFilled},
		{name: "plain not found", code: catalog.CodeResourceNotFound,
			message: "Could not resolve the foundation model from the provided model identifier.", want: catalog.CodeResourceNotFound},
		{name: "marketplace permissions", code: catalog.CodeAccessDenied,
			message: "Model access is denied due to IAM user or service role is not authorized to perform the required AWS Marketplace actions (aws-marketplace:ViewSubscriptions, aws-marketplace:Subscribe) to enable access to this model.",
			want:    catalog.CodeMarketplaceAgreementFailed},
		{name: "marketplace processing", code: catalog.CodeAccessDenied,
			message: "Your account is not authorized to access this model. Your AWS Marketplace SUBSCRIPTION FOR THIS MODEL IS STILL BEING PROCESSED",
			want:    catalog.CodeMPAgreementBeingCreated},
		{name: "plain access denied", code: catalog.CodeAccessDenied,
			message: "User: arn:aws:iam::123:user/x is not authorized to perform: bedrock:InvokeModel", want: catalog.CodeAccessDenied},
		{name: "empty message", code: catalog.CodeAccessDenied, want: catalog.CodeAccessDenied},
		{name: "entry without refinements", code: catalog.CodeThrottling,
			message: "model use case details have not been submitted", want: catalog.CodeThrottling},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := catalog.Refine(catalog.Must(tt.code), tt.message); got.Code != tt.want {
				t.Errorf("Refine(%s, %q) = %s, want %s", tt.code, tt.message, got.Code, tt.want)
			}
		})
	}
}

func TestMustPanicsOnUnknown(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), `"NoSuchCode"`) {
			t.Errorf("Must(unknown) recovered %v, want a panic naming the code", r)
		}
	}()
	catalog.Must("NoSuchCode")
}

func TestAllStableAndCopied(t *testing.T) {
	a, b := catalog.All(), catalog.All()
	if len(a) != len(b) || len(a) < 50 {
		t.Fatalf("All() lengths %d, %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("All() order differs at %d", i)
		}
	}
	a[0] = nil
	if catalog.All()[0] == nil {
		t.Fatal("All() returned the table itself")
	}
	if catalog.All()[0].Code != catalog.CodeAccessDenied {
		t.Errorf("All()[0] = %s, want the first bedrock-runtime exception", catalog.All()[0].Code)
	}
}

func TestAdvice(t *testing.T) {
	tests := []struct {
		name string
		code string
		want []string
	}{
		{name: "throttled", code: catalog.CodeThrottling, want: []string{"yes — slow down", "fewer tokens", "another model or region"}},
		{name: "backoff", code: catalog.CodeInternalServer, want: []string{"yes — transient"}},
		{name: "never", code: catalog.CodeValidation, want: []string{"no — "}},
		{name: "long wait", code: catalog.CodeMPAgreementBeingCreated, want: []string{"later", "15m0s"}},
		{name: "fallback", code: catalog.CodeResourceNotFound, want: []string{"not here", "another model or region"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := catalog.Must(tt.code).Advice()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Advice() = %q, missing %q", got, w)
				}
			}
		})
	}
	if got := catalog.Must(catalog.CodeValidation).Advice(); strings.Contains(got, "another model") {
		t.Errorf("Validation advice offers fallback: %q", got)
	}
}

// TestMatchesSDKModel checks the catalog against aws-sdk-go-v2's model of
// bedrock-runtime: every modeled exception has an entry with the model's
// HTTP status, and Streamable is set exactly for the exceptions an event
// stream can carry.
func TestMatchesSDKModel(t *testing.T) {
	var modeled []string
	for id, re := range bedrockruntime.TypeRegistry.Entries {
		if _, isErr := smithy.SchemaTrait[*traits.Error](re.Schema); !isErr {
			continue
		}
		name := id[strings.IndexByte(id, '#')+1:]
		modeled = append(modeled, name)
		t.Run(name, func(t *testing.T) {
			e, ok := catalog.Lookup(name)
			if !ok || e.Code != name {
				t.Fatalf("modeled exception %s has no entry", name)
			}
			h, ok := smithy.SchemaTrait[*traits.HTTPError](re.Schema)
			if !ok {
				t.Fatalf("%s has no httpError trait", name)
			}
			if e.Status != h.Code {
				t.Errorf("%s: catalog Status %d, SDK model %d", name, e.Status, h.Code)
			}
			if e.Source != "bedrock-runtime" {
				t.Errorf("%s: Source %q", name, e.Source)
			}
		})
	}
	sort.Strings(modeled)
	if len(modeled) != 12 {
		t.Errorf("SDK models %d exceptions (%v); the catalog was written for 12", len(modeled), modeled)
	}

	streamable := map[string]bool{}
	for _, union := range []*smithy.Schema{schemas.ConverseStreamOutput, schemas.ResponseStream} {
		for member, s := range union.Members() {
			if _, isErr := smithy.SchemaTrait[*traits.Error](s); isErr {
				streamable[member] = true
			}
		}
	}
	for _, e := range catalog.All() {
		if e.Source != "bedrock-runtime" {
			if e.Streamable {
				t.Errorf("%s: Streamable but not a modeled exception", e.Code)
			}
			continue
		}
		if e.Streamable != streamable[e.StreamName()] {
			t.Errorf("%s: Streamable=%v, SDK stream unions say %v", e.Code, e.Streamable, streamable[e.StreamName()])
		}
	}
	if len(streamable) != 6 {
		t.Errorf("SDK stream unions carry %d exceptions: %v", len(streamable), streamable)
	}
}

func BenchmarkLookup(b *testing.B) {
	benchmarks := []struct {
		name string
		in   string
	}{
		{name: "canonical", in: "ThrottlingException"},
		{name: "stream", in: "throttlingException"},
		{name: "header", in: "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"},
		{name: "miss", in: "NoSuchCodeException"},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				catalog.Lookup(bm.in)
			}
		})
	}
}

func code(e *catalog.Entry) string {
	if e == nil {
		return "<nil>"
	}
	return e.Code
}
