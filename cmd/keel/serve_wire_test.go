package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
)

// startServe runs keel serve with args (on 127.0.0.1:0) until the test
// ends, and returns its URL.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- serve(ctx, append(args, "--listen", "127.0.0.1:0"), outW, &stderr)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	if !lines.Scan() {
		stop()
		<-code
		t.Fatalf("no start line; stderr %s", stderr.String())
	}
	m := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+) `).FindStringSubmatch(lines.Text())
	go io.Copy(io.Discard, outR)
	t.Cleanup(func() {
		stop()
		if c := <-code; c != 0 {
			t.Errorf("serve exited %d; stderr %s", c, stderr.String())
		}
	})
	if m == nil {
		t.Fatalf("start line %q", lines.Text())
	}
	return m[1]
}

// TestServeCallers: keel serve with callers in its configuration
// authenticates each request (SigV4 by the caller's key), keeps each caller
// to its models and tokens per minute with the errors AWS gives, and shows
// the callers on its status page and in its metrics.
func TestServeCallers(t *testing.T) {
	t.Setenv("TEAM_A_SECRET", "team-a-secret-key-0123456789")
	cfg := filepath.Join(t.TempDir(), "keel.yaml")
	if err := os.WriteFile(cfg, []byte(`gateway:
  callers:
    - name: team-a
      sigv4: {access_key_id: AKIAEXAMPLETEAMA, secret_access_key: env:TEAM_A_SECRET}
      models: ["*claude-3-haiku*"]
    - name: team-b
      sigv4: {access_key_id: AKIAEXAMPLETEAMB, secret_access_key: team-b-secret-key-0123456789}
      priority: batch
      tokens_per_minute: 1000
`), 0o600); err != nil {
		t.Fatal(err)
	}
	url := startServe(t, "--emulator", "--config", cfg)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := func(key, secret string) *bedrockruntime.Client {
		return bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String(url),
			Credentials: credentials.NewStaticCredentialsProvider(key, secret, ""), RetryMaxAttempts: 1,
			HTTPClient: &http.Client{Transport: tr}})
	}
	const haiku, sonnet = "anthropic.claude-3-haiku-20240307-v1:0", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
	tests := []struct {
		name        string
		key, secret string
		model       string
		maxTokens   int32
		wantCode    string // "": success
	}{
		{"team-a, its model", "AKIAEXAMPLETEAMA", "team-a-secret-key-0123456789", haiku, 100, ""},
		{"team-a, another model", "AKIAEXAMPLETEAMA", "team-a-secret-key-0123456789", sonnet, 100, "AccessDeniedException"},
		{"team-a's key, a wrong secret", "AKIAEXAMPLETEAMA", "not-the-secret", haiku, 100, "InvalidSignatureException"},
		{"an unknown key", "AKIAEXAMPLEOTHER", "whatever", haiku, 100, "UnrecognizedClientException"},
		{"team-b, within its budget", "AKIAEXAMPLETEAMB", "team-b-secret-key-0123456789", sonnet, 100, ""},
		{"team-b, over its budget", "AKIAEXAMPLETEAMB", "team-b-secret-key-0123456789", sonnet, 4000, "ThrottlingException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client(tt.key, tt.secret).Converse(context.Background(), &bedrockruntime.ConverseInput{
				ModelId:         aws.String(tt.model),
				Messages:        []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "Hello"}}}},
				InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(tt.maxTokens)},
			})
			var ae smithy.APIError
			switch {
			case tt.wantCode == "" && err != nil:
				t.Fatalf("err %v, want success", err)
			case tt.wantCode != "" && (!errors.As(err, &ae) || ae.ErrorCode() != tt.wantCode):
				t.Fatalf("err %v, want %s", err, tt.wantCode)
			}
		})
	}
	get := func(path string) string {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	page := get("/")
	for _, want := range []string{"team-a", "team-b", haiku} {
		if !strings.Contains(page, want) {
			t.Errorf("the status page does not show %q", want)
		}
	}
	if strings.Contains(page, "team-a-secret") || strings.Contains(page, "team-b-secret") {
		t.Error("the status page shows a caller's secret")
	}
	metrics := get("/metrics")
	for _, want := range []string{`keel_gateway_requests_total{caller="team-a",operation="converse",status="200"} 1`,
		`keel_gateway_refusals_total{caller="team-b",code="ThrottlingException"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}

// TestServeMetricsBounded: callers who name many models or regions cannot
// make /metrics grow without end: past a bound, new values are counted
// under "other".
func TestServeMetricsBounded(t *testing.T) {
	const n = 100 // distinct values sent, more than the engine's bound of 64
	tests := []struct {
		name   string
		model  func(i int) string
		region func(i int) string
		label  string // the label whose values are counted
		prefix string // the start of the values sent
	}{
		{name: "model ids", model: func(i int) string { return fmt.Sprintf("anthropic.claude-junk-%d", i) },
			region: func(int) string { return "us-east-1" }, label: "model", prefix: "anthropic.claude-junk-"},
		{name: "regions", model: func(int) string { return "anthropic.claude-3-haiku-20240307-v1:0" },
			region: func(i int) string { return fmt.Sprintf("us-east-%d", 10+i%90) }, label: "region", prefix: "us-east-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := startServe(t, "--emulator")
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			for i := range n {
				c := bedrockruntime.New(bedrockruntime.Options{Region: tt.region(i), BaseEndpoint: aws.String(url),
					Credentials: credentials.NewStaticCredentialsProvider("AKIDCALLER", "caller-secret", ""), RetryMaxAttempts: 1,
					HTTPClient: &http.Client{Transport: tr}})
				c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(tt.model(i)),
					Messages:        []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "Hello"}}}},
					InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(10)}})
			}
			resp, err := (&http.Client{Transport: tr}).Get(url + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen := map[string]bool{}
			for _, m := range regexp.MustCompile(tt.label+`="([^"]*)"`).FindAllStringSubmatch(string(b), -1) {
				seen[m[1]] = true
			}
			sent := 0
			for v := range seen {
				if strings.HasPrefix(v, tt.prefix) {
					sent++
				}
			}
			if sent == 0 || sent > 64 || !seen["other"] {
				t.Fatalf("/metrics (%d bytes) has %d %s values of the %d sent (want at most 64) and other: %v", len(b), sent, tt.label, n, seen["other"])
			}
		})
	}
}

