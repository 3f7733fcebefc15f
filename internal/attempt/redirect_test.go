package attempt

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
)

// TestRedirectNotFollowed (issue 15, item 6): whatever client the caller
// gives the Sender, an attempt stops at a redirect. The signed headers, the
// session token and the prompt never reach the redirect's target, and the
// 3xx comes back for the engine to classify.
func TestRedirectNotFollowed(t *testing.T) {
	follow := func(*http.Request, []*http.Request) error { return nil }
	clients := []struct {
		name   string
		client *http.Client
	}{
		{name: "nil client", client: nil},
		{name: "caller's zero client", client: &http.Client{}},
		{name: "caller's client that follows", client: &http.Client{CheckRedirect: follow}},
	}
	for _, status := range []int{301, 302, 303, 307, 308} {
		for _, c := range clients {
			t.Run(http.StatusText(status)+"/"+c.name, func(t *testing.T) {
				var (
					mu   sync.Mutex
					seen []http.Header
				)
				other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					seen = append(seen, r.Header.Clone())
					mu.Unlock()
					w.Write([]byte(`{"output":{"message":{"role":"assistant","content":[{"text":"not the model"}]}}}`))
				}))
				defer other.Close()
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, other.URL+r.URL.Path, status)
				}))
				defer srv.Close()
				u, _ := url.Parse(srv.URL)
				s := &Sender{Client: c.client, Endpoints: EndpointsFor(u),
					Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "SESSION-TOKEN")}
				resp, err := s.Send(context.Background(), &Request{Op: Converse, Target: Target{Model: "m", Region: "us-east-1"},
					Body: []byte(`{"messages":[{"role":"user","content":[{"text":"secret prompt"}]}]}`)})
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != status {
					t.Errorf("status %d, want the redirect's %d", resp.StatusCode, status)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, h := range seen {
					t.Errorf("the redirect's target received a request (Authorization %q, X-Amz-Security-Token %q)",
						h.Get("Authorization"), h.Get("X-Amz-Security-Token"))
				}
			})
		}
	}
}
