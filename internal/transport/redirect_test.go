package transport

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// redirectPair starts a server that answers every request with status and a
// Location on a second 127.0.0.1 server, and returns the first's URL and a
// count of the requests the second received.
func redirectPair(t *testing.T, status int) (string, *atomic.Int64) {
	t.Helper()
	var other atomic.Int64
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.Add(1)
		w.Write([]byte(`{"output":{"message":{"role":"assistant","content":[{"text":"not the model"}]}}}`))
	}))
	t.Cleanup(b.Close)
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, b.URL+r.URL.Path, status)
	}))
	t.Cleanup(a.Close)
	return a.URL, &other
}

// TestRedirectNotFollowed (issue 15, item 6): keel's client never follows a
// redirect, so the signed headers and the prompt never reach another
// server; the 3xx itself comes back for the caller to treat as an error.
func TestRedirectNotFollowed(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			url, other := redirectPair(t, status)
			c := NewClient(Options{})
			defer c.CloseIdleConnections()
			req, _ := http.NewRequest(http.MethodPost, url+"/model/m/converse", strings.NewReader(`{"messages":[]}`))
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request")
			req.Header.Set("X-Amz-Security-Token", "secret-token")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != status {
				t.Errorf("status %d, want the redirect's %d", resp.StatusCode, status)
			}
			if n := other.Load(); n != 0 {
				t.Errorf("the redirect's target received %d request(s)", n)
			}
		})
	}
}

// TestWithoutRedirects: a caller's client is copied, not modified, and the
// copy stops at the first redirect whatever CheckRedirect the caller set.
func TestWithoutRedirects(t *testing.T) {
	follow := func(*http.Request, []*http.Request) error { return nil }
	tests := []struct {
		name string
		in   *http.Client
	}{
		{name: "nil is http.DefaultClient", in: nil},
		{name: "zero client", in: &http.Client{}},
		{name: "caller follows redirects", in: &http.Client{CheckRedirect: follow}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, other := redirectPair(t, http.StatusTemporaryRedirect)
			c := WithoutRedirects(tt.in)
			if c == tt.in || c == http.DefaultClient {
				t.Fatal("WithoutRedirects returned the caller's client, not a copy")
			}
			if tt.in != nil && tt.in.CheckRedirect != nil && tt.in.CheckRedirect(nil, nil) != nil {
				t.Fatal("the caller's client was modified")
			}
			resp, err := c.Post(url, "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusTemporaryRedirect || other.Load() != 0 {
				t.Errorf("status %d, %d request(s) at the redirect's target; want 307 and none", resp.StatusCode, other.Load())
			}
		})
	}
}
