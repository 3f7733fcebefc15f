package doctor

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	bedrocktypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/quotas"
)

func TestJudgeSkew(t *testing.T) {
	tests := []struct {
		skew   time.Duration
		status Status
		code   string
		want   string
	}{
		{0, Pass, "", "agrees"},
		{30 * time.Second, Pass, "", "30s ahead of"},
		{-2 * time.Minute, Warn, "", "2m0s behind"},
		{10 * time.Minute, Fail, catalog.CodeRequestExpired, "10m0s ahead of this machine's: past AWS's 5m0s window"},
		{-6 * time.Minute, Fail, catalog.CodeRequestExpired, "6m0s behind"},
	}
	for _, tt := range tests {
		expect(t, judgeSkew(Result{Check: "skew"}, tt.skew), tt.status, tt.code, tt.want)
	}
}

func TestSkewOf(t *testing.T) {
	// Sent at t0, answered 2 s later, the server's Date (truncated to the
	// second) saying t0+10m+1s: the middle of the exchange is t0+1s.
	if got := skewOf(t0.Add(10*time.Minute+time.Second), t0, t0.Add(2*time.Second)); got != 10*time.Minute+500*time.Millisecond {
		t.Errorf("skewOf = %v", got)
	}
}

// TestClockAgainstServer reads a local server's Date header: one ten
// minutes ahead fails, one without a Date is not judged.
func TestClockAgainstServer(t *testing.T) {
	tests := []struct {
		name   string
		date   func() []string
		status Status
		code   string
	}{
		{"in step", func() []string { return []string{time.Now().UTC().Format(http.TimeFormat)} }, Pass, ""},
		{"ten minutes ahead", func() []string { return []string{time.Now().Add(10 * time.Minute).UTC().Format(http.TimeFormat)} }, Fail, catalog.CodeRequestExpired},
		{"no Date", func() []string { return nil }, NotRun, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Date"] = tt.date()
				w.WriteHeader(http.StatusNotFound)
			}))
			defer srv.Close()
			r := newRun(&Setup{Endpoint: srv.URL, Now: time.Now})
			expect(t, one(t, r.clock(context.Background())), tt.status, tt.code)
		})
	}
	r := newRun(&Setup{Endpoint: "http://127.0.0.1:1", Now: time.Now})
	expect(t, one(t, r.clock(context.Background())), NotRun, "", "did not answer")
}

func TestProfileFits(t *testing.T) {
	tests := []struct {
		id, region string
		status     Status
		want       string
	}{
		{"anthropic.claude-sonnet-4-6", "eu-west-1", Pass, "bare model id"},
		{"us.anthropic.claude-sonnet-4-6", "us-west-2", Pass, "us. profile, callable from us-west-2"},
		{"us.anthropic.claude-sonnet-4-6", "eu-west-1", Fail, "use eu.anthropic.claude-sonnet-4-6 or global.anthropic.claude-sonnet-4-6"},
		{"us.anthropic.claude-sonnet-4-6", "us-gov-west-1", Fail, "cannot be called from us-gov-west-1"},
		{"jp.anthropic.claude-sonnet-4-6", "ap-northeast-1", Pass, ""},
		{"jp.anthropic.claude-sonnet-4-6", "ap-southeast-1", Fail, "use apac."},
		{"au.anthropic.claude-sonnet-4-6", "ap-southeast-2", Pass, ""},
		{"global.anthropic.claude-sonnet-4-6", "sa-east-1", Pass, ""},
		{"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-6", "us-east-1", Pass, "ARN is of us-east-1"},
		{"arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6", "us-east-1", Fail, "names region us-west-2"},
		{"arn:aws:s3:::bucket/key", "us-east-1", Fail, "not a Bedrock ARN"},
	}
	for _, tt := range tests {
		status, seen, fix := profileFits(tt.id, tt.region)
		expect(t, Result{Check: tt.id, Status: status, Seen: seen, Fix: fix}, tt.status, "", tt.want)
	}
}

