package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"

	"github.com/keel-run/keel/internal/emulator/admin"
	"github.com/keel-run/keel/internal/emulator/quota"
	"github.com/keel-run/keel/internal/emulator/reply"
)

// watched collects a running command's output and reports the emulator's
// URL once it is printed.
type watched struct {
	mu  sync.Mutex
	buf bytes.Buffer
	url chan string
}

var urlLine = regexp.MustCompile(`Bedrock Runtime on (http://\S+)`)

func (w *watched) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := urlLine.FindSubmatch(p); m != nil {
		w.url <- string(m[1])
	}
	return len(p), nil
}

func (w *watched) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// startEmulate runs `keel emulate args` until the returned stop is called,
// which returns the exit code and output.
func startEmulate(t *testing.T, args ...string) (url string, stop func() (int, string, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &watched{url: make(chan string, 1)}
	var errb bytes.Buffer
	code := make(chan int, 1)
	go func() { code <- emulate(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), out, &errb) }()
	select {
	case url = <-out.url:
	case c := <-code:
		cancel()
		t.Fatalf("keel emulate exited with %d: %s", c, errb.String())
	}
	return url, func() (int, string, string) {
		cancel()
		c := <-code
		return c, out.String(), errb.String()
	}
}

func sdkClient(url, region, secret string) *bedrockruntime.Client {
	return bedrockruntime.New(bedrockruntime.Options{Region: region, BaseEndpoint: aws.String(url), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEMU", secret, "")})
}

func converse(c *bedrockruntime.Client, model, text string) (*bedrockruntime.ConverseOutput, error) {
	return c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(model),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: text}}}}})
}

const emuModel = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

func TestEmulateServes(t *testing.T) {
	url, stop := startEmulate(t, "--seed", "3", "--reply-tokens", "30-30")
	out, err := converse(sdkClient(url, "us-west-2", "secret"), emuModel, "hello")
	if err != nil {
		t.Fatalf("Converse: %v", err)
	}
	want := reply.Generate(&reply.Request{Seed: 3, Model: "anthropic.claude-sonnet-4-5-20250929-v1:0",
		Messages: []reply.Message{{Role: "user", Text: "hello"}}, MaxTokens: 64000, Length: reply.Range{Min: 30, Max: 30}})
	if got := out.Output.(*types.ConverseOutputMemberMessage).Value.Content[0].(*types.ContentBlockMemberText).Value; got != want.Text {
		t.Errorf("reply %q\nwant %q (seed and reply length from the flags)", got, want.Text)
	}

	// The admin API is mounted and counts the request.
	resp, err := http.Get(url + "/_emulator/counters")
	if err != nil {
		t.Fatal(err)
	}
	var counters struct {
		Requests int64          `json:"requests"`
		Outcomes map[string]int `json:"outcomes"`
	}
	err = json.NewDecoder(resp.Body).Decode(&counters)
	resp.Body.Close()
	if err != nil || counters.Outcomes["OK"] != 1 {
		t.Errorf("counters %+v (%v), want one OK outcome", counters, err)
	}

	code, stdout, stderr := stop()
	if code != 0 || !strings.Contains(stdout, "keel emulate: stopped") || stderr != "" {
		t.Errorf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(url, "http://")); err == nil {
		t.Error("still listening after stopping")
	}
}

func TestEmulateScenario(t *testing.T) {
	file := filepath.Join(t.TempDir(), "throttle.yaml")
	os.WriteFile(file, []byte(`rules:
  - region: eu-west-1
    operation: converse
    errors:
      - code: ThrottlingException
        probability: 1
`), 0o644)
	url, stop := startEmulate(t, "--scenario", file)
	defer stop()
	tests := []struct {
		name   string
		region string
		code   string
	}{
		{name: "rule's region", region: "eu-west-1", code: "ThrottlingException"},
		{name: "other region", region: "eu-west-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := converse(sdkClient(url, tt.region, "s"), "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "hi")
			var api smithy.APIError
			if tt.code == "" && err != nil || tt.code != "" && (!errors.As(err, &api) || api.ErrorCode() != tt.code) {
				t.Errorf("Converse from %s: %v, want %q", tt.region, err, tt.code)
			}
		})
	}
}

