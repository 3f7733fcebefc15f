package attempt

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/keel-run/keel/internal/clock"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		name, path string
		model      string
		op         Op
		ok         bool
	}{
		{"plain", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", "anthropic.claude-3-haiku-20240307-v1:0", Converse, true},
		{"profile", "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", ConverseStream, true},
		{"arn with slash", "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.m-v1%3A0/invoke", "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.m-v1:0", Invoke, true},
		{"stream invoke", "/model/m/invoke-with-response-stream", "m", InvokeWithResponseStream, true},
		{"count tokens", "/model/m/count-tokens", "m", CountTokens, true},
		{"unknown op", "/model/m/apply", "", "", false},
		{"no model", "/model//converse", "", "", false},
		{"other path", "/guardrail/g/version/1/apply", "", "", false},
		{"bad escape", "/model/%zz/converse", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, op, ok := ParsePath(tt.path)
			if ok != tt.ok || m != tt.model || op != tt.op {
				t.Fatalf("ParsePath(%q) = %q, %q, %v; want %q, %q, %v", tt.path, m, op, ok, tt.model, tt.op, tt.ok)
			}
		})
	}
}

func TestEndpointsFor(t *testing.T) {
	tests := []struct {
		name, in, region, want string
	}{
		{"aws host swaps region", "https://bedrock-runtime.us-east-1.amazonaws.com/model/x/converse", "eu-west-1", "https://bedrock-runtime.eu-west-1.amazonaws.com"},
		{"fips", "https://bedrock-runtime-fips.us-east-1.amazonaws.com", "us-west-2", "https://bedrock-runtime-fips.us-west-2.amazonaws.com"},
		{"china", "https://bedrock-runtime.cn-north-1.amazonaws.com.cn", "cn-northwest-1", "https://bedrock-runtime.cn-northwest-1.amazonaws.com.cn"},
		{"emulator keeps host", "http://127.0.0.1:4000/model/x/converse", "eu-west-1", "http://127.0.0.1:4000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := url.Parse(tt.in)
			got, err := EndpointsFor(u).BaseURL(tt.region)
			if err != nil || got.String() != tt.want {
				t.Fatalf("BaseURL = %v, %v; want %s", got, err, tt.want)
			}
		})
	}
	if _, err := (AWSEndpoints{}).BaseURL(""); err == nil {
		t.Fatal("AWSEndpoints accepted an empty region")
	}
}

