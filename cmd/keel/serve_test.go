package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
)

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:4000", true},
		{"127.0.0.2:4000", true},
		{"[::1]:4000", true},
		{"localhost:4000", true},
		{"0.0.0.0:4000", false},
		{":4000", false},
		{"[::]:4000", false},
		{"10.0.0.5:4000", false},
		{"gateway.internal:4000", false},
		{"127.0.0.1", false},
	}
	for _, tt := range tests {
		if got := isLoopback(tt.addr); got != tt.want {
			t.Errorf("isLoopback(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// TestServeDrainsAStream stops keel serve (as SIGTERM does: serve's
// context ends) while a stream is running: the stream is read to its end,
// and serve then stops cleanly.
func TestServeDrainsAStream(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		// Paced replies: the stream is still running when serve is told to stop.
		code <- serve(ctx, []string{"--emulator", "--speed", "0.05", "--listen", "127.0.0.1:0"}, outW, &stderr)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	if !lines.Scan() {
		t.Fatalf("no start line; stderr %s", stderr.String())
	}
	m := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+) `).FindStringSubmatch(lines.Text())
	if m == nil {
		t.Fatalf("start line %q", lines.Text())
	}
	var rest strings.Builder
	done := make(chan struct{})
	go func() {
		for lines.Scan() {
			rest.WriteString(lines.Text() + "\n")
		}
		close(done)
	}()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String(m[1]),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDCALLER", "caller-secret", ""), RetryMaxAttempts: 1,
		// The request body without its WriteTo: see plainBody in
		// internal/gateway's tests (a race of smithy-go and net/http that
		// can close the connection under a stream).
		HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Body != nil && r.Body != http.NoBody {
				r = r.Clone(r.Context())
				r.Body = struct{ io.ReadCloser }{r.Body}
			}
			return tr.RoundTrip(r)
		})}})
	out, err := client.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{
		ModelId:         aws.String("anthropic.claude-3-haiku-20240307-v1:0"),
		Messages:        []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "Tell me about keels."}}}},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(200)},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := out.GetStream()
	defer s.Close()
	<-s.Events() // the stream is running
	stop()       // SIGTERM
	var ended bool
	for ev := range s.Events() {
		if _, ok := ev.(*types.ConverseStreamOutputMemberMessageStop); ok {
			ended = true
		}
	}
	if s.Err() != nil || !ended {
		t.Fatalf("the stream ended with %v (message stop %v)", s.Err(), ended)
	}
	if c := <-code; c != 0 {
		t.Fatalf("serve exited %d; stderr %s", c, stderr.String())
	}
	<-done
	if !strings.Contains(rest.String(), "keel serve: stopped\n") {
		t.Fatalf("stdout after the start line: %q", rest.String())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
