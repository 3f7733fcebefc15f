package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"testing/synctest"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/retry"
	"github.com/keel-run/keel/internal/route"
)

// clientTimeout fails every request as http.Client.Timeout does: an error
// that matches context.DeadlineExceeded though no caller's context ended.
type clientTimeout struct{}

func (clientTimeout) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("net/http: request canceled (Client.Timeout exceeded while awaiting headers): %w", context.DeadlineExceeded)
}

// TestCancelWhileWaitingForQuotaAfterClientTimeout: a client timeout in
// us-east-1 falls back to us-west-2, whose quota is full; the caller cancels
// while the call waits there. The error is the last upstream failure, and
// says the caller's context ended it (a failure that merely matches
// context.DeadlineExceeded is not the caller's).
func TestCancelWhileWaitingForQuotaAfterClientTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		west := admission.Target{Model: m1, Region: "us-west-2"}
		gov, err := admission.New(admission.Options{Default: admission.Quota{TokensPerMinute: 60000}})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse("http://127.0.0.1:1")
		eng, err := New(Options{Endpoints: attempt.FixedEndpoint{URL: u}, Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
			HTTPClient: &http.Client{Transport: clientTimeout{}}, Region: "us-east-1", Clock: clock.Real{}, Governor: gov,
			Routes: route.New("us-east-1", map[string][]attempt.Target{m1: {{Model: m1, Region: "us-west-2"}}}),
			Retry:  retry.Policy{MaxAttempts: 1}})
		if err != nil {
			t.Fatal(err)
		}
		fill, err := gov.Admit(context.Background(), west, admission.Estimate{MaxTokens: 60000}, Interactive)
		if err != nil {
			t.Fatal(err)
		}
		defer fill.Cancel()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, _, err := eng.Do(ctx, &Call{Op: attempt.Converse, Model: m1, Body: quotaBody("x", 100)})
			done <- err
		}()
		synctest.Wait() // the call waits in us-west-2's queue
		cancel()
		err = <-done
		var ke *Error
		if !errors.As(err, &ke) || ke.Entry.Code != catalog.CodeClientTimeout || !errors.Is(err, context.Canceled) ||
			ke.GaveUp != "the context ended while waiting for quota" {
			t.Fatalf("err %v: want the ClientTimeout, ended by the caller's cancellation while waiting for quota", err)
		}
	})
}
