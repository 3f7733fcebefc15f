package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/catalog"
)

func explain(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(append([]string{"explain"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// TestExplainIssueCodes is the acceptance check: `keel explain` answers for
// every code the issue lists with the right status and retry class.
func TestExplainIssueCodes(t *testing.T) {
	tests := []struct {
		name   string
		input  string
		code   string
		status int
		retry  string
	}{
		{name: "AccessDeniedException", input: "AccessDeniedException", code: "AccessDeniedException", status: 403, retry: "fallback"},
		{name: "FTUFormNotFilled", input: "FTUFormNotFilled", code: "FTUFormNotFilled", status: 404, retry: "never"},
		{name: "IncompleteSignature", input: "IncompleteSignature", code: "IncompleteSignature", status: 400, retry: "never"},
		{name: "InternalFailure", input: "InternalFailure", code: "InternalFailure", status: 500, retry: "backoff"},
		{name: "InvalidAction", input: "InvalidAction", code: "InvalidAction", status: 400, retry: "never"},
		{name: "InvalidClientTokenId", input: "InvalidClientTokenId", code: "InvalidClientTokenId", status: 403, retry: "never"},
		{name: "Marketplace failed", input: "MarketplaceAgreementFailed", code: "MarketplaceAgreementFailed", status: 403, retry: "never"},
		{name: "Marketplace pending", input: "MarketplaceAgreementPending", code: "MarketplaceAgreementPending", status: 403, retry: "long-wait"},
		{name: "MPAgreementBeingCreated", input: "MPAgreementBeingCreated", code: "MPAgreementBeingCreated", status: 403, retry: "long-wait"},
		{name: "NotAuthorized", input: "NotAuthorized", code: "NotAuthorized", status: 400, retry: "never"},
		{name: "RequestExpired", input: "RequestExpired", code: "RequestExpired", status: 400, retry: "never"},
		{name: "ServiceUnavailable", input: "ServiceUnavailable", code: "ServiceUnavailable", status: 503, retry: "backoff"},
		{name: "ThrottlingException", input: "ThrottlingException", code: "ThrottlingException", status: 429, retry: "throttled"},
		{name: "ValidationError", input: "ValidationError", code: "ValidationError", status: 400, retry: "never"},
		{name: "ResourceNotFound", input: "ResourceNotFound", code: "ResourceNotFound", status: 404, retry: "fallback"},
		{name: "idle connection", input: "IdleConnectionDropped", code: "IdleConnectionDropped", status: 0, retry: "backoff"},
		{name: "ConflictException", input: "ConflictException", code: "ConflictException", status: 400, retry: "never"},
		{name: "InternalServerException", input: "InternalServerException", code: "InternalServerException", status: 500, retry: "backoff"},
		{name: "ModelErrorException", input: "ModelErrorException", code: "ModelErrorException", status: 424, retry: "never"},
		{name: "ModelNotReadyException", input: "ModelNotReadyException", code: "ModelNotReadyException", status: 429, retry: "backoff"},
		{name: "ModelStreamErrorException", input: "ModelStreamErrorException", code: "ModelStreamErrorException", status: 424, retry: "backoff"},
		{name: "ModelTimeoutException", input: "ModelTimeoutException", code: "ModelTimeoutException", status: 408, retry: "backoff"},
		{name: "ResourceNotFoundException", input: "ResourceNotFoundException", code: "ResourceNotFoundException", status: 404, retry: "fallback"},
		{name: "ServiceQuotaExceededException", input: "ServiceQuotaExceededException", code: "ServiceQuotaExceededException", status: 400, retry: "fallback"},
		{name: "ServiceUnavailableException", input: "ServiceUnavailableException", code: "ServiceUnavailableException", status: 503, retry: "backoff"},
		{name: "ValidationException", input: "ValidationException", code: "ValidationException", status: 400, retry: "never"},
		{name: "UnrecognizedClientException", input: "UnrecognizedClientException", code: "UnrecognizedClientException", status: 403, retry: "never"},
		{name: "InvalidSignatureException", input: "InvalidSignatureException", code: "InvalidSignatureException", status: 403, retry: "never"},
		{name: "ExpiredTokenException", input: "ExpiredTokenException", code: "ExpiredTokenException", status: 403, retry: "never"},
		{name: "connection refused text", input: "dial tcp 127.0.0.1:443: connect: connection refused", code: "ConnectionRefused", retry: "backoff"},
		{name: "connection reset text", input: "read: connection reset by peer", code: "ConnectionReset", retry: "backoff"},
		{name: "dns text", input: "lookup bedrock-runtime.xx-1.amazonaws.com: no such host", code: "DNSNotFound", retry: "fallback"},
		{name: "tls text", input: "x509: certificate signed by unknown authority", code: "TLSFailure", retry: "never"},
		{name: "timeout text", input: "Client.Timeout exceeded while awaiting headers", code: "ClientTimeout", retry: "backoff"},
		{name: "truncated", input: "StreamTruncated", code: "StreamTruncated", retry: "backoff"},
		{name: "corrupt", input: "StreamCorrupt", code: "StreamCorrupt", retry: "backoff"},
		{name: "stalled", input: "StreamStalled", code: "StreamStalled", retry: "backoff"},
		{name: "canceled text", input: "context canceled", code: "ContextCanceled", retry: "never"},
		{name: "deadline text", input: "context deadline exceeded", code: "DeadlineExceeded", retry: "never"},
		{name: "issue's pasted message", input: "operation error Bedrock Runtime: Converse, https response error StatusCode: 429, RequestID: 1b2c..., ThrottlingException: Too many tokens, please wait before trying again.",
			code: "ThrottlingException", status: 429, retry: "throttled"},
		{name: "stream exception keeps its status", input: "modelStreamErrorException", code: "ModelStreamErrorException", status: 424, retry: "backoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := explain("--json", tt.input)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			var got explainJSON
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, out)
			}
			if got.Code != tt.code || got.Status != tt.status || got.Retry != tt.retry {
				t.Errorf("got %s %d %s, want %s %d %s", got.Code, got.Status, got.Retry, tt.code, tt.status, tt.retry)
			}
			// The human form says the same.
			code, out, _ = explain(strings.Fields(tt.input)...)
			if code != 0 || !strings.HasPrefix(out, tt.code+"  (") {
				t.Errorf("human output (exit %d) starts %q", code, firstLineOf(out))
			}
		})
	}
}

// TestExplainEveryEntry: every entry answers by its code, in lower case,
// and (when it has one) by a pasted SDK message carrying its wire code.
func TestExplainEveryEntry(t *testing.T) {
	for _, e := range catalog.All() {
		inputs := []string{e.Code, strings.ToLower(e.Code)}
		if e.WireCode() != "" {
			inputs = append(inputs, fmt.Sprintf("operation error Bedrock Runtime: InvokeModel, https response error StatusCode: %d, RequestID: abc-123, %s: %s",
				e.Status, e.WireCode(), e.DefaultMessage))
		}
		for i, in := range inputs {
			t.Run(fmt.Sprintf("%s/%d", e.Code, i), func(t *testing.T) {
				code, out, errs := explain(in)
				if code != 0 {
					t.Fatalf("explain %q: exit %d, stderr %q", in, code, errs)
				}
				want := []string{e.Code + "  (", "retry:   ", "cause:   ", "fix:\n  1. ", "source:  " + e.Source}
				if e.Status != 0 {
					want = append(want, fmt.Sprintf("(HTTP %d, %s)", e.Status, e.Category))
				}
				if i == 2 {
					want = append(want, "request abc-123")
				}
				for _, w := range want {
					if !strings.Contains(out, w) {
						t.Errorf("output lacks %q:\n%s", w, out)
					}
				}
			})
		}
	}
}

func TestExplainJSONShape(t *testing.T) {
	code, out, _ := explain("--json", "operation error Bedrock Runtime: Converse, https response error StatusCode: 429, RequestID: r-1, ThrottlingException: slow down")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"advice", "aliases", "category", "cause", "code", "defaultMessage", "fallbackOk", "fix", "match",
		"retry", "retryable", "source", "status", "streamName", "summary", "unhealthy", "waitSeconds", "wireCode"}
	if got := keys(m); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("keys = %v\nwant   %v", got, want)
	}
	var match map[string]any
	json.Unmarshal(m["match"], &match)
	if match["code"] != "ThrottlingException" || match["status"] != 429.0 || match["requestId"] != "r-1" || match["message"] != "slow down" {
		t.Errorf("match = %v", match)
	}
}

