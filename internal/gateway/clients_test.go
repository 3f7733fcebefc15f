package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/gateway"
)

// clientTimeout bounds one run of a client script: seven calls at most to
// a gateway over an emulator with no simulated latency, so a minute means
// it hung.
const clientTimeout = time.Minute

// The client scripts' directories, relative to this package.
var (
	jsDir = filepath.Join("..", "..", "test", "js")
	pyDir = filepath.Join("..", "..", "test", "py")
)

// clientCall is one line of a client script's output.
type clientCall struct {
	Client       string `json:"client"`
	Op           string `json:"op"`
	Text         string `json:"text"`
	InputTokens  int    `json:"input_tokens"`
	OutputTokens int    `json:"output_tokens"`
	StopReason   string `json:"stop_reason"`
}

// requirement skips a test whose client is not installed, saying how to
// install it, or fails it when env is set to 1 (as .ci/run sets it).
func requirement(t *testing.T, env, install string) func(what string) {
	return func(what string) {
		t.Helper()
		msg := what + "; " + install + " to run this check"
		if os.Getenv(env) == "1" {
			t.Fatal(msg + " (" + env + "=1 requires it)")
		}
		t.Skip(msg)
	}
}

// protocols records the HTTP version of each request the gateway
// authenticates (every request on /model/): its Authenticate lets all in,
// as an open gateway does.
type protocols struct {
	mu    sync.Mutex
	seen  []string // "op HTTP/x"
	calls []gateway.Event
}

func (p *protocols) setup() setup {
	return setup{gateway: func(o *gateway.Options) {
		o.Authenticate = func(r *http.Request, _ string, _ []byte) (gateway.Caller, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.seen = append(p.seen, r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]+" "+r.Proto)
			return gateway.Caller{Name: "client-script"}, nil
		}
		o.Observe = func(e gateway.Event) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.calls = append(p.calls, e)
		}
	}}
}

// runClient runs a client script against the gateway at url and returns
// its output lines.
func runClient(t *testing.T, dir, url string, name string, args ...string) []clientCall {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	// The scripts' own credentials and endpoint only: no AWS_ or
	// ANTHROPIC_ variable (a profile, a bearer token, an endpoint) may
	// redirect or re-sign the SDKs' calls.
	cmd.Env = []string{"KEEL_URL=" + url}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "ANTHROPIC_") && !strings.HasPrefix(kv, "KEEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	var calls []clientCall
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var c clientCall
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		if c.Op != "" { // boto3's first line names its version
			calls = append(calls, c)
		} else {
			t.Logf("%s", l)
		}
	}
	return calls
}

