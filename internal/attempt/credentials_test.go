package attempt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
)

// TestNoCredentialsFailsFast (issue 15, item 8): an attempt whose
// credentials cannot be retrieved is not sent, and its error reads as
// CredentialsUnavailable (never retried) whatever the provider's error
// wraps; the caller's cancel stays a cancel.
func TestNoCredentialsFailsFast(t *testing.T) {
	unreachable := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "a provider's own words", err: errors.New("no credentials in the vault"), want: catalog.CodeCredentialsUnavailable},
		{name: "a network error under the provider", err: fmt.Errorf("sso: %w", unreachable), want: catalog.CodeCredentialsUnavailable},
		{name: "the caller cancelled", err: context.Canceled, want: catalog.CodeContextCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Sender{Endpoints: FixedEndpoint{URL: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}}, Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{}, tt.err
			})}
			resp, err := s.Send(context.Background(), &Request{Op: Converse, Target: Target{Model: "m", Region: "us-east-1"}})
			if resp != nil || err == nil {
				t.Fatalf("Send = %v, %v; want no response and an error", resp, err)
			}
			if r := classify.FromError(err); r.Entry.Code != tt.want {
				t.Errorf("FromError(%v) = %s, want %s", err, r, tt.want)
			}
		})
	}
}
