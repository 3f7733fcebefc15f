package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/quota"
	"github.com/keel-run/keel/internal/emulator/scenario"
	"github.com/keel-run/keel/internal/emulator/sigv4check"
)

const (
	adminToken = "s3cret-admin-token"
	akid       = "AKIDADMIN"
	secretKey  = "admin-secret-key"
)

// TestItem11bAdminAuth covers issue 15, item 11 (admin API): the admin API
// was open to anyone who could reach the port, even with SigV4 checks on.
// With an admin token or access keys configured, a request must present the
// token or a SigV4 signature by one of the keys; with neither it stays open.
func TestItem11bAdminAuth(t *testing.T) {
	type auth int
	const (
		none auth = iota
		rightToken
		lowerCaseScheme
		wrongToken
		signed
		signedWrongSecret
		signedUnknownKey
		basic
	)
	tests := []struct {
		name    string
		token   string // configured admin token
		keys    bool   // access keys configured
		method  string
		path    string
		body    string
		auth    auth
		status  int
		message string // a fragment of the refusal
	}{
		{name: "open without token or keys", method: "GET", path: "counters", auth: none, status: 200},
		{name: "open: a PUT too", method: "PUT", path: "scenario", body: "rules: []\n", auth: none, status: 200},

		{name: "token: none given", token: adminToken, method: "GET", path: "counters", auth: none, status: 401,
			message: "needs Authorization: Bearer with the admin token"},
		{name: "token: wrong", token: adminToken, method: "GET", path: "counters", auth: wrongToken, status: 403, message: "admin token does not match"},
		{name: "token: right", token: adminToken, method: "GET", path: "counters", auth: rightToken, status: 200},
		{name: "token: scheme in lower case", token: adminToken, method: "GET", path: "counters", auth: lowerCaseScheme, status: 200},
		{name: "token: right, PUT", token: adminToken, method: "PUT", path: "scenario", body: "rules: []\n", auth: rightToken, status: 200},
		{name: "token: reset refused", token: adminToken, method: "POST", path: "reset", auth: none, status: 401},
		{name: "token: a signature is not enough", token: adminToken, method: "GET", path: "counters", auth: signed, status: 403,
			message: "no access keys"},
		{name: "token: another scheme", token: adminToken, method: "GET", path: "counters", auth: basic, status: 403},
		{name: "token: unknown path is refused too", token: adminToken, method: "GET", path: "nothing", auth: none, status: 401},

		{name: "keys: none given", keys: true, method: "GET", path: "counters", auth: none, status: 401,
			message: "a SigV4 signature by one of the emulator's access keys"},
		{name: "keys: signed", keys: true, method: "GET", path: "counters", auth: signed, status: 200},
		{name: "keys: signed PUT", keys: true, method: "PUT", path: "scenario", body: "rules: []\n", auth: signed, status: 200},
		{name: "keys: wrong secret", keys: true, method: "GET", path: "counters", auth: signedWrongSecret, status: 403,
			message: "The request signature we calculated does not match"},
		{name: "keys: unknown key", keys: true, method: "PUT", path: "scenario", body: "rules: []\n", auth: signedUnknownKey, status: 403,
			message: "The security token included in the request is invalid."},
		{name: "keys: a bearer token is not enough", keys: true, method: "GET", path: "counters", auth: rightToken, status: 403,
			message: "no admin token"},

		{name: "both: token", token: adminToken, keys: true, method: "GET", path: "counters", auth: rightToken, status: 200},
		{name: "both: signature", token: adminToken, keys: true, method: "GET", path: "counters", auth: signed, status: 200},
		{name: "both: wrong token", token: adminToken, keys: true, method: "GET", path: "counters", auth: wrongToken, status: 403},
	}
	clk := clock.NewFake(t0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := scenario.Parse([]byte(initial))
			if err != nil {
				t.Fatal(err)
			}
			o := Options{Injector: scenario.NewInjector(s, 1, clk), Meter: quota.NewMeter(clk, s.Quotas), Outcomes: &Outcomes{}, Token: tt.token}
			if tt.keys {
				o.Verifier = sigv4check.New(sigv4check.Options{Keys: map[string]string{akid: secretKey}, Clock: clk})
			}
			srv := httptest.NewServer(New(o))
			defer srv.Close()

			req, err := http.NewRequest(tt.method, srv.URL+Prefix+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			sign := func(id, secret string) {
				sum := sha256.Sum256([]byte(tt.body))
				err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: id, SecretAccessKey: secret},
					req, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", t0)
				if err != nil {
					t.Fatal(err)
				}
			}
			switch tt.auth {
			case rightToken:
				req.Header.Set("Authorization", "Bearer "+adminToken)
			case lowerCaseScheme:
				req.Header.Set("Authorization", "bearer "+adminToken)
			case wrongToken:
				req.Header.Set("Authorization", "Bearer not-"+adminToken)
			case signed:
				sign(akid, secretKey)
			case signedWrongSecret:
				sign(akid, "other-secret")
			case signedUnknownKey:
				sign("AKIDOTHER", secretKey)
			case basic:
				req.SetBasicAuth("admin", adminToken)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if !strings.Contains(string(b), tt.message) {
				t.Errorf("body %s, want it to say %q", b, tt.message)
			}
			if strings.Contains(string(b), adminToken) {
				t.Errorf("the answer repeats the admin token: %s", b)
			}
			if resp.StatusCode == 401 && tt.token != "" && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
		})
	}
}