func TestEmulateSigV4(t *testing.T) {
	url, stop := startEmulate(t, "--access-key", "AKIDEMU=right-secret")
	defer stop()
	tests := []struct {
		name   string
		secret string
		code   string
	}{
		{name: "right secret", secret: "right-secret"},
		{name: "wrong secret", secret: "wrong-secret", code: "InvalidSignatureException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := converse(sdkClient(url, "us-east-1", tt.secret), emuModel, "hi")
			var api smithy.APIError
			if tt.code == "" && err != nil || tt.code != "" && (!errors.As(err, &api) || api.ErrorCode() != tt.code) {
				t.Errorf("Converse: %v, want %q", err, tt.code)
			}
		})
	}
}

func TestEmulateBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  - hang: 3\n"), 0o644)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{name: "unknown flag", args: []string{"--nope"}, code: 2, stderr: "flag provided but not defined: -nope"},
		{name: "bad speed", args: []string{"--speed", "fast"}, code: 2, stderr: `invalid value "fast" for flag -speed`},
		{name: "negative speed", args: []string{"--speed", "-1"}, code: 1, stderr: "Speed -1"},
		{name: "bad region", args: []string{"--region", "moon"}, code: 1, stderr: `DefaultRegion "moon"`},
		{name: "bad access key", args: []string{"--access-key", "AKID"}, code: 2, stderr: `want ID=SECRET, got "AKID"`},
		{name: "bad reply length", args: []string{"--reply-tokens", "50-10"}, code: 2, stderr: "want MIN-MAX"},
		{name: "extra argument", args: []string{"now"}, code: 2, stderr: `unexpected argument "now"`},
		{name: "missing scenario", args: []string{"--scenario", filepath.Join(dir, "none.yaml")}, code: 1, stderr: "none.yaml"},
		{name: "invalid scenario", args: []string{"--scenario", bad}, code: 1, stderr: "rules[0].hang: probability 3 is not between 0 and 1"},
		{name: "address in use", args: []string{"--listen", busy.Addr().String()}, code: 1, stderr: "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"emulate"}, tt.args...), &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errb.String(), tt.code, tt.stderr)
			}
		})
	}
}

// TestEmulateSignal sends the process a real SIGTERM while `keel emulate`
// runs: it must stop cleanly and return 0.
func TestEmulateSignal(t *testing.T) {
	out := &watched{url: make(chan string, 1)}
	var errb bytes.Buffer
	code := make(chan int, 1)
	go func() { code <- runEmulate([]string{"--listen", "127.0.0.1:0"}, out, &errb) }()
	<-out.url // listening, so the signal handler is in place
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if c := <-code; c != 0 || !strings.Contains(out.String(), "stopped") {
		t.Errorf("exit %d, output %q, stderr %q", c, out.String(), errb.String())
	}
}

// TestEmulateItem13FlagHelp covers issue 15, item 13 for keel emulate: a
// backquoted word in a flag's description is taken by flag.UnquoteUsage for
// the flag's argument name, so descriptions carry no backquotes and every
// flag's argument is named by its type, with the format in the description.
func TestEmulateItem13FlagHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"emulate", "-h"}, &out, &errb); code != 0 {
		t.Fatalf("keel emulate -h exited %d", code)
	}
	help := out.String() // help goes to stdout (TestHelpExitsZero)
	if strings.Contains(help, "`") {
		t.Errorf("help has a backquote:\n%s", help)
	}
	flagLine := regexp.MustCompile(`(?m)^  -(\S+)(?: (\S+))?$`)
	seen := 0
	for _, m := range flagLine.FindAllStringSubmatch(help, -1) {
		seen++
		switch m[2] {
		case "", "string", "value", "int", "float", "duration":
		default:
			t.Errorf("flag -%s shows argument %q, a word of its description rather than its type", m[1], m[2])
		}
	}
	if seen == 0 {
		t.Fatalf("no flags in help:\n%s", help)
	}
	for _, want := range []string{"host:port", "ID=SECRET", "MIN-MAX", "YAML"} {
		if !strings.Contains(help, want) {
			t.Errorf("help does not say %q:\n%s", want, help)
		}
	}
}