// checkCalls checks that the calls were ops, in order, each completed by
// the gateway (Observe saw status 200 for each), and that every reply is
// the emulator's one reply to the scripts' prompt: the same text, usage
// and stop reason whatever the operation or client (count tokens agrees
// on the input).
func checkCalls(t *testing.T, calls []clientCall, ops []string, seen []gateway.Event) {
	t.Helper()
	var got []string
	for _, c := range calls {
		got = append(got, c.Client+" "+c.Op)
	}
	if !slices.Equal(got, ops) {
		t.Fatalf("calls:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(ops, "\n\t"))
	}
	first := calls[0]
	if first.Text == "" || first.InputTokens == 0 || first.OutputTokens == 0 || (first.StopReason != "end_turn" && first.StopReason != "max_tokens") {
		t.Fatalf("%s %s: %+v: want text, usage and a stop reason", first.Client, first.Op, first)
	}
	for _, c := range calls[1:] {
		if c.Op == "count-tokens" {
			if c.InputTokens != first.InputTokens {
				t.Errorf("%s count-tokens: %d input tokens; the calls used %d", c.Client, c.InputTokens, first.InputTokens)
			}
			continue
		}
		if c.Text != first.Text || c.InputTokens != first.InputTokens || c.OutputTokens != first.OutputTokens || c.StopReason != first.StopReason {
			t.Errorf("%s %s: %q, %d in, %d out, %s; want the same as %s %s: %q, %d, %d, %s", c.Client, c.Op, c.Text, c.InputTokens,
				c.OutputTokens, c.StopReason, first.Client, first.Op, first.Text, first.InputTokens, first.OutputTokens, first.StopReason)
		}
	}
	if len(seen) != len(calls) {
		t.Fatalf("the gateway observed %d requests, the script made %d calls", len(seen), len(calls))
	}
	for _, e := range seen {
		if e.Status != http.StatusOK || e.Code != "" || e.Caller != "client-script" {
			t.Errorf("gateway observed %s %s: status %d, code %q, caller %q; want 200, none, client-script", e.Op, e.Model, e.Status, e.Code, e.Caller)
		}
	}
}

// TestJSClients runs test/js/gateway.mjs against the gateway: the AWS SDK
// for JavaScript v3 (all five operations, over HTTP/2 with prior
// knowledge, as its NodeHttp2Handler speaks) and @anthropic-ai/bedrock-sdk
// (messages.create, plain and streamed), each pointed at the gateway by
// its endpoint alone. Without node or test/js's node_modules it skips;
// with KEEL_REQUIRE_JS=1 (as .ci/run sets) it fails instead.
func TestJSClients(t *testing.T) {
	missing := requirement(t, "KEEL_REQUIRE_JS", "install with `npm ci --prefix test/js` (and Node.js 18 or later)")
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	for _, pkg := range []string{"@aws-sdk/client-bedrock-runtime", "@anthropic-ai/bedrock-sdk"} {
		if _, err := os.Stat(filepath.Join(jsDir, "node_modules", pkg, "package.json")); err != nil {
			missing("test/js/node_modules has no " + pkg)
		}
	}
	var p protocols
	h := newHarness(t, p.setup())
	calls := runClient(t, jsDir, h.url, node, "gateway.mjs")
	p.mu.Lock()
	defer p.mu.Unlock()
	checkCalls(t, calls, []string{
		"aws-sdk-js-v3 converse", "aws-sdk-js-v3 converse-stream", "aws-sdk-js-v3 invoke",
		"aws-sdk-js-v3 invoke-with-response-stream", "aws-sdk-js-v3 count-tokens",
		"anthropic-bedrock-sdk messages.create", "anthropic-bedrock-sdk messages.create stream",
	}, p.calls)
	// The AWS SDK's five calls came over HTTP/2.
	want := []string{"converse HTTP/2.0", "converse-stream HTTP/2.0", "invoke HTTP/2.0",
		"invoke-with-response-stream HTTP/2.0", "count-tokens HTTP/2.0"}
	if len(p.seen) < len(want) || !slices.Equal(p.seen[:len(want)], want) {
		t.Errorf("the gateway saw %v; want the AWS SDK's calls first: %v", p.seen, want)
	}
}

// TestPythonClient runs test/py/gateway.py against the gateway: boto3's
// bedrock-runtime client pointed at it by endpoint_url, all five
// operations (count_tokens where that boto3 has it). It runs the Python of
// KEEL_PYTHON (.ci/run names Debian's, /usr/bin/python3 with
// python3-boto3), else python3 on PATH. gateway.py puts
// test/py/botocore-data (bedrock-runtime's service model) on AWS_DATA_PATH,
// so a boto3 older than Bedrock has the client. Without python3 or boto3 it
// skips; with KEEL_REQUIRE_PY=1 (as .ci/run sets) it fails instead.
func TestPythonClient(t *testing.T) {
	missing := requirement(t, "KEEL_REQUIRE_PY", "install boto3 (on Debian: `apt-get install python3-boto3`)")
	python := os.Getenv("KEEL_PYTHON")
	if python == "" {
		var err error
		if python, err = exec.LookPath("python3"); err != nil {
			missing("python3 is not on PATH")
		}
	}
	// That boto3 is there at all, before the gateway starts.
	if out, err := exec.Command(python, "-c", "import boto3").CombinedOutput(); err != nil {
		missing(python + " cannot import boto3: " + strings.TrimSpace(string(out)))
	}
	var p protocols
	h := newHarness(t, p.setup())
	calls := runClient(t, pyDir, h.url, python, "gateway.py")
	p.mu.Lock()
	defer p.mu.Unlock()
	ops := []string{"boto3 converse", "boto3 converse-stream", "boto3 invoke", "boto3 invoke-with-response-stream", "boto3 count-tokens"}
	if len(calls) == 4 { // a boto3 older than count_tokens
		t.Logf("this boto3 has no count_tokens")
		ops = ops[:4]
	}
	checkCalls(t, calls, ops, p.calls)
}
