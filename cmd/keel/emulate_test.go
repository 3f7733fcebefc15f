package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"

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
		{name: "help", args: []string{"-h"}, code: 0, stderr: "Usage: keel emulate"},
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
	help := errb.String()
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
