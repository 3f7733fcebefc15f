package emulator

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/quotas"
)

var testCreds = credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "")

// TestSTSGetCallerIdentity asks the emulator who the caller is with the
// official STS client; a rejected signature comes back in STS's own words.
func TestSTSGetCallerIdentity(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reject   *Rejection
		wantCode string
	}{
		{name: "any credentials"},
		{name: "unknown key", reject: &Rejection{Code: catalog.CodeUnrecognizedClient}, wantCode: "InvalidClientTokenId"},
		{name: "skewed", reject: &Rejection{Code: catalog.CodeInvalidSignature, Message: "Signature expired"}, wantCode: "SignatureDoesNotMatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var service string
			rn := start(t, Options{Verify: func(r *http.Request, _ []byte) *Rejection {
				service = SigningName(r)
				return tc.reject
			}})
			c := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(rn.URL), Credentials: testCreds, RetryMaxAttempts: 1})
			out, err := c.GetCallerIdentity(bg(), &sts.GetCallerIdentityInput{})
			if service != SigningSTS {
				t.Errorf("SigningName = %q, want %q", service, SigningSTS)
			}
			if tc.wantCode != "" {
				var ae smithy.APIError
				if !errors.As(err, &ae) || ae.ErrorCode() != tc.wantCode {
					t.Fatalf("err = %v, want API error %s", err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetCallerIdentity: %v", err)
			}
			if aws.ToString(out.Account) != stsAccount || aws.ToString(out.UserId) != "AKIDEXAMPLE" ||
				aws.ToString(out.Arn) != "arn:aws:iam::123456789012:user/keel-emulator" {
				t.Errorf("identity %s %s %s", aws.ToString(out.Account), aws.ToString(out.UserId), aws.ToString(out.Arn))
			}
		})
	}
}

// testQuota limits Claude Sonnet 4.5 (bare, us. and global.) and Claude 3
// Haiku in every region.
func testQuota(model, region string) (int64, int64) {
	switch model {
	case sonnet45:
		return 100_000, 144_000_000
	case sonnet45US:
		return 200_000, 0
	case "global." + sonnet45:
		return 400_000, 0
	case haiku3:
		return 50_000, 0
	}
	return 0, 0
}

// TestServiceQuotas lists and gets Bedrock's quotas with the official
// Service Quotas client: the names Bedrock gives them, the values the
// Quota hook gives, one cross-region quota per model, paged.
func TestServiceQuotas(t *testing.T) {
	var service string
	rn := start(t, Options{Quota: testQuota, Verify: func(r *http.Request, _ []byte) *Rejection {
		service = SigningName(r)
		return nil
	}})
	c := servicequotas.New(servicequotas.Options{Region: "us-west-2", BaseEndpoint: aws.String(rn.URL), Credentials: testCreds, RetryMaxAttempts: 1})
	var got []string
	values := map[string]float64{}
	codes := map[string]string{}
	p := servicequotas.NewListServiceQuotasPaginator(c, &servicequotas.ListServiceQuotasInput{ServiceCode: aws.String("bedrock"), MaxResults: aws.Int32(2)})
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(bg())
		if err != nil {
			t.Fatalf("ListServiceQuotas: %v", err)
		}
		pages++
		for _, q := range out.Quotas {
			name := aws.ToString(q.QuotaName)
			got = append(got, name)
			values[name] = aws.ToFloat64(q.Value)
			codes[name] = aws.ToString(q.QuotaCode)
			if !strings.HasPrefix(aws.ToString(q.QuotaArn), "arn:aws:servicequotas:us-west-2:123456789012:bedrock/L-") {
				t.Errorf("QuotaArn %s", aws.ToString(q.QuotaArn))
			}
		}
	}
	if service != SigningServiceQuotas {
		t.Errorf("SigningName = %q, want %q", service, SigningServiceQuotas)
	}
	// Sonnet 4.5 is called through profiles only: no on-demand quota.
	wantValues := map[string]float64{
		"On-demand InvokeModel tokens per minute for Anthropic Claude 3 Haiku":              50_000,
		"Cross-Region InvokeModel tokens per minute for Anthropic Claude Sonnet 4.5":        200_000,
		"Global cross-Region InvokeModel tokens per minute for Anthropic Claude Sonnet 4.5": 400_000,
		"Model invocation max tokens per day for Anthropic Claude Sonnet 4.5":               144_000_000,
	}
	if len(got) != len(wantValues) || pages != 2 {
		t.Errorf("%d pages of %q, want 2 pages of the %d in %v", pages, got, len(wantValues), wantValues)
	}
	for name, v := range wantValues {
		if values[name] != v {
			t.Errorf("%s = %v, want %v", name, values[name], v)
		}
	}
	name := "Cross-Region InvokeModel tokens per minute for Anthropic Claude Sonnet 4.5"
	out, err := c.GetServiceQuota(bg(), &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String("bedrock"), QuotaCode: aws.String(codes[name])})
	if err != nil {
		t.Fatalf("GetServiceQuota: %v", err)
	}
	if aws.ToString(out.Quota.QuotaName) != name || aws.ToFloat64(out.Quota.Value) != 200_000 || codes[name] != quotas.Code(name) {
		t.Errorf("GetServiceQuota = %s %v", aws.ToString(out.Quota.QuotaName), aws.ToFloat64(out.Quota.Value))
	}

	for _, tc := range []struct {
		name, service, code string
		want                any
	}{
		{"unknown quota", "bedrock", "L-00000000", new(*sqtypes.NoSuchResourceException)},
		{"other service", "ec2", "L-1216C47A", new(*sqtypes.NoSuchResourceException)},
	} {
		_, err := c.GetServiceQuota(bg(), &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String(tc.service), QuotaCode: aws.String(tc.code)})
		if !errors.As(err, tc.want) {
			t.Errorf("%s: err = %v, want %T", tc.name, err, tc.want)
		}
	}
}

