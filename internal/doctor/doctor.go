package doctor

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/quotas"
)

// Status is a check's verdict.
type Status string

// Verdicts. NotRun is neither good nor bad: the check could not run, and
// Result.Seen says why.
const (
	Pass   Status = "pass"
	Warn   Status = "warn"
	Fail   Status = "fail"
	NotRun Status = "not-run"
)

// Groups, in the order a Report lists them.
const (
	GroupCredentials = "credentials"
	GroupClock       = "clock"
	GroupModel       = "model"
	GroupAccess      = "access"
	GroupQuotas      = "quotas"
	GroupConnection  = "connection"
	GroupSDK         = "sdk"
)

var groupOrder = []string{GroupCredentials, GroupClock, GroupModel, GroupAccess, GroupQuotas, GroupConnection, GroupSDK}

// Result is one check's outcome.
type Result struct {
	Group string `json:"group"`
	Check string `json:"check"`
	// Subject is the model the check is about, for per-model checks.
	Subject string `json:"subject,omitempty"`
	Status  Status `json:"status"`
	// Seen says what the check found, or why it did not run.
	Seen string `json:"seen"`
	// Fix says what to do; empty for a pass.
	Fix string `json:"fix,omitempty"`
	// Code is the error catalog's code when an AWS error or a catalogued
	// failure is involved (`keel explain CODE` tells more).
	Code string `json:"code,omitempty"`
}

// Defaults of the Setup's bounds.
const (
	// DefaultCredentialsTimeout bounds the search for credentials. Every
	// source answers in well under a second when it works; on a machine
	// that is not an EC2 instance the chain ends at the instance metadata
	// service, which is asked once and given no longer than this.
	DefaultCredentialsTimeout = 5 * time.Second
	// DefaultCheckTimeout bounds each other check: an AWS API call, a DNS
	// lookup or a TLS handshake answers in well under a second on a working
	// path; past 5 s the path is broken, not slow.
	DefaultCheckTimeout = 5 * time.Second
)

// Setup is what Run checks. The zero value of each seam means the real
// thing (the process environment, /proc/sys, the wall clock); the clients
// are built from AWS when nil.
type Setup struct {
	// Region is the region checked; empty means AWS.Region, else us-east-1.
	Region string
	// Endpoint is a Bedrock-compatible base URL used instead of AWS's
	// endpoints (keel emulate's, keel serve's); empty means AWS.
	Endpoint string
	// Emulated reports that Endpoint is keel's emulator, which answers STS
	// and Service Quotas too and takes any credentials.
	Emulated bool
	// Models are the model or inference profile ids to check.
	Models []string
	// Probe asks Bedrock whether each model may be called, with a
	// CountTokens call (free).
	Probe bool
	// AWS supplies credentials, the region and the SDK settings checked.
	AWS aws.Config
	// Config is keel's configuration (quotas, retries); nil means defaults.
	Config *config.Config
	// KeepAliveIdle is keel's per-socket TCP keep-alive idle time (zero:
	// the transport's default); negative means left to the kernel.
	KeepAliveIdle time.Duration

	// CredentialsTimeout and CheckTimeout bound the checks; zero means
	// the defaults.
	CredentialsTimeout, CheckTimeout time.Duration

	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// Sysctl reads a kernel setting such as "net.ipv4.tcp_keepalive_time";
	// nil means reading /proc/sys.
	Sysctl func(name string) (string, error)
	// Now tells the time; nil means time.Now.
	Now func() time.Time
	// HTTP fetches the endpoint's Date header; nil means a client that
	// follows no redirect and keeps no connection.
	HTTP *http.Client
	// Resolver looks up the endpoint's host; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// Dial opens a TCP connection; nil means a net.Dialer's.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialTLS opens a TLS connection to host:port; nil means tls.Dialer.
	DialTLS func(ctx context.Context, addr string) (TLSState, error)

	// The clients; nil means built from AWS, pointed at Endpoint if set.
	Bedrock BedrockAPI
	Runtime RuntimeAPI
	STS     STSAPI
	Quotas  quotas.API
}

// TLSState is what the TLS check reports about a handshake: the
// version, the protocol agreed by ALPN ("h2"), and the leaf
// certificate's issuer and expiry.
type TLSState struct {
	Version, ALPN, Issuer string
	NotAfter              time.Time
}

// BedrockAPI is the part of the Bedrock control-plane client the model
// checks use.
type BedrockAPI interface {
	GetFoundationModel(ctx context.Context, in *bedrock.GetFoundationModelInput, opts ...func(*bedrock.Options)) (*bedrock.GetFoundationModelOutput, error)
	GetInferenceProfile(ctx context.Context, in *bedrock.GetInferenceProfileInput, opts ...func(*bedrock.Options)) (*bedrock.GetInferenceProfileOutput, error)
}

// RuntimeAPI is the part of the Bedrock Runtime client the access probe
// uses.
type RuntimeAPI interface {
	CountTokens(ctx context.Context, in *bedrockruntime.CountTokensInput, opts ...func(*bedrockruntime.Options)) (*bedrockruntime.CountTokensOutput, error)
}

// STSAPI is the part of the STS client the credentials checks use.
type STSAPI interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, opts ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

// Report is what Run found.
type Report struct {
	Region   string   `json:"region"`
	Endpoint string   `json:"endpoint"`
	Models   []string `json:"models"`
	Results  []Result `json:"checks"`
	// Elapsed is how long Run took.
	Elapsed time.Duration `json:"-"`
}

// Count returns how many results have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, res := range r.Results {
		if res.Status == s {
			n++
		}
	}
	return n
}

