package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keel-run/keel/internal/emulator"
)

// quietHost is a machine whose kernel probes idle connections in time and
// whose environment sets nothing.
func quietHost(s *Setup) *Setup {
	s.Getenv = env{}.get
	s.Sysctl = func(name string) (string, error) {
		if name == sysKeepAliveTime {
			return "45", nil
		}
		return "9", nil
	}
	return s
}

// TestRunAgainstEmulator runs every check against keel's emulator, which
// answers STS, Service Quotas and the control plane too: all pass.
func TestRunAgainstEmulator(t *testing.T) {
	rn, err := emulator.Start(emulator.Options{Quota: func(model, region string) (int64, int64) {
		if model == "us.anthropic.claude-sonnet-4-5-20250929-v1:0" {
			return 200_000, 0
		}
		return 0, 0
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer rn.Close()
	s := quietHost(&Setup{Endpoint: rn.URL, Emulated: true, Probe: true,
		Models: []string{"us.anthropic.claude-sonnet-4-5-20250929-v1:0", "amazon.nova-lite-v1:0"},
		AWS:    aws.Config{Region: "us-west-2", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}})
	rep := Run(context.Background(), s)
	for _, res := range rep.Results {
		if res.Status != Pass && !(res.Check == "probe" && res.Subject == "amazon.nova-lite-v1:0" && res.Status == NotRun) {
			t.Errorf("%s %s %s: %s %q", res.Group, res.Check, res.Subject, res.Status, res.Seen)
		}
	}
	if rep.Region != "us-west-2" || rep.ExitCode(true) != 0 || len(rep.Results) != 4+2*5+5+2 {
		t.Errorf("region %s, exit %d, %d results", rep.Region, rep.ExitCode(true), len(rep.Results))
	}
	var groups []string
	for _, res := range rep.Results {
		if len(groups) == 0 || groups[len(groups)-1] != res.Group {
			groups = append(groups, res.Group)
		}
	}
	if strings.Join(groups, " ") != "credentials clock model access quotas connection sdk" {
		t.Errorf("groups in order %v", groups)
	}
}

// TestRunAgainstNotBedrock: an endpoint that answers every request with a
// web page. The probe fails, AWS's own services are not run, and every
// other check reports.
func TestRunAgainstNotBedrock(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html>hello</html>")
	}))
	defer srv.Close()
	s := quietHost(&Setup{Endpoint: srv.URL, Probe: true, Models: []string{"us.anthropic.claude-opus-4-7"},
		AWS: aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}})
	rep := Run(context.Background(), s)
	byCheck := map[string]Status{}
	for _, res := range rep.Results {
		byCheck[res.Check] = res.Status
	}
	want := map[string]Status{"source": Pass, "sts": NotRun, "skew": Pass, "region": Pass, "exists": NotRun, "probe": Fail,
		"tokens-per-minute": NotRun, "tcp": Pass, "tls": Pass}
	for c, st := range want {
		if byCheck[c] != st {
			t.Errorf("%s: %s, want %s", c, byCheck[c], st)
		}
	}
	if rep.ExitCode(false) != 1 {
		t.Errorf("exit %d, want 1", rep.ExitCode(false))
	}
}

// TestRunBounded: with every service hanging, Run still ends once each
// check's bound has passed, and reports every check.
func TestRunBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := quietHost(&Setup{Endpoint: "https://10.0.0.1", Emulated: true, Probe: true, Models: []string{"us.anthropic.claude-opus-4-7"},
			AWS:  aws.Config{Credentials: staticCreds(aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "s"}, nil)},
			HTTP: &http.Client{Transport: blockingTransport{}},
			DialTLS: func(ctx context.Context, _ string) (TLSState, error) {
				return TLSState{}, blocked(ctx)
			},
			Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return nil, blocked(ctx)
			},
			STS: fakeSTS{err: errBlock}, Bedrock: fakeBedrock{modelErr: errBlock, profileErr: errBlock},
			Runtime: fakeRuntime{err: errBlock}, Quotas: fakeQuotas{err: errBlock},
		})
		start := time.Now()
		rep := Run(context.Background(), s)
		if took := time.Since(start); took > DefaultCheckTimeout {
			t.Errorf("Run took %v, want at most %v", took, DefaultCheckTimeout)
		}
		if len(rep.Results) != 4+4+1+5+2 {
			t.Errorf("%d results: %+v", len(rep.Results), rep.Results)
		}
		if rep.Count(Fail) == 0 || rep.ExitCode(false) != 1 {
			t.Errorf("no failure reported: %+v", rep.Results)
		}
	})
}

// TestFollowFailures: one broken step of the path is reported once.
func TestFollowFailures(t *testing.T) {
	for _, tt := range []struct {
		failed []string
		want   string // statuses of dns, tcp, tls
	}{
		{[]string{"dns", "tcp", "tls"}, "fail not-run not-run"},
		{[]string{"tcp", "tls"}, "pass fail not-run"},
		{[]string{"tls"}, "pass pass fail"},
	} {
		var rs []Result
		for _, c := range []string{"dns", "tcp", "tls"} {
			st := Pass
			if slices.Contains(tt.failed, c) {
				st = Fail
			}
			rs = append(rs, Result{Group: GroupConnection, Check: c, Status: st})
		}
		followFailures(rs)
		got := string(rs[0].Status) + " " + string(rs[1].Status) + " " + string(rs[2].Status)
		if got != tt.want {
			t.Errorf("failed %v: %s, want %s", tt.failed, got, tt.want)
		}
	}
}

func TestReport(t *testing.T) {
	rep := &Report{Region: "us-east-1", Endpoint: "https://bedrock-runtime.us-east-1.amazonaws.com", Elapsed: 1500 * time.Millisecond,
		Results: []Result{
			{Group: GroupCredentials, Check: "source", Status: Pass, Seen: "long-term key"},
			{Group: GroupClock, Check: "skew", Status: Warn, Seen: "2m ahead", Fix: "synchronise the clock"},
			{Group: GroupModel, Check: "exists", Subject: "m", Status: NotRun, Seen: "not AWS"},
		}}
	for _, tt := range []struct {
		strict bool
		exit   int
	}{{false, 0}, {true, 1}} {
		if got := rep.ExitCode(tt.strict); got != tt.exit {
			t.Errorf("ExitCode(strict %v) = %d", tt.strict, got)
		}
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text, true); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"keel doctor: us-east-1 via https://bedrock-runtime.us-east-1.amazonaws.com; no model\n",
		"clock\n  warn    skew              2m ahead\n", "fix: synchronise the clock\n", "model m\n  not-run exists",
		"1 passed, 1 warned, 0 failed, 1 not run in 1.5s: exit 1\n"} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("text report lacks %q:\n%s", w, text.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js, false); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Region   string         `json:"region"`
		Models   []string       `json:"models"`
		Checks   []Result       `json:"checks"`
		Summary  map[string]int `json:"summary"`
		ExitCode int            `json:"exitCode"`
		Millis   int64          `json:"elapsedMs"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatalf("%v in %s", err, js.String())
	}
	if got.Region != "us-east-1" || got.Models == nil || len(got.Checks) != 3 || got.Summary["warn"] != 1 || got.Summary["notRun"] != 1 ||
		got.ExitCode != 0 || got.Millis != 1500 || got.Checks[1].Fix != "synchronise the clock" {
		t.Errorf("JSON report %s", js.String())
	}
}
