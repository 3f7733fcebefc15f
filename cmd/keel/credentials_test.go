package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go/logging"
)

// emptyAWSEnv leaves the AWS SDK no credentials: no AWS_* variables, HOME
// an empty directory, the instance metadata service at imds (or switched
// off when imds is ""), and Bedrock itself at a closed loopback port, so
// that nothing this test does can leave the machine.
func emptyAWSEnv(t *testing.T, imds string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	if imds == "" {
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	} else {
		t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds)
	}
	t.Setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://127.0.0.1:1")
}

// closedPort returns the URL of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + ln.Addr().String()
}

// captureStderr collects what is written to os.Stderr (where the SDK's
// default logger writes) while f runs.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	saved := os.Stderr
	os.Stderr = tmp
	defer func() { os.Stderr = saved }()
	f()
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNoCredentialsFailsFast (issue 15, item 8): with no credentials
// anywhere, `keel converse` resolves credentials before the call and fails
// at once with CredentialsUnavailable and its fix, whatever the instance
// metadata service does (refuse, answer 403, say nothing, be switched off),
// and the SDK's "falling back to IMDSv1" warning never reaches stderr.
func TestNoCredentialsFailsFast(t *testing.T) {
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	defer forbidden.Close()
	tests := []struct {
		name string
		imds string
	}{
		{name: "metadata service answers 403", imds: forbidden.URL},
		{name: "metadata service refuses", imds: closedPort(t)},
		{name: "metadata service says nothing", imds: silentServer(t)},
		{name: "metadata service off", imds: ""},
	}
	// The SDK's own metadata client alone takes 4 s to give up on a refusing
	// service (3 attempts) and 5 s on a silent one: well over this.
	const fast = 3 * time.Second
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emptyAWSEnv(t, tt.imds)
			var out, errb bytes.Buffer
			var code int
			start := time.Now()
			osErr := captureStderr(t, func() {
				code = run([]string{"converse", "--model", "anthropic.claude-3-haiku-20240307-v1:0", "--prompt", "hi"}, &out, &errb)
			})
			took := time.Since(start)
			all := errb.String() + osErr
			var problems []string
			if code == 0 {
				problems = append(problems, "exit 0 without credentials")
			}
			if took > fast {
				problems = append(problems, fmt.Sprintf("took %v, want under %v", took, fast))
			}
			for _, want := range []string{"CredentialsUnavailable", "aws sts get-caller-identity"} {
				if !strings.Contains(all, want) {
					problems = append(problems, fmt.Sprintf("stderr lacks %q", want))
				}
			}
			for _, bad := range []string{"IMDSv1", "UnknownNetworkError", "UnknownClientError", "retry: yes"} {
				if strings.Contains(all, bad) {
					problems = append(problems, fmt.Sprintf("stderr has %q", bad))
				}
			}
			if len(problems) > 0 {
				t.Errorf("%s\nstderr:\n%s", strings.Join(problems, "\n"), all)
			}
		})
	}
}

// TestSDKLogger: the SDK's log lines go to keel's logger (--log), a
// warning as a warning, or nowhere.
func TestSDKLogger(t *testing.T) {
	tests := []struct {
		name  string
		class logging.Classification
		log   bool
		want  string // "" for nothing written
	}{
		{name: "no logger drops warnings", class: logging.Warn},
		{name: "warning", class: logging.Warn, log: true, want: `"level":"WARN","msg":"falling back to IMDSv1: 403","source":"aws-sdk"`},
		{name: "debug stays under the info level", class: logging.Debug, log: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			var l *slog.Logger
			if tt.log {
				l = newJSONLogger(&b)
			}
			sdkLogger(l).Logf(tt.class, "falling back to IMDSv1: %d", 403)
			if got := b.String(); tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("wrote %q, want %q", got, tt.want)
			}
		})
	}
}