// TestServiceQuotasOneCrossRegionQuota lists from a Japanese region, where
// both the apac and the jp profiles of a model are callable: one
// cross-region quota, the first geography's, and one per day.
func TestServiceQuotasOneCrossRegionQuota(t *testing.T) {
	rn := start(t, Options{Quota: func(model, region string) (int64, int64) {
		if strings.HasPrefix(model, "apac.anthropic.claude-opus-4-6") {
			return 1000, 0
		}
		if strings.HasPrefix(model, "jp.anthropic.claude-opus-4-6") {
			return 2000, 7000
		}
		return 0, 0
	}})
	c := servicequotas.New(servicequotas.Options{Region: "ap-northeast-1", BaseEndpoint: aws.String(rn.URL), Credentials: testCreds, RetryMaxAttempts: 1})
	out, err := c.ListServiceQuotas(bg(), &servicequotas.ListServiceQuotasInput{ServiceCode: aws.String("bedrock")})
	if err != nil {
		t.Fatal(err)
	}
	// Opus 4.6 is called through profiles only: its tokens per day are the
	// first profile's that has any.
	if len(out.Quotas) != 2 || aws.ToFloat64(out.Quotas[0].Value) != 1000 || aws.ToFloat64(out.Quotas[1].Value) != 7000 ||
		!strings.HasPrefix(aws.ToString(out.Quotas[1].QuotaName), "Model invocation max tokens per day") {
		t.Errorf("quotas %+v, want the cross-region 1000 and 7000 per day", out.Quotas)
	}
}

// TestClockSkew: with a skew the Date header tells the skewed time, and
// Server.Now agrees; without one net/http's true time stays.
func TestClockSkew(t *testing.T) {
	for _, skew := range []time.Duration{0, 10 * time.Minute, -10 * time.Minute} {
		rn := start(t, Options{ClockSkew: func() time.Duration { return skew }})
		before := time.Now()
		res, err := http.Get(rn.URL + "/foundation-models")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		date, err := http.ParseTime(res.Header.Get("Date"))
		if err != nil {
			t.Fatalf("Date %q: %v", res.Header.Get("Date"), err)
		}
		// Date has a resolution of a second.
		if off := date.Sub(before.Add(skew)); off < -time.Second || off > time.Second+time.Since(before) {
			t.Errorf("skew %v: Date %v is %v from the skewed time", skew, date, off)
		}
		if off := rn.Server.Now().Sub(time.Now().Add(skew)); off < -time.Second || off > time.Second {
			t.Errorf("skew %v: Now is %v off", skew, off)
		}
	}
}

func TestSigningName(t *testing.T) {
	for _, tc := range []struct {
		method, path, target, want string
	}{
		{"POST", "/", "ServiceQuotasV20190624.ListServiceQuotas", SigningServiceQuotas},
		{"POST", "/", "", SigningSTS},
		{"POST", "/model/x/converse", "", SigningBedrock},
		{"GET", "/", "", SigningBedrock},
		{"GET", "/foundation-models", "", SigningBedrock},
	} {
		r, _ := http.NewRequest(tc.method, "http://127.0.0.1"+tc.path, nil)
		if tc.target != "" {
			r.Header.Set("X-Amz-Target", tc.target)
		}
		if got := SigningName(r); got != tc.want {
			t.Errorf("%s %s %q: %q, want %q", tc.method, tc.path, tc.target, got, tc.want)
		}
	}
}