func TestModelExistsAndLifecycle(t *testing.T) {
	active := &bedrocktypes.FoundationModelDetails{ModelId: aws.String("anthropic.claude-3-haiku-20240307-v1:0"), ModelName: aws.String("Claude 3 Haiku"),
		InferenceTypesSupported: []bedrocktypes.InferenceType{bedrocktypes.InferenceTypeOnDemand},
		ModelLifecycle:          &bedrocktypes.FoundationModelLifecycle{Status: bedrocktypes.FoundationModelLifecycleStatusActive}}
	profileOnly := *active
	profileOnly.InferenceTypesSupported = []bedrocktypes.InferenceType{"INFERENCE_PROFILE"}
	legacy := *active
	legacy.ModelLifecycle = &bedrocktypes.FoundationModelLifecycle{Status: bedrocktypes.FoundationModelLifecycleStatusLegacy,
		LegacyTime: aws.Time(t0.AddDate(0, -1, 0)), EndOfLifeTime: aws.Time(t0.AddDate(0, 6, 0))}
	gone := legacy
	gone.ModelLifecycle = &bedrocktypes.FoundationModelLifecycle{Status: bedrocktypes.FoundationModelLifecycleStatusLegacy, EndOfLifeTime: aws.Time(t0.AddDate(0, 0, -1))}
	notFound := apiError("ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier.")
	haiku := "anthropic.claude-3-haiku-20240307-v1:0"
	tests := []struct {
		name             string
		id               string
		fake             fakeBedrock
		exists, life     Status
		existsCode, want string
	}{
		{name: "active on demand", id: haiku, fake: fakeBedrock{model: active}, exists: Pass, life: Pass, want: "served on demand"},
		{name: "profile only", id: haiku, fake: fakeBedrock{model: &profileOnly}, exists: Fail, life: Pass, existsCode: catalog.CodeValidation, want: "call it through a profile, such as us."},
		{name: "legacy", id: haiku, fake: fakeBedrock{model: &legacy}, exists: Pass, life: Warn, want: "legacy since 2026-11-03, end of life 2027-06-03"},
		{name: "end of life", id: haiku, fake: fakeBedrock{model: &gone}, exists: Pass, life: Fail, want: "past its end of life"},
		{name: "unknown model", id: "anthropic.claude-nope-v1", fake: fakeBedrock{modelErr: notFound}, exists: Fail, life: NotRun, existsCode: catalog.CodeResourceNotFound},
		{name: "profile", id: "us." + haiku, fake: fakeBedrock{model: active}, exists: Pass, life: Pass, want: "inference profile US X"},
		{name: "unknown profile", id: "us." + haiku, fake: fakeBedrock{model: active, profileErr: apiError("ResourceNotFoundException", "Inference profile x does not exist.")},
			exists: Fail, life: Pass, existsCode: catalog.CodeResourceNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRun(&Setup{Region: "us-east-1", Bedrock: tt.fake, Runtime: fakeRuntime{}})
			rs := r.model(context.Background(), tt.id)
			byCheck := map[string]Result{}
			for _, res := range rs {
				byCheck[res.Check] = res
			}
			expect(t, byCheck["exists"], tt.exists, tt.existsCode)
			expect(t, byCheck["lifecycle"], tt.life, map[bool]string{true: catalog.CodeResourceNotFound}[tt.life == Fail])
			all := byCheck["exists"].Seen + byCheck["exists"].Fix + byCheck["lifecycle"].Seen
			if tt.want != "" && !contains(all, tt.want) {
				t.Errorf("%q does not mention %q", all, tt.want)
			}
			if p := byCheck["probe"]; p.Status != NotRun || p.Group != GroupAccess {
				t.Errorf("probe without --probe: %+v", p)
			}
		})
	}
	r := newRun(&Setup{Endpoint: "https://gw.example.com"})
	for _, res := range r.model(context.Background(), haiku) {
		if res.Check == "exists" || res.Check == "lifecycle" {
			expect(t, res, NotRun, "", "is not AWS")
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestProbe explains a refused CountTokens in the catalog's words.
func TestProbe(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status Status
		code   string
		want   []string
	}{
		{name: "allowed", status: Pass, want: []string{"the account may call"}},
		{name: "access denied", err: apiError("AccessDeniedException", "You don't have access to the model with the specified model ID."),
			status: Fail, code: catalog.CodeAccessDenied, want: []string{"keel explain AccessDeniedException"}},
		{name: "use-case form", err: apiError("ResourceNotFoundException", "Model use case details have not been submitted for this account. Fill out the Anthropic use case details form before using the model."),
			status: Fail, code: catalog.CodeFTUFormNotFilled, want: []string{catalog.Must(catalog.CodeFTUFormNotFilled).Summary, catalog.Must(catalog.CodeFTUFormNotFilled).Fix[0]}},
		{name: "marketplace", err: apiError("AccessDeniedException", "Your AWS Marketplace subscription for this model is still being processed. Try again after 15 minutes."),
			status: Fail, code: catalog.CodeMPAgreementBeingCreated},
		{name: "no token counting", err: apiError("ValidationException", "The provided model doesn't support counting tokens."), status: NotRun, want: []string{"would cost"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRun(&Setup{Probe: true, Runtime: fakeRuntime{err: tt.err}})
			expect(t, r.probe(context.Background(), "us.anthropic.claude-opus-4-7"), tt.status, tt.code, tt.want...)
		})
	}
}

func quotaList(qs ...sqtypes.ServiceQuota) fakeQuotas {
	return fakeQuotas{out: &servicequotas.ListServiceQuotasOutput{Quotas: qs}}
}

func quota(kind quotas.Kind, model string, v float64) sqtypes.ServiceQuota {
	name := quotas.Name(kind, model)
	return sqtypes.ServiceQuota{QuotaName: aws.String(name), QuotaCode: aws.String(quotas.Code(name)), Value: aws.Float64(v)}
}

func TestQuotas(t *testing.T) {
	const id = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
	listed := quotaList(quota(quotas.CrossRegion, "Anthropic Claude Sonnet 4.5", 200_000), quota(quotas.PerDay, "Anthropic Claude Sonnet 4.5", 288_000_000),
		quota(quotas.OnDemand, "Anthropic Claude 3 Haiku", 1))
	learn := true
	tests := []struct {
		name   string
		fake   fakeQuotas
		conf   config.Quotas
		status Status
		code   string
		want   []string
	}{
		{name: "listed, keel learns", fake: listed, status: Pass, want: []string{"200000 tokens per minute", "288000000 tokens per day", "learns it from throttles"}},
		{name: "keel says the same", fake: listed, conf: config.Quotas{Targets: []config.Quota{{Model: id, TokensPerMinute: 200_000}}}, status: Pass, want: []string{"says 200000"}},
		{name: "keel says more", fake: listed, conf: config.Quotas{Default: config.Quota{TokensPerMinute: 500_000}}, status: Warn, want: []string{"admits more than Bedrock allows", "tokens_per_minute: 200000"}},
		{name: "keel says far less", fake: listed, conf: config.Quotas{Targets: []config.Quota{{Model: id, Region: "us-east-1", TokensPerMinute: 20_000}}}, status: Warn, want: []string{"holds calls back"}},
		{name: "keel starts above and learns", fake: listed, conf: config.Quotas{Default: config.Quota{TokensPerMinute: 500_000, Learn: &learn}}, status: Pass, want: []string{"starts from 500000"}},
		{name: "zero quota", fake: quotaList(quota(quotas.CrossRegion, "Anthropic Claude Sonnet 4.5", 0)), status: Fail, code: catalog.CodeThrottling, want: []string{"quota is zero"}},
		{name: "not listed", fake: quotaList(), status: Pass, want: []string{"lists no cross-region tokens-per-minute quota"}},
		{name: "not allowed", fake: fakeQuotas{err: apiError("AccessDeniedException", "not authorized to perform: servicequotas:ListServiceQuotas")},
			status: Warn, code: catalog.CodeAccessDenied, want: []string{"allow servicequotas:ListServiceQuotas"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRun(&Setup{Region: "us-east-1", Models: []string{id}, Quotas: tt.fake, Config: &config.Config{Quotas: tt.conf},
				AWS: aws.Config{Credentials: staticCreds(aws.Credentials{AccessKeyID: "AKID"}, nil)}})
			r.credentials(context.Background())
			expect(t, one(t, r.quotaChecks(context.Background())), tt.status, tt.code, tt.want...)
		})
	}
}

func TestConfigured(t *testing.T) {
	c := &config.Config{Region: "us-east-1", Quotas: config.Quotas{Default: config.Quota{TokensPerMinute: 1},
		Targets: []config.Quota{{Model: "m", TokensPerMinute: 2}, {Model: "m", Region: "eu-west-1", TokensPerMinute: 3}}}}
	for _, tt := range []struct {
		id, region string
		want       int
	}{{"m", "us-east-1", 2}, {"m", "eu-west-1", 3}, {"m", "us-west-2", 1}, {"n", "us-east-1", 1}} {
		if got := configured(c, tt.id, tt.region).TokensPerMinute; got != tt.want {
			t.Errorf("configured(%s@%s) = %d, want %d", tt.id, tt.region, got, tt.want)
		}
	}
	c.Region = ""
	if got := configured(c, "m", "us-west-2").TokensPerMinute; got != 2 {
		t.Errorf("no region anywhere: %d, want 2", got)
	}
}

func TestKeepAlive(t *testing.T) {
	sysctl := func(secs string) func(string) (string, error) {
		return func(name string) (string, error) {
			if name == sysKeepAliveTime {
				return secs, nil
			}
			return "9", nil
		}
	}
	tests := []struct {
		name     string
		idle     time.Duration
		kernel   func(string) (string, error)
		endpoint string
		status   Status
		code     string
		want     string
	}{
		{name: "kernel lowered", kernel: sysctl("45"), status: Pass, want: "tcp_keepalive_time=45"},
		{name: "kernel default to AWS", kernel: sysctl("7200"), status: Warn, want: "sysctl -w net.ipv4.tcp_keepalive_time=45"},
		{name: "kernel default to loopback", kernel: sysctl("7200"), endpoint: "http://127.0.0.1:4566", status: Pass, want: "does not matter on loopback"},
		{name: "kernel unreadable", status: Pass, want: "not read"},
		{name: "keel's too long", idle: 400 * time.Second, kernel: sysctl("45"), status: Fail, code: catalog.CodeIdleConnectionDropped, want: "6m40s"},
		{name: "keel's left to the kernel", idle: -1, kernel: sysctl("7200"), status: Fail, code: catalog.CodeIdleConnectionDropped, want: "the kernel's 2h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRun(&Setup{Endpoint: tt.endpoint, KeepAliveIdle: tt.idle, Sysctl: tt.kernel})
			expect(t, one(t, r.keepAlive(context.Background())), tt.status, tt.code, tt.want)
		})
	}
}