func TestExplainNotFound(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		suggestion  string // "" = none expected
		jsonOut     bool
		stdoutEmpty bool
	}{
		{name: "typo", args: []string{"throtling"}, suggestion: "ThrottlingException", stdoutEmpty: true},
		{name: "typo json", args: []string{"--json", "ModelNotReadyExcepton"}, suggestion: "ModelNotReadyException", jsonOut: true},
		{name: "nothing close", args: []string{"banana", "bread"}, stdoutEmpty: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := explain(tt.args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			if !strings.Contains(errs, "no catalog entry matches") {
				t.Errorf("stderr = %q", errs)
			}
			if tt.suggestion != "" && !strings.Contains(errs, "did you mean: "+tt.suggestion) {
				t.Errorf("stderr lacks suggestion %s: %q", tt.suggestion, errs)
			}
			if tt.suggestion == "" && strings.Contains(errs, "did you mean") {
				t.Errorf("unexpected suggestion: %q", errs)
			}
			if tt.stdoutEmpty && out != "" {
				t.Errorf("stdout = %q", out)
			}
			if tt.jsonOut {
				var nf explainNotFound
				if err := json.Unmarshal([]byte(out), &nf); err != nil || len(nf.Suggestions) == 0 || nf.Suggestions[0] != tt.suggestion {
					t.Errorf("stdout %q (%v)", out, err)
				}
			}
		})
	}
}

func TestExplainUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{name: "no arguments", args: nil, want: 2},
		{name: "blank argument", args: []string{"  "}, want: 2},
		{name: "unknown flag", args: []string{"--verbose", "ThrottlingException"}, want: 2},
		{name: "list with a code", args: []string{"--list", "ThrottlingException"}, want: 2},
		{name: "stdin and arguments", args: []string{"-", "ThrottlingException"}, want: 2},
		{name: "empty after --", args: []string{"--"}, want: 2},
		{name: "help", args: []string{"-h"}, want: 0},
		{name: "text after -- may start with a dash", args: []string{"--", "-bash:", "ThrottlingException"}, want: 0},
		{name: "flags inside pasted text are text", args: []string{"ValidationException:", "--model", "must", "be", "set"}, want: 0},
		{name: "json after the text", args: []string{"ThrottlingException", "--json"}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, errs := explain(tt.args...); code != tt.want {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.want, errs)
			}
		})
	}
}

func TestExplainStdin(t *testing.T) {
	old := explainStdin
	defer func() { explainStdin = old }()
	explainStdin = strings.NewReader("An error occurred (AccessDeniedException) when calling the Converse operation: Your account is not authorized to access this model. Your AWS Marketplace subscription for this model is still being processed.\n")
	code, out, errs := explain("--json", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got explainJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Code != catalog.CodeMPAgreementBeingCreated || got.WaitSeconds != 900 || got.Match.Code != "AccessDeniedException" {
		t.Errorf("got %s wait %v match code %q", got.Code, got.WaitSeconds, got.Match.Code)
	}
}

func TestExplainBareStatus(t *testing.T) {
	code, out, _ := explain("--json", "429")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var got explainJSON
	json.Unmarshal([]byte(out), &got)
	if got.Code != catalog.CodeTooManyRequests || got.Match == nil ||
		strings.Join(got.Match.SameStatus, ",") != "ModelNotReadyException,ThrottlingException" {
		t.Errorf("got %s, same status %v", got.Code, got.Match)
	}
}

func TestExplainList(t *testing.T) {
	code, out, _ := explain("--list")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	all := catalog.All()
	if len(lines) != len(all)+1 || !strings.HasPrefix(lines[0], "CODE") {
		t.Fatalf("%d lines for %d entries; header %q", len(lines), len(all), lines[0])
	}
	for i, e := range all {
		if f := strings.Fields(lines[i+1]); f[0] != e.Code || f[3] != string(e.Retry) {
			t.Errorf("line %d = %q, want %s ... %s", i+1, lines[i+1], e.Code, e.Retry)
		}
	}

	code, out, _ = explain("--list", "--json")
	if code != 0 {
		t.Fatalf("--json exit %d", code)
	}
	var arr []explainJSON
	if err := json.Unmarshal([]byte(out), &arr); err != nil {
		t.Fatal(err)
	}
	if len(arr) != len(all) {
		t.Fatalf("%d JSON entries, want %d", len(arr), len(all))
	}
	for i, e := range all {
		if arr[i].Code != e.Code || arr[i].Status != e.Status || arr[i].Match != nil || len(arr[i].Fix) != len(e.Fix) {
			t.Errorf("entry %d = %+v", i, arr[i])
		}
	}
}

func TestWriteExplanation(t *testing.T) {
	var b bytes.Buffer
	writeExplanation(&b, catalog.Must(catalog.CodeModelNotReady))
	out := b.String()
	if !strings.HasPrefix(out, "ModelNotReadyException  (HTTP 429, model)") || strings.Contains(out, "seen:") {
		t.Errorf("writeExplanation:\n%s", out)
	}
}

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestCatalogDocListsEveryEntry keeps docs/catalog.md's copy of the catalog
// equal to `keel explain --list`.
func TestCatalogDocListsEveryEntry(t *testing.T) {
	doc, err := os.ReadFile("../../docs/catalog.md")
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := explain("--list")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(string(doc), "```\n"+out+"```\n") {
		t.Fatal("docs/catalog.md's listing differs from `keel explain --list`: paste the command's output into its code block")
	}
}
