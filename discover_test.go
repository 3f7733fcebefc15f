package keel

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
	smithy "github.com/aws/smithy-go"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/quotas"
)

const novaLite = "amazon.nova-lite-v1:0"

// fakeQuotas is a Service Quotas that answers ListServiceQuotas with one
// page of quotas, or an error, counting its calls.
type fakeQuotas struct {
	qs    []sqtypes.ServiceQuota
	err   error
	calls atomic.Int64
}

func (f *fakeQuotas) ListServiceQuotas(context.Context, *servicequotas.ListServiceQuotasInput, ...func(*servicequotas.Options)) (*servicequotas.ListServiceQuotasOutput, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return &servicequotas.ListServiceQuotasOutput{Quotas: f.qs}, nil
}

func novaQuota(v float64) []sqtypes.ServiceQuota {
	name := quotas.Name(quotas.OnDemand, "Amazon Nova Lite")
	return []sqtypes.ServiceQuota{{QuotaName: aws.String(name), QuotaCode: aws.String(quotas.Code(name)), Value: aws.Float64(v)}}
}

func testDiscoverer(api quotas.API, log *bytes.Buffer, clk clock.Clock) *discoverer {
	d := &discoverer{api: func(string) quotas.API { return api }, clk: clk,
		log: slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	return d.init()
}

// TestDiscoverOutcomes: what each answer of Service Quotas gives the
// governor, and the log line that says why a quota was not found, once
// per target.
func TestDiscoverOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		api     *fakeQuotas
		model   string
		want    int
		outcome string
	}{
		{"discovered", &fakeQuotas{qs: novaQuota(250_000)}, novaLite, 250_000, outcomeDiscovered},
		{"refused", &fakeQuotas{err: &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform servicequotas:ListServiceQuotas"}},
			novaLite, 0, outcomeRefused},
		{"unreachable", &fakeQuotas{err: errors.New("dial tcp: lookup servicequotas.us-east-1.amazonaws.com: no such host")},
			novaLite, 0, outcomeUnreachable},
		{"another API error", &fakeQuotas{err: &smithy.GenericAPIError{Code: "TooManyRequestsException"}}, novaLite, 0, outcomeFailed},
		{"not listed", &fakeQuotas{qs: novaQuota(250_000)}, "us.amazon.nova-lite-v1:0", 0, outcomeNotListed},
		{"unknown model", &fakeQuotas{qs: novaQuota(250_000)}, "acme.unknown-v1", 0, outcomeNotListed},
		{"a huge quota is capped", &fakeQuotas{qs: novaQuota(1e300)}, novaLite, maxQuota, outcomeDiscovered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			d := testDiscoverer(tt.api, &log, clock.NewFake(time.Unix(1e9, 0)))
			target := admission.Target{Model: tt.model, Region: "us-east-1"}
			for range 2 {
				got, err := d.discover(context.Background(), target)
				if got != tt.want || (err == nil) != (tt.outcome == outcomeDiscovered) {
					t.Fatalf("discover = %d, %v; want %d (%s)", got, err, tt.want, tt.outcome)
				}
				if o := outcome(err); o != tt.outcome {
					t.Errorf("outcome %s, want %s", o, tt.outcome)
				}
			}
			lines := strings.Split(strings.TrimSpace(log.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.model) {
				t.Fatalf("log %q; want one line for %s", log.String(), tt.model)
			}
			if tt.outcome != outcomeDiscovered && !strings.Contains(lines[0], `"outcome":"`+tt.outcome+`"`) {
				t.Errorf("log %q does not say %s", lines[0], tt.outcome)
			}
			if n := tt.api.calls.Load(); n != 1 {
				t.Errorf("%d List calls within listReuse, want 1", n)
			}
		})
	}
}

// TestDiscoverListReuse: one List answers a region's targets for
// listReuse; after it, the list is read again and a changed quota is seen
// and logged.
func TestDiscoverListReuse(t *testing.T) {
	api := &fakeQuotas{qs: novaQuota(100_000)}
	var log bytes.Buffer
	clk := clock.NewFake(time.Unix(1e9, 0))
	d := testDiscoverer(api, &log, clk)
	ctx := context.Background()
	nova := admission.Target{Model: novaLite, Region: "us-west-2"}
	if v, _ := d.discover(ctx, nova); v != 100_000 {
		t.Fatalf("first read %d", v)
	}
	d.discover(ctx, admission.Target{Model: "us." + novaLite, Region: "us-west-2"})
	if n := api.calls.Load(); n != 1 {
		t.Fatalf("%d List calls for two targets of one region, want 1", n)
	}
	d.discover(ctx, admission.Target{Model: novaLite, Region: "eu-west-1"})
	if n := api.calls.Load(); n != 2 {
		t.Fatalf("%d List calls after a second region, want 2", n)
	}
	api.qs = novaQuota(400_000)
	clk.Advance(listReuse)
	if v, _ := d.discover(ctx, nova); v != 400_000 {
		t.Errorf("after listReuse: %d, want the changed 400000", v)
	}
	if got := strings.Count(log.String(), `"msg":"quota discovered"`); got != 3 {
		t.Errorf("%d discovered lines, want 3 (us-west-2, eu-west-1, the change):\n%s", got, log.String())
	}
}

