package doctor

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	bedrocktypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// t0 is the fake time of the checks that read the clock.
var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// apiError is an AWS error with a code and message, as the SDK returns one.
func apiError(code, msg string) error {
	return &smithy.OperationError{ServiceID: "test", OperationName: "op", Err: &smithy.GenericAPIError{Code: code, Message: msg}}
}

// env is a fake environment.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// blocked waits until ctx ends, as a service that never answers.
func blocked(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

type fakeSTS struct{ err error }

func (f fakeSTS) GetCallerIdentity(ctx context.Context, _ *sts.GetCallerIdentityInput, _ ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error) {
	if f.err == errBlock {
		return nil, blocked(ctx)
	}
	if f.err != nil {
		return nil, f.err
	}
	return &sts.GetCallerIdentityOutput{Account: aws.String("123456789012"), Arn: aws.String("arn:aws:iam::123456789012:user/me")}, nil
}

// errBlock makes a fake block until its context ends.
var errBlock = errors.New("block")

type fakeBedrock struct {
	model                *bedrocktypes.FoundationModelDetails
	modelErr, profileErr error
}

func (f fakeBedrock) GetFoundationModel(ctx context.Context, in *bedrock.GetFoundationModelInput, _ ...func(*bedrock.Options)) (*bedrock.GetFoundationModelOutput, error) {
	if f.modelErr == errBlock {
		return nil, blocked(ctx)
	}
	if f.modelErr != nil {
		return nil, f.modelErr
	}
	return &bedrock.GetFoundationModelOutput{ModelDetails: f.model}, nil
}

func (f fakeBedrock) GetInferenceProfile(ctx context.Context, in *bedrock.GetInferenceProfileInput, _ ...func(*bedrock.Options)) (*bedrock.GetInferenceProfileOutput, error) {
	if f.profileErr == errBlock {
		return nil, blocked(ctx)
	}
	if f.profileErr != nil {
		return nil, f.profileErr
	}
	return &bedrock.GetInferenceProfileOutput{InferenceProfileName: aws.String("US X"), Type: "SYSTEM_DEFINED", Status: "ACTIVE"}, nil
}

type fakeRuntime struct{ err error }

func (f fakeRuntime) CountTokens(ctx context.Context, _ *bedrockruntime.CountTokensInput, _ ...func(*bedrockruntime.Options)) (*bedrockruntime.CountTokensOutput, error) {
	if f.err == errBlock {
		return nil, blocked(ctx)
	}
	if f.err != nil {
		return nil, f.err
	}
	return &bedrockruntime.CountTokensOutput{InputTokens: aws.Int32(3)}, nil
}

type fakeQuotas struct {
	out *servicequotas.ListServiceQuotasOutput
	err error
}

func (f fakeQuotas) ListServiceQuotas(ctx context.Context, _ *servicequotas.ListServiceQuotasInput, _ ...func(*servicequotas.Options)) (*servicequotas.ListServiceQuotasOutput, error) {
	if f.err == errBlock {
		return nil, blocked(ctx)
	}
	if f.err != nil {
		return nil, f.err
	}
	return f.out, nil
}

// blockingTransport never answers.
type blockingTransport struct{}

func (blockingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, blocked(r.Context())
}

// staticCreds is a provider of fixed credentials, or of err.
func staticCreds(c aws.Credentials, err error) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
		if err == errBlock {
			return aws.Credentials{}, blocked(ctx)
		}
		return c, err
	})
}

// newRun is a run over s with its defaults filled, as Run makes it, the
// clock at t0 unless s sets one.
func newRun(s *Setup) *run {
	if s.Now == nil {
		s.Now = func() time.Time { return t0 }
	}
	if s.Getenv == nil {
		s.Getenv = env{}.get
	}
	if s.Sysctl == nil {
		s.Sysctl = func(string) (string, error) { return "", errors.New("no sysctl in tests") }
	}
	r := &run{Setup: s}
	r.fill()
	return r
}

// one returns the single result of rs, failing the test otherwise.
func one(t *testing.T, rs []Result) Result {
	t.Helper()
	if len(rs) != 1 {
		t.Fatalf("got %d results, want 1: %+v", len(rs), rs)
	}
	return rs[0]
}

// expect checks a result's status, code and that Seen and Fix mention
// every fragment of want.
func expect(t *testing.T, res Result, status Status, code string, want ...string) {
	t.Helper()
	if res.Status != status || res.Code != code {
		t.Errorf("%s: status %s code %q, want %s %q (seen %q)", res.Check, res.Status, res.Code, status, code, res.Seen)
	}
	if (status == Warn || status == Fail) && res.Fix == "" {
		t.Errorf("%s: a %s without a fix", res.Check, status)
	}
	for _, w := range want {
		if !strings.Contains(res.Seen+" | "+res.Fix, w) {
			t.Errorf("%s: %q | %q does not mention %q", res.Check, res.Seen, res.Fix, w)
		}
	}
}