// TestServeBudgets: a caller's budget counts as the quota does (a request
// without max tokens holds the model's largest output), and a wait for it
// that would cross the call's deadline gets its ThrottlingException at once.
func TestServeBudgets(t *testing.T) {
	const haiku = "anthropic.claude-3-haiku-20240307-v1:0" // largest output 4096
	tests := []struct {
		name      string
		tpm       int
		maxTokens []int32 // one call each, in order; 0: none set
		wantLast  string  // the last call's error code; "": success
	}{
		{name: "max tokens within the budget", tpm: 5000, maxTokens: []int32{100}},
		{name: "no max tokens: the model's largest output, over the budget", tpm: 1000, maxTokens: []int32{0}, wantLast: "ThrottlingException"},
		{name: "no max tokens within the budget", tpm: 5000, maxTokens: []int32{0}},
		// The second call's wait is about 50 s, past gateway.timeout.
		{name: "a wait past the deadline", tpm: 120, maxTokens: []int32{100, 100}, wantLast: "ThrottlingException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "keel.yaml")
			if err := os.WriteFile(cfg, fmt.Appendf(nil, `gateway:
  timeout: 2s
  callers:
    - name: team-b
      sigv4: {access_key_id: AKIAEXAMPLETEAMB, secret_access_key: team-b-secret-key-0123456789}
      tokens_per_minute: %d
`, tt.tpm), 0o600); err != nil {
				t.Fatal(err)
			}
			url := startServe(t, "--emulator", "--config", cfg)
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String(url),
				Credentials:      credentials.NewStaticCredentialsProvider("AKIAEXAMPLETEAMB", "team-b-secret-key-0123456789", ""),
				RetryMaxAttempts: 1, HTTPClient: &http.Client{Transport: tr}})
			var err error
			for i, m := range tt.maxTokens {
				in := &bedrockruntime.ConverseInput{ModelId: aws.String(haiku),
					Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "Hello"}}}}}
				if m > 0 {
					in.InferenceConfig = &types.InferenceConfiguration{MaxTokens: aws.Int32(m)}
				}
				// The client's own timeout is longer than the gateway's: an
				// answer before it comes from the gateway.
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, err = c.Converse(ctx, in)
				cancel()
				if i < len(tt.maxTokens)-1 && err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			var ae smithy.APIError
			switch {
			case tt.wantLast == "" && err != nil:
				t.Fatalf("last call: %v", err)
			case tt.wantLast != "" && (!errors.As(err, &ae) || ae.ErrorCode() != tt.wantLast):
				t.Fatalf("last call: %v, want %s", err, tt.wantLast)
			}
		})
	}
}

// TestServeCacheStatus: keel serve with a cache: section shows the cache's
// figures on its status page and in status.json; one without shows none.
func TestServeCacheStatus(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, config string
		wantJSON     []string // nil: no cache key
	}{
		{"memory", "cache:\n  mode: all\n", []string{`"mode": "all"`, `"store": "memory"`, `"hits": 1,`, `"misses": 1,`, `"entries": 1,`}},
		{"sqlite", "cache:\n  mode: all\n  store: sqlite:" + filepath.Join(dir, "cache.db") + "\n",
			[]string{`"store": "sqlite:` + filepath.Join(dir, "cache.db") + `"`, `"hits": 1,`, `"misses": 1,`, `"stored": 1,`}},
		{"no cache", "region: us-east-1\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filepath.Join(dir, tt.name+".yaml")
			if err := os.WriteFile(cfg, []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			url := startServe(t, "--emulator", "--config", cfg)
			tr := &http.Transport{}
			t.Cleanup(tr.CloseIdleConnections)
			client := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String(url),
				Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""), RetryMaxAttempts: 1,
				HTTPClient: &http.Client{Transport: tr}})
			for range 2 {
				if _, err := client.Converse(context.Background(), &bedrockruntime.ConverseInput{
					ModelId:  aws.String("anthropic.claude-3-haiku-20240307-v1:0"),
					Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "Hello"}}}},
				}); err != nil {
					t.Fatal(err)
				}
			}
			for _, path := range []string{"/status.json", "/"} {
				resp, err := http.Get(url + path)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body := string(b)
				if path == "/" {
					if got := strings.Contains(body, "<h2>Response cache</h2>"); got != (tt.wantJSON != nil) {
						t.Errorf("the page shows a cache section: %v, want %v", got, tt.wantJSON != nil)
					}
					continue
				}
				if tt.wantJSON == nil && strings.Contains(body, `"cache"`) {
					t.Errorf("status.json has a cache without one configured:\n%s", body)
				}
				for _, w := range tt.wantJSON {
					if !strings.Contains(body, w) {
						t.Errorf("status.json lacks %s:\n%s", w, body)
					}
				}
			}
		})
	}
}