// ExitCode is 1 when a check failed, or with strict when one warned; 0
// otherwise.
func (r *Report) ExitCode(strict bool) int {
	if r.Count(Fail) > 0 || (strict && r.Count(Warn) > 0) {
		return 1
	}
	return 0
}

// run is the state of one Run shared by the checks.
type run struct {
	*Setup
	region   string
	endpoint *url.URL // the Bedrock Runtime endpoint checked
	creds    aws.Credentials
	credsErr error
}

// Run performs every check and returns the report; see the package
// documentation for its time bound.
func Run(ctx context.Context, s *Setup) *Report {
	own := *s // defaults are filled into a copy: the caller's Setup is left as it was
	r := &run{Setup: &own}
	r.fill()
	start := r.Now()
	rep := &Report{Region: r.region, Endpoint: r.endpoint.String(), Models: s.Models}
	var mu sync.Mutex
	add := func(rs []Result) {
		mu.Lock()
		rep.Results = append(rep.Results, rs...)
		mu.Unlock()
	}
	// Credentials first: STS, the model checks and the probe need them.
	add(r.credentials(ctx))
	var wg sync.WaitGroup
	for _, check := range []func(context.Context) []Result{
		r.sts, r.clock, r.modelChecks, r.quotaChecks, r.keepAlive, r.proxy, r.dns, r.tcp, r.tls, r.sdkRetries, r.sdkEndpoint,
	} {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, r.CheckTimeout)
			defer cancel()
			add(check(cctx))
		})
	}
	wg.Wait()
	followFailures(rep.Results)
	sortResults(rep.Results)
	rep.Elapsed = r.Now().Sub(start)
	return rep
}

// fill sets the Setup's defaults.
func (r *run) fill() {
	s := r.Setup
	if s.Getenv == nil {
		s.Getenv = os.Getenv
	}
	if s.Sysctl == nil {
		s.Sysctl = readSysctl
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.CredentialsTimeout <= 0 {
		s.CredentialsTimeout = DefaultCredentialsTimeout
	}
	if s.CheckTimeout <= 0 {
		s.CheckTimeout = DefaultCheckTimeout
	}
	if s.HTTP == nil {
		// One request: nothing to keep alive, and no pooled connection
		// left behind when Run returns.
		s.HTTP = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if s.Resolver == nil {
		s.Resolver = net.DefaultResolver
	}
	if s.Dial == nil {
		s.Dial = (&net.Dialer{}).DialContext
	}
	if s.DialTLS == nil {
		s.DialTLS = dialTLS
	}
	if s.Config == nil {
		s.Config = &config.Config{}
	}
	r.region = s.Region
	if r.region == "" {
		r.region = s.AWS.Region
	}
	if r.region == "" {
		r.region = "us-east-1"
	}
	if s.Endpoint != "" {
		r.endpoint, _ = url.Parse(s.Endpoint)
	}
	if r.endpoint == nil || r.endpoint.Host == "" {
		r.endpoint = &url.URL{Scheme: "https", Host: "bedrock-runtime." + r.region + ".amazonaws.com"}
	}
	r.clients()
}

// onAWS reports whether the endpoint is AWS's own.
func (r *run) onAWS() bool { return r.Setup.Endpoint == "" }

// speaksAWS reports whether the endpoint answers STS and Service Quotas:
// AWS, or keel's emulator.
func (r *run) speaksAWS() bool { return r.onAWS() || r.Emulated }

// loopback reports whether the endpoint's host is this machine.
func (r *run) loopback() bool {
	h := r.endpoint.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// notAWS is the reason a check of AWS's own services does not run against
// another endpoint.
func (r *run) notAWS(what string) string {
	return "the endpoint " + r.endpoint.String() + " is not AWS, and not keel's emulator: " + what + " is AWS's"
}

// followFailures marks as not run the connection checks that failed only
// because an earlier step of the same path did: no TCP connection without
// the host's address, no TLS without a TCP connection. They ran at once,
// to keep within one check's time bound.
func followFailures(rs []Result) {
	failed := map[string]bool{}
	for _, res := range rs {
		if res.Group == GroupConnection && res.Status == Fail {
			failed[res.Check] = true
		}
	}
	for i := range rs {
		res := &rs[i]
		if res.Group != GroupConnection || res.Status != Fail {
			continue
		}
		switch {
		case (res.Check == "tcp" || res.Check == "tls") && failed["dns"]:
			*res = Result{Group: res.Group, Check: res.Check, Status: NotRun, Seen: "the endpoint's host did not resolve (see dns)"}
		case res.Check == "tls" && failed["tcp"]:
			*res = Result{Group: res.Group, Check: res.Check, Status: NotRun, Seen: "no TCP connection to the endpoint (see tcp)"}
		}
	}
}

// sortResults orders results by group, keeping each group's order of
// arrival stable by check and subject.
func sortResults(rs []Result) {
	rank := map[string]int{}
	for i, g := range groupOrder {
		rank[g] = i
	}
	order := map[string]int{}
	for i, c := range checkOrder {
		order[c] = i
	}
	slices.SortStableFunc(rs, func(a, b Result) int {
		if d := rank[a.Group] - rank[b.Group]; d != 0 {
			return d
		}
		if d := strings.Compare(a.Subject, b.Subject); d != 0 {
			return d
		}
		return order[a.Check] - order[b.Check]
	})
}

// checkOrder is the order of checks within a group.
var checkOrder = []string{"source", "bearer-token", "sts", "skew", "region", "exists", "lifecycle", "probe",
	"tokens-per-minute", "keepalive", "proxy", "dns", "tcp", "tls", "retries", "endpoint-override"}