// TestDiscoverThroughKeel: Options.Quotas.Discover against the emulator's
// Service Quotas gives the governor the emulator's quota, with source
// discovered; a configured quota wins; without Discover nothing is read.
func TestDiscoverThroughKeel(t *testing.T) {
	emu, err := emulator.Start(emulator.Options{Seed: 1, Quota: func(model, region string) (int64, int64) {
		if model == novaLite {
			return 150_000, 0
		}
		return 0, 0
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	tests := []struct {
		name   string
		quotas QuotaOptions
		limit  int64
		source string
	}{
		{"discovered", QuotaOptions{Discover: true}, 150_000, "discovered"},
		{"configured wins", QuotaOptions{Discover: true, Targets: []Quota{{Model: novaLite, TokensPerMinute: 90_000}}}, 90_000, "configured"},
		{"discovered wins over the default", QuotaOptions{Discover: true, Default: Quota{TokensPerMinute: 30_000}}, 150_000, "discovered"},
		{"off", QuotaOptions{}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
			k, err := New(cfg, Options{Endpoint: emu.URL, Quotas: tt.quotas, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			client := bedrockruntime.NewFromConfig(cfg, k.ClientOptions)
			if _, err := client.Converse(context.Background(), converseInput(novaLite)); err != nil {
				t.Fatal(err)
			}
			st, ok := k.Quota(novaLite, "us-east-1")
			if !ok || st.Limit != tt.limit || st.LimitSource != tt.source {
				t.Errorf("Quota = %d (%q), %v; want %d (%q)", st.Limit, st.LimitSource, ok, tt.limit, tt.source)
			}
		})
	}
}

func TestDiscoverOverlay(t *testing.T) {
	for _, tt := range []struct {
		name       string
		goOn, file bool
	}{{"Go", true, false}, {"file", false, true}, {"neither", false, false}} {
		opts := Options{Quotas: QuotaOptions{Discover: tt.goOn}}
		c, err := opts.policies()
		if err != nil {
			t.Fatal(err)
		}
		f := *c
		f.Quotas.Discover = tt.file
		if got := overlay(goConfig(&opts), &f).Quotas.Discover; got != (tt.goOn || tt.file) {
			t.Errorf("%s: Discover %v", tt.name, got)
		}
	}
	if _, err := New(aws.Config{}, Options{Quotas: QuotaOptions{Discover: true, Disabled: true}}); err == nil ||
		!strings.Contains(err.Error(), "Options.Quotas.Discover") {
		t.Errorf("Discover with the governor off: %v", err)
	}
}

// TestDiscoverRefusedThroughKeel: a Service Quotas that refuses
// (AccessDeniedException) leaves the target to the learner, and keel says
// so once, in its log.
func TestDiscoverRefusedThroughKeel(t *testing.T) {
	emu, err := emulator.Start(emulator.Options{Seed: 1,
		Quota: func(model, region string) (int64, int64) { return 150_000, 0 },
		Verify: func(r *http.Request, _ []byte) *emulator.Rejection {
			if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "ServiceQuotas") {
				return &emulator.Rejection{Code: "AccessDeniedException", Message: "not authorized to perform: servicequotas:ListServiceQuotas"}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	var log bytes.Buffer
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
	k, err := New(cfg, Options{Endpoint: emu.URL, Quotas: QuotaOptions{Discover: true}, Logger: slog.New(slog.NewJSONHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	client := bedrockruntime.NewFromConfig(cfg, k.ClientOptions)
	for range 2 {
		if _, err := client.Converse(context.Background(), converseInput(novaLite)); err != nil {
			t.Fatal(err)
		}
	}
	if st, ok := k.Quota(novaLite, "us-east-1"); !ok || st.Limit != 0 || st.LimitSource != "" {
		t.Errorf("Quota = %d (%q), %v; want unknown, left to the learner", st.Limit, st.LimitSource, ok)
	}
	if n := strings.Count(log.String(), `"msg":"quota not discovered"`); n != 1 || !strings.Contains(log.String(), `"outcome":"refused"`) {
		t.Errorf("%d lines; want one saying refused:\n%s", n, log.String())
	}
}
