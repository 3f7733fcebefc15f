package classify_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
)

// TestRedirectNotFollowed (issue 15, item 6): a 3xx is never a usable
// answer, and whatever code the redirecting server claims, it is an
// UnexpectedRedirect: not retried on the same target, not counted against
// its health, and found again by keel explain from the error's text.
func TestRedirectNotFollowed(t *testing.T) {
	loc := "http://127.0.0.1:4601/model/m/converse"
	for _, status := range []int{300, 301, 302, 303, 304, 307, 308} {
		tests := []struct {
			name   string
			header http.Header
			body   string
		}{
			{name: "bare", header: http.Header{"Location": {loc}}},
			{name: "html page", header: http.Header{"Location": {loc}}, body: "<html><body>Moved</body></html>"},
			{name: "claims throttling", header: http.Header{"Location": {loc}, "X-Amzn-Errortype": {"ThrottlingException"}},
				body: `{"message":"Too many tokens"}`},
			{name: "no location", header: http.Header{}},
		}
		for _, tt := range tests {
			t.Run(http.StatusText(status)+"/"+tt.name, func(t *testing.T) {
				r := classify.FromHTTP(status, tt.header, []byte(tt.body))
				if r.Entry == nil || r.Entry.Code != catalog.CodeUnexpectedRedirect {
					t.Fatalf("FromHTTP(%d) = %s, want %s", status, r, catalog.CodeUnexpectedRedirect)
				}
				if r.Status != status {
					t.Errorf("Status %d, want %d", r.Status, status)
				}
				if r.Code != "" {
					t.Errorf("Code %q: a redirect's claimed code must not be kept", r.Code)
				}
				if tt.header.Get("Location") != "" && !strings.Contains(r.Message, loc) {
					t.Errorf("Message %q does not name the Location", r.Message)
				}
				if r.Entry.Retryable() || r.Entry.Unhealthy {
					t.Errorf("retryable %v, unhealthy %v: a redirect is neither", r.Entry.Retryable(), r.Entry.Unhealthy)
				}
				// What keel prints, and what the SDK prints, both explained.
				for _, text := range []string{
					"keel: " + r.String() + " after 1 attempt(s), last on m@us-east-1",
					"operation error Bedrock Runtime: Converse, https response error StatusCode: " + strconv.Itoa(status) +
						", RequestID: , api error UnknownError: UnknownError",
				} {
					got, ok := classify.FromText(text)
					if !ok || got.Entry.Code != catalog.CodeUnexpectedRedirect {
						t.Errorf("FromText(%q) = %s, want %s", text, name(got.Entry), catalog.CodeUnexpectedRedirect)
					}
				}
			})
		}
	}
}
