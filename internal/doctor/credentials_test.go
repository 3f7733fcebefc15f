package doctor

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/keel-run/keel/internal/catalog"
)

func TestCredentialsSource(t *testing.T) {
	long := aws.Credentials{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "s", Source: "EnvConfigCredentials"}
	session := func(left time.Duration) aws.Credentials {
		return aws.Credentials{AccessKeyID: "ASIAIOSFODNN7EXAMPLE", SecretAccessKey: "s", SessionToken: "t", Source: "SSOProvider",
			CanExpire: true, Expires: t0.Add(left)}
	}
	tests := []struct {
		name     string
		creds    aws.Credentials
		err      error
		endpoint string
		emulated bool
		status   Status
		code     string
		want     []string
	}{
		{name: "long-term", creds: long, status: Pass, want: []string{"long-term key AKIA…MPLE from EnvConfigCredentials", "do not expire"}},
		{name: "an hour left", creds: session(time.Hour), status: Pass, want: []string{"temporary key", "SSOProvider", "in 1h0m0s"}},
		{name: "minutes left", creds: session(5 * time.Minute), status: Warn, want: []string{"expire in 5m0s", "renew"}},
		{name: "expired", creds: session(-time.Minute), status: Fail, code: catalog.CodeExpiredToken, want: []string{"expired at 2026-12-03T11:59:00Z"}},
		{name: "none on AWS", err: errors.New("failed to refresh cached credentials, no EC2 IMDS role found"), status: Fail,
			code: catalog.CodeCredentialsUnavailable, want: []string{"no EC2 IMDS role found"}},
		{name: "none for another endpoint", err: errors.New("nothing"), endpoint: "https://gw.example.com", status: Warn, code: catalog.CodeCredentialsUnavailable},
		{name: "none for the emulator", err: errors.New("nothing"), endpoint: "http://127.0.0.1:4566", emulated: true, status: Pass, want: []string{"emulator takes any"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRun(&Setup{Endpoint: tt.endpoint, Emulated: tt.emulated, AWS: aws.Config{Credentials: staticCreds(tt.creds, tt.err)}})
			rs := r.credentials(context.Background())
			expect(t, rs[0], tt.status, tt.code, tt.want...)
		})
	}
}

// TestCredentialsTimeBound: a chain that never answers (the instance
// metadata service off an instance) is given up after CredentialsTimeout.
func TestCredentialsTimeBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRun(&Setup{AWS: aws.Config{Credentials: staticCreds(aws.Credentials{}, errBlock)}, Now: time.Now})
		start := time.Now()
		rs := r.credentials(context.Background())
		if took := time.Since(start); took != DefaultCredentialsTimeout {
			t.Errorf("took %v, want %v", took, DefaultCredentialsTimeout)
		}
		expect(t, rs[0], Fail, catalog.CodeCredentialsUnavailable, "found nothing within 5s")
	})
}

// shortTermKey builds a short-term Bedrock API key as
// aws-bedrock-token-generator does: a presigned URL, base64.
func shortTermKey(region string, signed time.Time, expires time.Duration) string {
	u := "bedrock.amazonaws.com/?Action=CallWithBearerToken&X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F" + signed.Format("20060102") + "%2F" + region + "%2Fbedrock%2Faws4_request" +
		"&X-Amz-Date=" + signed.Format("20060102T150405Z") + "&X-Amz-Expires=" + strconv.Itoa(int(expires/time.Second)) +
		"&X-Amz-SignedHeaders=host&X-Amz-Signature=0123abcd&Version=1"
	return shortTermPrefix + base64.StdEncoding.EncodeToString([]byte(u))
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name     string
		token    string
		endpoint string
		status   Status
		code     string
		want     []string
	}{
		{name: "unset", status: Pass, want: []string{"not set"}},
		{name: "short-term here", token: shortTermKey("us-east-1", t0.Add(-time.Hour), 12*time.Hour), status: Warn,
			want: []string{"short-term key valid in us-east-1 until 2026-12-03T23:00:00Z", "instead of a SigV4 signature"}},
		{name: "short-term elsewhere", token: shortTermKey("us-west-2", t0.Add(-time.Hour), 12*time.Hour), status: Fail,
			code: catalog.CodeUnrecognizedClient, want: []string{"valid in us-west-2 only, not in us-east-1"}},
		{name: "short-term expired", token: shortTermKey("us-east-1", t0.Add(-13*time.Hour), 12*time.Hour), status: Fail,
			code: catalog.CodeExpiredToken, want: []string{"expired at 2026-12-03T11:00:00Z"}},
		{name: "long-term", token: "ABSKQmVkcm9ja0FQSUtleS1hYmM6c2VjcmV0", status: Warn, want: []string{"long-term key"}},
		{name: "garbage", token: "hunter2", status: Warn, want: []string{"not a key format doctor knows"}},
		{name: "not base64", token: shortTermPrefix + "!!!", status: Warn, want: []string{"not base64"}},
		{name: "plain HTTP", token: "ABSKxyz", endpoint: "http://127.0.0.1:4566", status: Fail, code: catalog.CodeInvalidParameters,
			want: []string{"refuses to send a bearer token without HTTPS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRun(&Setup{Region: "us-east-1", Endpoint: tt.endpoint, Getenv: env{BearerTokenEnv: tt.token}.get})
			expect(t, r.bearerToken(t0), tt.status, tt.code, tt.want...)
		})
	}
}

func TestSTS(t *testing.T) {
	ok := aws.Credentials{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "s"}
	tests := []struct {
		name     string
		credsErr error
		endpoint string
		err      error
		status   Status
		code     string
		want     []string
	}{
		{name: "answers", status: Pass, want: []string{"account 123456789012, arn:aws:iam::123456789012:user/me"}},
		{name: "unknown key", err: apiError("InvalidClientTokenId", "The security token included in the request is invalid."),
			status: Fail, code: catalog.CodeInvalidClientTokenID, want: []string{"sts:GetCallerIdentity: InvalidClientTokenId"}},
		{name: "expired token", err: apiError("ExpiredToken", "The security token included in the request is expired"),
			status: Fail, code: catalog.CodeExpiredToken},
		{name: "no credentials", credsErr: errors.New("none"), status: NotRun, want: []string{"no credentials"}},
		{name: "not AWS", endpoint: "https://gw.example.com", status: NotRun, want: []string{"is not AWS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRun(&Setup{Endpoint: tt.endpoint, STS: fakeSTS{err: tt.err}, AWS: aws.Config{Credentials: staticCreds(ok, tt.credsErr)}})
			r.credentials(context.Background())
			expect(t, one(t, r.sts(context.Background())), tt.status, tt.code, tt.want...)
		})
	}
}
