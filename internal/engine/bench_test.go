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

	"github.com/keel-run/keel/internal/admission"
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

// BenchmarkDoConverse measures one Converse call through the engine. The
// governed cases add the quota governor: the body's estimate, an admission
// that fits at once, and the settle from the reply's usage as its body is
// read.
func BenchmarkDoConverse(b *testing.B) {
	signed := aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""))
	for _, bc := range []struct {
		name  string
		creds aws.CredentialsProvider
		quota *admission.Quota // nil: no governor
	}{
		{"signed", signed, nil},
		{"unsigned", nil, nil},
		{"signed/governed", signed, &admission.Quota{TokensPerMinute: 1 << 40}},
		{"unsigned/governed", nil, &admission.Quota{TokensPerMinute: 1 << 40}},
		{"unsigned/governed-unknown-quota", nil, &admission.Quota{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			u, _ := url.Parse("http://127.0.0.1:1")
			var gov *admission.Governor
			if bc.quota != nil {
				var err error
				if gov, err = admission.New(admission.Options{Default: *bc.quota}); err != nil {
					b.Fatal(err)
				}
			}
			eng, err := New(Options{
				Endpoints:   attempt.FixedEndpoint{URL: u},
				Credentials: bc.creds,
				HTTPClient:  &http.Client{Transport: cannedTransport{body: `{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":5,"totalTokens":8}}`}},
				Governor:    gov,
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
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