func TestProxy(t *testing.T) {
	tests := []struct {
		name     string
		env      env
		endpoint string
		status   Status
		want     string
	}{
		{name: "none", env: env{}, status: Pass, want: "reached directly"},
		{name: "through a proxy", env: env{"HTTPS_PROXY": "http://user:pw@proxy.internal:3128"}, status: Pass, want: "through the proxy http://proxy.internal:3128"},
		{name: "lower case", env: env{"https_proxy": "proxy.internal:3128"}, status: Pass, want: "through the proxy"},
		{name: "excluded", env: env{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "localhost,.amazonaws.com"}, status: Pass, want: "NO_PROXY (localhost,.amazonaws.com) covers"},
		{name: "loopback", env: env{"HTTP_PROXY": "http://proxy:3128"}, endpoint: "http://127.0.0.1:4566", status: Pass, want: "never proxies a loopback host"},
		{name: "malformed", env: env{"HTTPS_PROXY": "http://[::1"}, status: Fail, want: "is not a proxy URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRun(&Setup{Endpoint: tt.endpoint, Getenv: tt.env.get})
			res := one(t, r.proxy(context.Background()))
			expect(t, res, tt.status, "", tt.want)
			if contains(res.Seen, "pw") {
				t.Errorf("the proxy password is shown: %s", res.Seen)
			}
		})
	}
}