// capture records the requests it receives and answers a minimal Converse reply.
type capture struct {
	mu   sync.Mutex
	reqs []*http.Request
	body []string
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.reqs = append(c.reqs, r)
	c.body = append(c.body, string(b))
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2},"metrics":{"latencyMs":1}}`)
}

// TestBuildMatchesSDK checks that an attempt looks on the wire like the request
// the official SDK sends for the same call: same escaped path, same signed
// scope, and a signature over the same canonical request.
func TestBuildMatchesSDK(t *testing.T) {
	cap := &capture{}
	srv := httptest.NewServer(cap)
	defer srv.Close()
	creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")
	model := "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
	client := bedrockruntime.New(bedrockruntime.Options{Region: "us-west-2", Credentials: creds, BaseEndpoint: aws.String(srv.URL)})
	_, err := client.Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId:  aws.String(model),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hello"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sdkReq := cap.reqs[0]

	u, _ := url.Parse(srv.URL)
	s := &Sender{Endpoints: EndpointsFor(u), Credentials: creds}
	resp, err := s.Send(context.Background(), &Request{Op: Converse, Target: Target{Model: model, Region: "us-west-2"}, Body: []byte(cap.body[0]), Header: sdkReq.Header.Clone()})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ours := cap.reqs[1]
	if ours.URL.EscapedPath() != sdkReq.URL.EscapedPath() {
		t.Fatalf("path %q, SDK sent %q", ours.URL.EscapedPath(), sdkReq.URL.EscapedPath())
	}
	if cap.body[1] != cap.body[0] {
		t.Fatalf("body changed: %q vs %q", cap.body[1], cap.body[0])
	}
	if got := RegionFromAuthorization(ours.Header.Get("Authorization")); got != "us-west-2" {
		t.Fatalf("signed region %q", got)
	}
	// Same signed-header list and scope as the SDK (the signature differs only by time).
	scope := func(a string) string { i := strings.Index(a, "Signature="); return a[:i] }
	sdkScope, ourScope := scope(sdkReq.Header.Get("Authorization")), scope(ours.Header.Get("Authorization"))
	if strings.Split(sdkScope, "/")[0] != strings.Split(ourScope, "/")[0] || !strings.Contains(ourScope, "/us-west-2/bedrock/aws4_request") {
		t.Fatalf("auth scope %q, SDK %q", ourScope, sdkScope)
	}
}

func TestEachAttemptSignedAnew(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC))
	u, _ := url.Parse("http://127.0.0.1:1")
	s := &Sender{Endpoints: EndpointsFor(u), Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "TOKEN"), Clock: clk}
	req := &Request{Op: Converse, Target: Target{Model: "m", Region: "us-east-1"}, Body: []byte(`{}`),
		Header: http.Header{"Authorization": {"stale"}, "X-Amz-Date": {"19700101T000000Z"}, "Amz-Sdk-Request": {"attempt=1; max=3"}}}
	a, err := s.Build(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(6 * time.Minute) // past the 5-minute validity of the first signature
	b, err := s.Build(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if a.Header.Get("Authorization") == b.Header.Get("Authorization") || a.Header.Get("X-Amz-Date") == b.Header.Get("X-Amz-Date") {
		t.Fatal("two attempts carry the same signature")
	}
	if b.Header.Get("X-Amz-Date") != "20261122T100600Z" || b.Header.Get("X-Amz-Security-Token") != "TOKEN" {
		t.Fatalf("headers %v", b.Header)
	}
	if b.Header.Get("Amz-Sdk-Request") != "" {
		t.Fatal("per-attempt SDK header was copied")
	}
	// Another region changes the scope.
	req.Target.Region = "eu-central-1"
	c, _ := s.Build(context.Background(), req)
	if RegionFromAuthorization(c.Header.Get("Authorization")) != "eu-central-1" {
		t.Fatalf("scope %q", c.Header.Get("Authorization"))
	}
}

func TestBearerTokenPassesThrough(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:1")
	s := &Sender{Endpoints: EndpointsFor(u)}
	r, err := s.Build(context.Background(), &Request{Op: Invoke, Target: Target{Model: "m", Region: "us-east-1"}, Header: http.Header{"Authorization": {"Bearer abc"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Get("Authorization") != "Bearer abc" {
		t.Fatalf("Authorization %q", r.Header.Get("Authorization"))
	}
}

func TestBuildErrors(t *testing.T) {
	s := &Sender{}
	for _, tt := range []struct {
		name string
		req  Request
		want string
	}{
		{"bad op", Request{Op: "nope", Target: Target{Model: "m", Region: "us-east-1"}}, "unknown operation"},
		{"no model", Request{Op: Converse, Target: Target{Region: "us-east-1"}}, "no model"},
		{"no region", Request{Op: Converse, Target: Target{Model: "m"}}, "no region"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Build(context.Background(), &tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRegionFromAuthorization(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"sigv4", "AWS4-HMAC-SHA256 Credential=AKID/20261122/ap-south-1/bedrock/aws4_request, SignedHeaders=host, Signature=ab", "ap-south-1"},
		{"bearer", "Bearer x", ""},
		{"short scope", "AWS4-HMAC-SHA256 Credential=AKID/20261122/bedrock", ""},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := RegionFromAuthorization(tt.in); got != tt.want {
				t.Fatalf("got %q want %q", got, tt.want)
			}
		})
	}
}
