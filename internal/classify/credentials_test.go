package classify_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
)

// TestNoCredentialsFailsFast (issue 15, item 8): a call that found no
// credentials is CredentialsUnavailable, even when the last source tried
// (the instance metadata service) failed with a network error or an HTTP
// status of its own: that status is the metadata service's, not Bedrock's,
// and no attempt was made.
func TestNoCredentialsFailsFast(t *testing.T) {
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	defer forbidden.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()
	bedrock := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("Bedrock received a request without credentials")
	}))
	defer bedrock.Close()

	viaIMDS := func(endpoint string) func() error {
		return func() error {
			c := imds.New(imds.Options{Endpoint: endpoint, Retryer: aws.NopRetryer{}})
			creds := aws.NewCredentialsCache(ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = c }))
			return converse(context.Background(), newClient(bedrock.URL, func(o *bedrockruntime.Options) { o.Credentials = creds }))
		}
	}
	unreachable := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}
	tests := []struct {
		name string
		err  func() error
	}{
		{name: "metadata service answers 403", err: viaIMDS(forbidden.URL)},
		{name: "metadata service refuses", err: viaIMDS(refused)},
		{name: "network unreachable under the credentials", err: func() error {
			return fmt.Errorf("attempt: failed to retrieve credentials: %w", fmt.Errorf("failed to refresh cached credentials, %w", unreachable))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err()
			r := classify.FromError(err)
			if r.Entry == nil || r.Entry.Code != catalog.CodeCredentialsUnavailable {
				t.Fatalf("FromError(%v) = %s, want %s", err, r, catalog.CodeCredentialsUnavailable)
			}
			if r.Status != 0 {
				t.Errorf("Status %d: no Bedrock response exists", r.Status)
			}
			if got, ok := classify.FromText(err.Error()); !ok || got.Entry.Code != catalog.CodeCredentialsUnavailable {
				t.Errorf("FromText(%q) = %s", err.Error(), name(got.Entry))
			}
		})
	}
	// The caller's cancel still wins: it is why retrieval stopped.
	if r := classify.FromError(fmt.Errorf("failed to refresh cached credentials, %w", context.Canceled)); r.Entry.Code != catalog.CodeContextCanceled {
		t.Errorf("cancelled retrieval = %s", r)
	}
}