// TestEmulateItem11aCountersBounded covers issue 15, item 11 (counters): a
// client sending many distinct bogus model ids or region strings made the
// emulator keep a counter (and a fault-plan state and a quota entry) for
// each, so 5,000 ids of 20 KB held 790 MB once the counters were read. Ids
// longer than Bedrock allows are refused before anything counts them, ids
// that name no model are counted as one, region strings that are not regions
// are refused, and what is left is capped.
func TestEmulateItem11aCountersBounded(t *testing.T) {
	file := filepath.Join(t.TempDir(), "s.yaml")
	// A rule, so the fault planner keeps state per model and region, and a
	// quota, so the meter does.
	os.WriteFile(file, []byte("quotas:\n  - tokens_per_minute: 100000000\nrules:\n  - model: never\n    hang: 1\n"), 0o644)
	s, err := buildEmulator(emulateConfig{scenario: file, seed: 1, region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	const body = `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":5}}`
	serve := func(path, auth string) int {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w.Code
	}
	letters := func(i int) string { // i in base 26, as letters
		b := []byte{}
		for ; ; i /= 26 {
			b = append(b, byte('a'+i%26))
			if i < 26 {
				return string(b)
			}
		}
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	const n = 1500 // above every cap
	long := strings.Repeat("x", 20<<10)
	sent := map[int]int{}
	for i := range n {
		// A 20 KB model id, a short bogus one, an ARN that names a real model
		// with a made-up account, a made-up but well-formed region, and a
		// credential scope whose region is not a region.
		sent[serve(fmt.Sprintf("/model/%d%s/converse", i, long), "")]++
		sent[serve(fmt.Sprintf("/model/bogus-%d/converse", i), "")]++
		sent[serve(fmt.Sprintf("/model/arn:aws:bedrock:us-east-1:%012d:inference-profile%%2Fus.amazon.nova-lite-v1:0/converse", i), "")]++
		sent[serve("/region/us-"+letters(i)+"-1/model/amazon.nova-lite-v1:0/converse", "")]++
		sent[serve("/model/amazon.nova-lite-v1:0/converse",
			"AWS4-HMAC-SHA256 Credential=AKID/20250101/"+long+strconv.Itoa(i)+"/bedrock/aws4_request, SignedHeaders=host, Signature=00")]++
	}
	t.Logf("statuses: %v", sent)

	r := httptest.NewRequest(http.MethodGet, "/_emulator/counters", nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var counters struct {
		Requests int64            `json:"requests"`
		Outcomes map[string]int64 `json:"outcomes"`
		Targets  []struct {
			Model, Region string
		} `json:"targets"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &counters); err != nil {
		t.Fatalf("counters: %v", err)
	}
	var outcomes int64
	for _, c := range counters.Outcomes {
		outcomes += c
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d targets, %d outcomes counted, counters %d bytes, heap grew %d KiB", len(counters.Targets), outcomes, w.Body.Len(), grew>>10)

	// Every request but those with a bad credential scope is counted, the
	// long ids too (as one unknown model).
	if outcomes != 4*n {
		t.Errorf("outcomes count %d requests, want %d", outcomes, 4*n)
	}
	if max := admin.MaxOutcomeKeys + quota.MaxPairs + 2; len(counters.Targets) > max {
		t.Errorf("%d targets in the counters, want at most %d", len(counters.Targets), max)
	}
	if w.Body.Len() > 2<<20 {
		t.Errorf("counters are %d bytes, want under 2 MiB", w.Body.Len())
	}
	// Keeping the 20 KB ids would hold 30 MB at least.
	if grew > 16<<20 {
		t.Errorf("heap grew by %d MiB, want it bounded", grew>>20)
	}
}

// TestEmulateItem11cBodyFlags covers issue 15, item 11 (buffering) at the
// command line: --max-body and --max-buffered set the emulator's limits.
func TestEmulateItem11cBodyFlags(t *testing.T) {
	url, stop := startEmulate(t, "--max-body", "2KiB", "--max-buffered", "1MiB")
	defer stop()
	post := func(size int) (int, string) {
		body := `{"messages":[{"role":"user","content":[{"text":"hi"}]}]` + strings.Repeat(" ", size-56) + `}`
		resp, err := http.Post(url+"/model/amazon.nova-lite-v1:0/converse", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var msg struct{ Message string }
		json.NewDecoder(resp.Body).Decode(&msg)
		return resp.StatusCode, msg.Message
	}
	if code, msg := post(2048); code != 200 {
		t.Errorf("a body of 2 KiB: %d %s", code, msg)
	}
	if code, msg := post(2049); code != 400 || !strings.Contains(msg, "Input is too long") || !strings.Contains(msg, "2048 bytes") {
		t.Errorf("a body of 2 KiB + 1: %d %q, want 400 naming the limit", code, msg)
	}

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{name: "not a size", args: []string{"--max-body", "big"}, code: 2, stderr: `want a size in bytes such as 32MiB or 1048576, got "big"`},
		{name: "unknown unit", args: []string{"--max-body", "3MB"}, code: 2, stderr: `want a size in bytes such as 32MiB`},
		{name: "zero", args: []string{"--max-buffered", "0"}, code: 2, stderr: `want a size above zero`},
		{name: "buffer below body", args: []string{"--max-body", "2MiB", "--max-buffered", "1MiB"}, code: 1, stderr: "MaxBufferedBytes 1048576 is below MaxBodyBytes 2097152"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"emulate", "--listen", "127.0.0.1:0"}, tt.args...), &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errb.String(), tt.code, tt.stderr)
			}
		})
	}
}

// TestEmulateItem11bAdminProtected covers issue 15, item 11 (admin API) at
// the command line: with --access-key the admin API wants a SigV4 signature
// by that key (it was open); with an admin token, from --admin-token or
// KEEL_EMULATOR_ADMIN_TOKEN, it wants the token, which is never printed.
func TestEmulateItem11bAdminProtected(t *testing.T) {
	const token = "tok-3f9a1c77e2"
	type creds int
	const (
		none creds = iota
		bearer
		sigv4
	)
	tests := []struct {
		name   string
		args   []string
		env    string // KEEL_EMULATOR_ADMIN_TOKEN
		creds  creds
		status int
		banner string // what the start-up output says of the admin API
	}{
		{name: "open by default", creds: none, status: 200, banner: "open: anyone who can reach"},
		{name: "access key: unsigned", args: []string{"--access-key", "AKIDEMU=right-secret"}, creds: none, status: 401, banner: "SigV4 signature"},
		{name: "access key: signed", args: []string{"--access-key", "AKIDEMU=right-secret"}, creds: sigv4, status: 200},
		{name: "token flag: none given", args: []string{"--admin-token", token}, creds: none, status: 401, banner: "admin token"},
		{name: "token flag: given", args: []string{"--admin-token", token}, creds: bearer, status: 200},
		{name: "token from the environment: none given", env: token, creds: none, status: 401},
		{name: "token from the environment: given", env: token, creds: bearer, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KEEL_EMULATOR_ADMIN_TOKEN", tt.env)
			url, stopEmulate := startEmulate(t, tt.args...)
			var once sync.Once
			var code int
			var stdout, stderr string
			stop := func() (int, string, string) {
				once.Do(func() { code, stdout, stderr = stopEmulate() })
				return code, stdout, stderr
			}
			defer stop()
			req, err := http.NewRequest(http.MethodGet, url+"/_emulator/counters", nil)
			if err != nil {
				t.Fatal(err)
			}
			switch tt.creds {
			case bearer:
				req.Header.Set("Authorization", "Bearer "+token)
			case sigv4:
				empty := sha256.Sum256(nil)
				err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKIDEMU", SecretAccessKey: "right-secret"},
					req, hex.EncodeToString(empty[:]), "bedrock", "us-east-1", time.Now())
				if err != nil {
					t.Fatal(err)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			stop()
			if resp.StatusCode != tt.status {
				t.Errorf("GET /_emulator/counters: %d, want %d", resp.StatusCode, tt.status)
			}
			if code != 0 || strings.Contains(stdout+stderr, token) {
				t.Errorf("exit %d; the output must not show the token:\n%s%s", code, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.banner) {
				t.Errorf("start-up output does not say %q:\n%s", tt.banner, stdout)
			}
		})
	}
}
