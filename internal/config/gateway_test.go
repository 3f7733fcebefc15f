package config

import (
	"fmt"
	"strings"
	"testing"
)

const gatewayDoc = `
gateway:
  listen: 0.0.0.0:4000
  timeout: 2m
  drain: 10s
  body_limit: 1048576
  dlq: {path: gw-dlq.db}
  tls: {cert: gw.pem, key: gw-key.pem}
  callers:
    - name: team-a
      bearer: env:KEEL_TEST_TEAM_A_TOKEN
      sigv4: {access_key_id: AKIAEXAMPLETEAMA, secret_access_key: env:KEEL_TEST_TEAM_A_SECRET}
      models: ["*anthropic.claude*"]
      priority: interactive
      tokens_per_minute: 200000
    - name: batch-jobs
      sigv4: {access_key_id: AKIAEXAMPLEBATCH, secret_access_key: literal-secret}
      priority: batch
`

func TestParseGateway(t *testing.T) {
	t.Setenv("KEEL_TEST_TEAM_A_TOKEN", "token-a")
	t.Setenv("KEEL_TEST_TEAM_A_SECRET", "secret-a")
	c, err := Parse([]byte(gatewayDoc))
	if err != nil {
		t.Fatal(err)
	}
	g := c.Gateway
	if g.Listen != "0.0.0.0:4000" || g.Timeout.D().String() != "2m0s" || g.Drain.D().String() != "10s" || g.BodyLimit != 1<<20 ||
		g.DLQ.Path != "gw-dlq.db" || g.TLS.Cert != "gw.pem" || len(g.Callers) != 2 {
		t.Fatalf("gateway %+v", g)
	}
	a, b := g.Callers[0], g.Callers[1]
	if a.Bearer.Value() != "token-a" || a.SigV4.SecretAccessKey.Value() != "secret-a" || a.Models[0] != "*anthropic.claude*" ||
		a.TokensPerMinute != 200000 || b.SigV4.SecretAccessKey.Value() != "literal-secret" || b.Priority != "batch" {
		t.Fatalf("callers %+v", g.Callers)
	}
	// Printing the configuration never shows a secret.
	for _, s := range []string{fmt.Sprintf("%v", g), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", a), fmt.Sprint(*a.SigV4)} {
		for _, secret := range []string{"token-a", "secret-a", "literal-secret"} {
			if strings.Contains(s, secret) {
				t.Fatalf("%q shows the secret %q", s, secret)
			}
		}
	}
}

func TestParseGatewayErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"unset env secret", "gateway:\n  callers:\n    - name: team-a\n      bearer: env:KEEL_TEST_UNSET_TOKEN\n",
			[]string{"gateway.callers[0].bearer", "team-a", "KEEL_TEST_UNSET_TOKEN", "not set", "line 4"}},
		{"unset env sigv4 secret", "gateway:\n  callers:\n    - name: team-b\n      sigv4: {access_key_id: AKIA1, secret_access_key: env:KEEL_TEST_UNSET_SECRET}\n",
			[]string{"gateway.callers[0].sigv4.secret_access_key", "team-b", "KEEL_TEST_UNSET_SECRET"}},
		{"env with no name", "gateway:\n  callers:\n    - name: c\n      bearer: 'env:'\n", []string{"gateway.callers[0].bearer", "env:NAME"}},
		{"unknown caller key", "gateway:\n  callers:\n    - name: c\n      bearer: t\n      token: x\n", []string{"token", "line 5"}},
		{"caller without name", "gateway:\n  callers:\n    - bearer: t\n", []string{"gateway.callers[0].name", "empty"}},
		{"same name twice", "gateway:\n  callers:\n    - {name: c, bearer: t1}\n    - {name: c, bearer: t2}\n", []string{"gateway.callers[1].name", "already"}},
		{"same token twice", "gateway:\n  callers:\n    - {name: a, bearer: t}\n    - {name: b, bearer: t}\n", []string{"gateway.callers[1].bearer", "same token"}},
		{"same key twice", "gateway:\n  callers:\n    - {name: a, sigv4: {access_key_id: K, secret_access_key: s}}\n    - {name: b, sigv4: {access_key_id: K, secret_access_key: s}}\n",
			[]string{"gateway.callers[1].sigv4.access_key_id", "already"}},
		{"no credentials", "gateway:\n  callers:\n    - name: c\n", []string{"gateway.callers[0]", "neither bearer nor sigv4"}},
		{"sigv4 without secret", "gateway:\n  callers:\n    - name: c\n      sigv4: {access_key_id: K}\n", []string{"gateway.callers[0].sigv4.secret_access_key", "empty"}},
		{"bad glob", "gateway:\n  callers:\n    - {name: c, bearer: t, models: ['[']}\n", []string{"gateway.callers[0].models", "glob"}},
		{"bad priority", "gateway:\n  callers:\n    - {name: c, bearer: t, priority: urgent}\n", []string{"gateway.callers[0].priority", "urgent"}},
		{"negative tokens", "gateway:\n  callers:\n    - {name: c, bearer: t, tokens_per_minute: -1}\n", []string{"gateway.callers[0].tokens_per_minute", "negative"}},
		{"bad listen", "gateway:\n  listen: 4000\n", []string{"gateway.listen", "host:port"}},
		{"negative drain", "gateway:\n  drain: -1s\n", []string{"gateway.drain", "negative"}},
		{"bad timeout", "gateway:\n  timeout: soon\n", []string{"line 2", "soon"}},
		{"negative body limit", "gateway:\n  body_limit: -1\n", []string{"gateway.body_limit", "negative"}},
		{"cert without key", "gateway:\n  tls: {cert: a.pem}\n", []string{"gateway.tls", "both"}},
		{"unknown dlq key", "gateway:\n  dlq: {file: x.db}\n", []string{"file", "line 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted %q", tt.doc)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
