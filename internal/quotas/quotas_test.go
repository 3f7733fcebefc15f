package quotas_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"

	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/quotas"
)

const sonnet45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"

func TestParseAndName(t *testing.T) {
	tests := []struct {
		name  string
		kind  quotas.Kind
		model string
	}{
		{"On-demand InvokeModel tokens per minute for Anthropic Claude 3 Haiku", quotas.OnDemand, "Anthropic Claude 3 Haiku"},
		{"Cross-Region InvokeModel tokens per minute for Anthropic Claude Sonnet 4.5 V1", quotas.CrossRegion, "Anthropic Claude Sonnet 4.5 V1"},
		{"cross-region invokemodel tokens per minute for Amazon Nova Lite", quotas.CrossRegion, "Amazon Nova Lite"},
		{"Global cross-Region InvokeModel tokens per minute for Anthropic Claude Sonnet 4.5", quotas.Global, "Anthropic Claude Sonnet 4.5"},
		{"Model invocation max tokens per day for Anthropic Claude Sonnet 4.5", quotas.PerDay, "Anthropic Claude Sonnet 4.5"},
		{"Cross-Model Max Tokens Per Day", quotas.None, ""},
		{"Batch inference job size (in GB)", quotas.None, ""},
	}
	for _, tt := range tests {
		kind, model := quotas.Parse(tt.name)
		if kind != tt.kind || model != tt.model {
			t.Errorf("Parse(%q) = %v, %q; want %v, %q", tt.name, kind, model, tt.kind, tt.model)
		}
		if tt.kind != quotas.None {
			if k, m := quotas.Parse(quotas.Name(tt.kind, tt.model)); k != tt.kind || m != tt.model {
				t.Errorf("Parse(Name(%v, %q)) = %v, %q", tt.kind, tt.model, k, m)
			}
		}
	}
	if quotas.Name(quotas.None, "x") != "" {
		t.Error("Name(None) is not empty")
	}
}

func TestKindOf(t *testing.T) {
	for id, want := range map[string]quotas.Kind{
		sonnet45:                quotas.OnDemand,
		"us." + sonnet45:        quotas.CrossRegion,
		"jp." + sonnet45:        quotas.CrossRegion,
		"global." + sonnet45:    quotas.Global,
		"amazon.nova-lite-v1:0": quotas.OnDemand,
		"arn:aws:bedrock:us-east-1::foundation-model/" + sonnet45:                     quotas.OnDemand,
		"arn:aws:bedrock:us-east-1:123456789012:inference-profile/global." + sonnet45: quotas.Global,
		"arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu." + sonnet45:     quotas.CrossRegion,
	} {
		if got := quotas.KindOf(id); got != want {
			t.Errorf("KindOf(%s) = %v, want %v", id, got, want)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		quotaModel, id string
		want           bool
	}{
		{"Anthropic Claude Sonnet 4.5", sonnet45, true},
		{"Anthropic Claude Sonnet 4.5 V1", "us." + sonnet45, true},
		{"anthropic  claude sonnet 4.5", sonnet45, true},
		{"Claude Sonnet 4.5", "global." + sonnet45, true},
		{"Anthropic Claude Sonnet 4", sonnet45, false},
		{"Anthropic Claude 3.5 Sonnet", "anthropic.claude-3-5-sonnet-20241022-v2:0", false}, // v2 is its own model
		{"Anthropic Claude 3.5 Sonnet v2", "anthropic.claude-3-5-sonnet-20241022-v2:0", true},
		{"Anthropic Claude Sonnet 4.5", "acme.unknown-v1", false},
	}
	for _, tt := range tests {
		if got := quotas.Match(tt.quotaModel, tt.id); got != tt.want {
			t.Errorf("Match(%q, %s) = %v, want %v", tt.quotaModel, tt.id, got, tt.want)
		}
	}
}

func TestCode(t *testing.T) {
	a, b := quotas.Code("On-demand InvokeModel tokens per minute for X"), quotas.Code("Cross-Region InvokeModel tokens per minute for X")
	if len(a) != 10 || a[:2] != "L-" || a == b || a != quotas.Code("on-demand invokemodel tokens per minute for x") {
		t.Errorf("codes %s %s", a, b)
	}
}

// TestDiscoverFromEmulator reads each kind of target's quota from the
// emulator's Service Quotas, which lists the limits it meters.
func TestDiscoverFromEmulator(t *testing.T) {
	rn, err := emulator.Start(emulator.Options{Quota: func(model, region string) (int64, int64) {
		switch model {
		case sonnet45:
			return 0, 5_000_000
		case "us." + sonnet45:
			return 200_000, 0
		case "global." + sonnet45:
			return 400_000, 0
		case "amazon.nova-lite-v1:0":
			return 1_000_000, 0
		}
		return 0, 0
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer rn.Close()
	c := servicequotas.New(servicequotas.Options{Region: "us-east-1", BaseEndpoint: aws.String(rn.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""), RetryMaxAttempts: 1})
	for _, tc := range []struct {
		id   string
		want int64
		kind quotas.Kind
	}{
		{"us." + sonnet45, 200_000, quotas.CrossRegion},
		{"global." + sonnet45, 400_000, quotas.Global},
		{"amazon.nova-lite-v1:0", 1_000_000, quotas.OnDemand},
	} {
		q, err := quotas.Discover(context.Background(), c, tc.id)
		if err != nil || q.Int() != tc.want || q.Kind != tc.kind {
			t.Errorf("Discover(%s) = %+v, %v; want %d (%v)", tc.id, q, err, tc.want, tc.kind)
		}
	}
	// Sonnet 4.5 has no on-demand quota (profiles only); Nova Pro none in the
	// table; acme is no model keel knows.
	for _, id := range []string{sonnet45, "amazon.nova-pro-v1:0", "acme.nothing"} {
		if q, err := quotas.Discover(context.Background(), c, id); !errors.Is(err, quotas.ErrNotListed) {
			t.Errorf("Discover(%s) = %+v, %v; want ErrNotListed", id, q, err)
		}
	}
	qs, err := quotas.List(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if l := quotas.For(qs, "us."+sonnet45); l.TokensPerDay.Int() != 5_000_000 || l.TokensPerMinute.Int() != 200_000 {
		t.Errorf("For(us. sonnet 4.5) = %+v", l)
	}
}

// pages is a Service Quotas that answers every call with a next token.
type pages struct{ calls int }

func (p *pages) ListServiceQuotas(context.Context, *servicequotas.ListServiceQuotasInput, ...func(*servicequotas.Options)) (*servicequotas.ListServiceQuotasOutput, error) {
	p.calls++
	return &servicequotas.ListServiceQuotasOutput{NextToken: aws.String("more"), Quotas: []sqtypes.ServiceQuota{
		{QuotaName: aws.String("On-demand InvokeModel tokens per minute for Amazon Nova Lite"), Value: aws.Float64(1)},
	}}, nil
}

func TestListBoundsPages(t *testing.T) {
	p := &pages{}
	qs, err := quotas.List(context.Background(), p)
	if err == nil || p.calls != 50 || len(qs) != 50 {
		t.Errorf("List read %d pages, %d quotas, err %v; want it to stop after 50 with an error", p.calls, len(qs), err)
	}
}

func TestQuotaInt(t *testing.T) {
	for v, want := range map[float64]int64{0: 0, -3: 0, 1.9: 1, 2e6: 2_000_000, 1e300: 1<<63 - 1} {
		if got := (quotas.Quota{Value: v}).Int(); got != want {
			t.Errorf("Int(%v) = %d, want %d", v, got, want)
		}
	}
}