func TestNoProxyCovers(t *testing.T) {
	for _, tt := range []struct {
		list, host string
		want       bool
	}{
		{"*", "bedrock-runtime.us-east-1.amazonaws.com", true},
		{".amazonaws.com", "bedrock-runtime.us-east-1.amazonaws.com", true},
		{"amazonaws.com", "bedrock-runtime.us-east-1.amazonaws.com", true},
		{"bedrock-runtime.us-east-1.amazonaws.com:443", "bedrock-runtime.us-east-1.amazonaws.com", true},
		{"example.com, 10.0.0.0/8", "10.1.2.3", true},
		{"example.com", "bedrock-runtime.us-east-1.amazonaws.com", false},
		{"zonaws.com", "bedrock-runtime.us-east-1.amazonaws.com", false},
		{"", "x", false},
	} {
		if got := noProxyCovers(tt.list, tt.host); got != tt.want {
			t.Errorf("noProxyCovers(%q, %q) = %v", tt.list, tt.host, got)
		}
	}
}

func TestDNS(t *testing.T) {
	refused := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS server in tests")
	}}
	expect(t, one(t, newRun(&Setup{Endpoint: "http://127.0.0.1:4566"}).dns(context.Background())), Pass, "", "nothing to resolve")
	res := one(t, newRun(&Setup{Endpoint: "https://bedrock.invalid", Resolver: refused}).dns(context.Background()))
	if res.Status != Fail || (res.Code != catalog.CodeDNSFailure && res.Code != catalog.CodeDNSNotFound) {
		t.Errorf("DNS failure: %+v", res)
	}
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	expect(t, one(t, newRun(&Setup{Endpoint: "http://" + addr}).tcp(context.Background())), Pass, "", "connected to "+addr)
	ln.Close() // nothing listens there now: refused
	expect(t, one(t, newRun(&Setup{Endpoint: "http://" + addr}).tcp(context.Background())), Fail, catalog.CodeConnectionRefused, "connecting to "+addr)
	if got := newRun(&Setup{Endpoint: "http://gw.internal"}).hostPort(); got != "gw.internal:80" {
		t.Errorf("hostPort = %s", got)
	}
}

