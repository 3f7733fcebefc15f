package engine

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keel-run/keel/internal/attempt"
)

// cannedTransport answers every request at once without a network, so the
// benchmark measures the engine (routing, breaker, budget, signing,
// classification, bookkeeping) and not a server.
type cannedTransport struct{ body string }

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(c.body)), Request: r}, nil
}

func BenchmarkDoConverse(b *testing.B) {
	for _, bc := range []struct {
		name  string
		creds aws.CredentialsProvider
	}{
		{"signed", aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""))},
		{"unsigned", nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			u, _ := url.Parse("http://127.0.0.1:1")
			eng, err := New(Options{
				Endpoints:   attempt.FixedEndpoint{URL: u},
				Credentials: bc.creds,
				HTTPClient:  &http.Client{Transport: cannedTransport{body: `{"stopReason":"end_turn"}`}},
			})
			if err != nil {
				b.Fatal(err)
			}
			call := &Call{Op: attempt.Converse, Model: m1, Body: []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`),
				Header: http.Header{"Content-Type": {"application/json"}}}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, _, err := eng.Do(ctx, call)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}
