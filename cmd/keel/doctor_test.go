package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/keel-run/keel/internal/config"
)

func TestDoctorUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"scenario without emulator", []string{"--scenario", "x.yaml"}, "--scenario needs --emulator"},
		{"emulator and endpoint", []string{"--emulator", "--endpoint", "http://127.0.0.1:1"}, "choose one"},
		{"bad region", []string{"--region", "mars"}, `"mars" is not a region name`},
		{"bad endpoint", []string{"--endpoint", "127.0.0.1:4566"}, "is not an http(s) URL"},
		{"argument", []string{"anthropic.claude-opus-4-7"}, "name models with --model"},
		{"empty model", []string{"--model", ""}, "an empty model id"},
		{"unknown flag", []string{"--fix"}, "flag provided but not defined: -fix"},
		{"missing scenario", []string{"--emulator", "--scenario", "nope.yaml"}, "starting the emulator"},
		{"missing config", []string{"--config", "nope.yaml"}, "nope.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(append([]string{"doctor"}, tt.args...), &out, &errb); code != 2 || !strings.Contains(errb.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errb.String(), tt.want)
			}
		})
	}
}

// doctorJSON runs keel doctor --json and decodes its report.
func doctorJSON(t *testing.T, args ...string) (code int, checks []map[string]string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"doctor", "--json"}, args...), &out, &errb)
	var rep struct {
		Checks []map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("keel doctor %v: %v\nstdout %s\nstderr %s", args, err, out.String(), errb.String())
	}
	return code, rep.Checks
}

// TestDoctorEmulator: against the emulator every check passes; a scenario
// whose clock is 10 minutes ahead fails the clock check; a denied model is
// explained in the catalog's words.
func TestDoctorEmulator(t *testing.T) {
	// A Bedrock API key in the test's environment would rightly fail the
	// clean run (the SDK will not send one over plain HTTP).
	t.Setenv("AWS_BEARER_TOKEN_BEDROCK", "")
	dir := t.TempDir()
	skew := filepath.Join(dir, "skew.yaml")
	deny := filepath.Join(dir, "deny.yaml")
	os.WriteFile(skew, []byte("clock_skew: 10m\n"), 0o600)
	os.WriteFile(deny, []byte("deny:\n  - model: \"*opus-4-7*\"\n    code: MPAgreementBeingCreated\n"), 0o600)
	for _, tt := range []struct {
		name  string
		args  []string
		code  int
		fails map[string]string // check -> code
	}{
		{name: "clean", args: []string{"--emulator", "--model", emuModel, "--probe"}, code: 0},
		{name: "skewed clock", args: []string{"--emulator", "--scenario", skew}, code: 1, fails: map[string]string{"skew": "RequestExpired"}},
		{name: "denied model", args: []string{"--emulator", "--scenario", deny, "--model", "us.anthropic.claude-opus-4-7", "--probe"}, code: 1,
			fails: map[string]string{"probe": "MPAgreementBeingCreated"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, checks := doctorJSON(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			for _, c := range checks {
				want, failing := tt.fails[c["check"]]
				switch {
				case failing && (c["status"] != "fail" || c["code"] != want):
					t.Errorf("%s: %s %s, want fail %s (%s)", c["check"], c["status"], c["code"], want, c["seen"])
				case !failing && c["status"] == "fail":
					t.Errorf("%s failed: %s", c["check"], c["seen"])
				}
			}
		})
	}
}

// TestDoctorEmulatorSigV4: with --access-key the emulator checks each
// service's signature (STS and Service Quotas are signed for their own
// names), and a skewed clock makes it refuse the signatures as expired.
func TestDoctorEmulatorSigV4(t *testing.T) {
	dir := t.TempDir()
	skew := filepath.Join(dir, "skew.yaml")
	os.WriteFile(skew, []byte("clock_skew: 10m\n"), 0o600)
	for _, tt := range []struct {
		scenario string
		wantSTS  string // error code, "" for success
	}{
		{"", ""},
		{skew, "SignatureDoesNotMatch"},
	} {
		s, err := buildEmulator(emulateConfig{scenario: tt.scenario, seed: 1, region: "us-east-1", keys: map[string]string{"AKIDEMU": "secret"}})
		if err != nil {
			t.Fatal(err)
		}
		rn, err := s.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		creds := credentials.NewStaticCredentialsProvider("AKIDEMU", "secret", "")
		_, err = sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(rn.URL), Credentials: creds, RetryMaxAttempts: 1}).
			GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
		_, qerr := servicequotas.New(servicequotas.Options{Region: "us-east-1", BaseEndpoint: aws.String(rn.URL), Credentials: creds, RetryMaxAttempts: 1}).
			ListServiceQuotas(context.Background(), &servicequotas.ListServiceQuotasInput{ServiceCode: aws.String("bedrock")})
		_, cerr := converse(sdkClient(rn.URL, "us-east-1", "secret"), emuModel, "hi")
		rn.Close()
		var ae smithy.APIError
		if tt.wantSTS == "" {
			if err != nil || qerr != nil || cerr != nil {
				t.Errorf("no skew: sts %v, service quotas %v, converse %v", err, qerr, cerr)
			}
			continue
		}
		if !errors.As(err, &ae) || ae.ErrorCode() != tt.wantSTS {
			t.Errorf("skewed: sts %v, want %s", err, tt.wantSTS)
		}
		if !errors.As(cerr, &ae) || ae.ErrorCode() != "InvalidSignatureException" || !strings.Contains(ae.ErrorMessage(), "Signature expired") {
			t.Errorf("skewed: converse %v, want InvalidSignatureException: Signature expired", cerr)
		}
	}
}

// TestDoctorJSONCamelCase: keel doctor --json's keys are camelCase, as
// every keel JSON output's (docs/json.md).
func TestDoctorJSONCamelCase(t *testing.T) {
	var out, errb bytes.Buffer
	run([]string{"doctor", "--json", "--emulator", "--model", emuModel, "--probe"}, &out, &errb)
	if bad := nonCamelKeys(t, out.Bytes()); len(bad) > 0 {
		t.Errorf("keys not in camelCase: %s", strings.Join(bad, ", "))
	}
}

func TestRouteModels(t *testing.T) {
	c := &config.Config{Routes: []config.Route{
		{Models: []string{"a"}, Targets: []config.Target{{Model: "a"}, {Model: "b", Region: "us-west-2"}}},
		{Models: []string{"c"}, Targets: []config.Target{{Model: "b"}, {Model: "c"}}},
	}}
	if got := strings.Join(routeModels(c), " "); got != "a b c" {
		t.Errorf("routeModels = %s", got)
	}
}