func TestTLS(t *testing.T) {
	good := func(context.Context, string) (TLSState, error) {
		return TLSState{Version: "TLS 1.3", ALPN: "h2", Issuer: "Amazon RSA 2048 M02", NotAfter: t0.AddDate(0, 6, 0)}, nil
	}
	soon := func(context.Context, string) (TLSState, error) {
		return TLSState{Version: "TLS 1.2", Issuer: "Corp Proxy CA", NotAfter: t0.Add(48 * time.Hour)}, nil
	}
	bad := func(context.Context, string) (TLSState, error) {
		return TLSState{}, errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority")
	}
	tests := []struct {
		name     string
		endpoint string
		dial     func(context.Context, string) (TLSState, error)
		status   Status
		code     string
		want     string
	}{
		{name: "valid", dial: good, status: Pass, want: "TLS 1.3 (h2) to bedrock-runtime.us-east-1.amazonaws.com:443, certificate by Amazon RSA 2048 M02"},
		{name: "expiring", dial: soon, status: Warn, want: "in 48h0m0s"},
		{name: "refused", dial: bad, status: Fail, code: catalog.CodeTLSFailure, want: "unknown authority"},
		{name: "plain loopback", endpoint: "http://127.0.0.1:4566", status: Pass, want: "no TLS to check"},
		{name: "plain remote", endpoint: "http://gw.internal:8080", status: Warn, want: "unencrypted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRun(&Setup{Endpoint: tt.endpoint, DialTLS: tt.dial})
			expect(t, one(t, r.tls(context.Background())), tt.status, tt.code, tt.want)
		})
	}
}

// TestTLSHandshake shakes hands with a local server whose certificate no
// root vouches for, as a TLS-inspecting proxy's.
func TestTLSHandshake(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the point
	srv.StartTLS()
	defer srv.Close()
	res := one(t, newRun(&Setup{Endpoint: srv.URL}).tls(context.Background()))
	expect(t, res, Fail, catalog.CodeTLSFailure, "certificate signed by unknown authority")
}

func TestSDK(t *testing.T) {
	tests := []struct {
		name   string
		env    env
		cfg    aws.Config
		check  string
		status Status
		want   string
	}{
		{name: "no retry settings", env: env{}, check: "retries", status: Pass, want: "up to 3 attempts"},
		{name: "AWS_MAX_ATTEMPTS", env: env{"AWS_MAX_ATTEMPTS": "10", "AWS_RETRY_MODE": "adaptive"}, check: "retries", status: Warn, want: "AWS_MAX_ATTEMPTS=10, AWS_RETRY_MODE=adaptive"},
		{name: "profile max_attempts", env: env{}, cfg: aws.Config{RetryMaxAttempts: 5}, check: "retries", status: Warn, want: "max_attempts = 5"},
		{name: "no endpoint override", env: env{}, check: "endpoint-override", status: Pass},
		{name: "endpoint override", env: env{"AWS_ENDPOINT_URL": "http://localhost:4566"}, check: "endpoint-override", status: Warn, want: "AWS_ENDPOINT_URL=http://localhost:4566"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRun(&Setup{Getenv: tt.env.get, AWS: tt.cfg})
			f := r.sdkRetries
			if tt.check == "endpoint-override" {
				f = r.sdkEndpoint
			}
			expect(t, one(t, f(context.Background())), tt.status, "", tt.want)
		})
	}
}
