package config

import (
	"fmt"
	"net"
	"path"
	"strings"
)

// Gateway configures `keel serve` (docs/gateway.md). Its zero value serves
// on the command line's --listen with every default and no callers (open,
// which keel serve allows only on a loopback address).
type Gateway struct {
	// Listen is the address to serve on, host:port. Empty: the --listen
	// flag's.
	Listen string `yaml:"listen"`
	// Timeout is a call's deadline when its caller's SDK sends none. 0:
	// 5m.
	Timeout Duration `yaml:"timeout"`
	// Drain is how long a shutdown lets calls and streams in flight finish
	// before cutting them. 0: 30s.
	Drain Duration `yaml:"drain"`
	// BodyLimit is the largest request body served, in bytes. 0: 32 MiB.
	BodyLimit int64 `yaml:"body_limit"`
	// DLQ parks calls that failed for good. Absent: off.
	DLQ GatewayDLQ `yaml:"dlq"`
	// TLS serves HTTPS (h2 and HTTP/1.1) with this certificate. Absent:
	// plain HTTP (HTTP/1.1 and h2c).
	TLS GatewayTLS `yaml:"tls"`
	// Callers are who may call the gateway. None: the gateway is open
	// (keel serve allows that only on a loopback address, or with
	// --insecure-open).
	Callers []Caller `yaml:"callers"`
}

// GatewayDLQ is the gateway's dead-letter queue.
type GatewayDLQ struct {
	// Path is the SQLite dead-letter database. Empty: no dead-letter queue.
	Path string `yaml:"path"`
	// Redact replaces message text in stored bodies (such entries cannot
	// be redriven).
	Redact bool `yaml:"redact"`
}

// GatewayTLS names a certificate and its key, PEM files.
type GatewayTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Caller is one caller of the gateway. Secrets may be written as
// env:NAME, resolved from the environment when the file is loaded.
type Caller struct {
	// Name names the caller in logs, metrics and the status page.
	Name string `yaml:"name"`
	// Bearer is the token the caller sends as Authorization: Bearer.
	// Empty: the caller does not use one.
	Bearer Secret `yaml:"bearer"`
	// SigV4 is the key pair the caller signs with. Absent: none.
	SigV4 *SigV4Key `yaml:"sigv4"`
	// Models are globs of the model ids the caller may call ("*" any run
	// of characters). Empty: every model.
	Models []string `yaml:"models"`
	// Priority is the caller's class in the quota governor's queues:
	// interactive or batch. Empty: interactive.
	Priority string `yaml:"priority"`
	// TokensPerMinute is the caller's share of the quota. 0: no limit of
	// its own.
	TokensPerMinute int `yaml:"tokens_per_minute"`
}

// SigV4Key is an access key a caller signs its requests with.
type SigV4Key struct {
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey Secret `yaml:"secret_access_key"`
}

// Secret is a secret value: written literally, or as env:NAME for the
// value of the environment variable NAME, resolved when the file is
// loaded. It prints as [redacted]; Value returns it.
type Secret string

// Value returns the secret.
func (s Secret) Value() string { return string(s) }

// String hides the secret from logs and %v.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the secret from %#v.
func (s Secret) GoString() string { return s.String() }

// envPrefix marks a secret taken from the environment.
const envPrefix = "env:"

// resolve replaces each env:NAME secret with the variable's value, and
// reports a reference to an unset or empty variable, naming the caller and
// the field, never a value.
func (g *Gateway) resolve(lookup func(string) (string, bool), bad func(key, format string, args ...any)) {
	for i := range g.Callers {
		c := &g.Callers[i]
		key := fmt.Sprintf("gateway.callers[%d]", i)
		who := c.Name
		if who == "" {
			who = key
		}
		c.Bearer = resolveSecret(c.Bearer, key+".bearer", "of caller "+who+": ", lookup, bad)
		if c.SigV4 != nil {
			c.SigV4.SecretAccessKey = resolveSecret(c.SigV4.SecretAccessKey, key+".sigv4.secret_access_key", "of caller "+who+": ", lookup, bad)
		}
	}
}

// resolveSecret resolves env:NAME; whose starts its messages.
func resolveSecret(s Secret, key, whose string, lookup func(string) (string, bool), bad func(key, format string, args ...any)) Secret {
	name, ok := strings.CutPrefix(string(s), envPrefix)
	if !ok {
		return s
	}
	if name == "" {
		bad(key, "%senv: names no environment variable; write env:NAME", whose)
		return s
	}
	v, set := lookup(name)
	if !set || v == "" {
		bad(key, "%sthe environment variable %s is not set", whose, name)
		return s
	}
	return Secret(v)
}

func (g *Gateway) validate(bad func(key, format string, args ...any)) {
	if g.Listen != "" {
		if _, _, err := net.SplitHostPort(g.Listen); err != nil {
			bad("gateway.listen", "%q is not host:port, such as 127.0.0.1:4000", g.Listen)
		}
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"gateway.timeout", g.Timeout}, {"gateway.drain", g.Drain}} {
		if d.v < 0 {
			bad(d.key, "must not be negative, got %s", d.v.D())
		}
	}
	if g.BodyLimit < 0 {
		bad("gateway.body_limit", "must not be negative, got %d (0 = default 32 MiB)", g.BodyLimit)
	}
	if (g.TLS.Cert == "") != (g.TLS.Key == "") {
		bad("gateway.tls", "needs both cert and key, or neither")
	}
	names := map[string]int{}
	keys := map[string]int{}
	bearers := map[Secret]int{}
	for i, c := range g.Callers {
		key := fmt.Sprintf("gateway.callers[%d]", i)
		switch prev, dup := names[c.Name]; {
		case c.Name == "":
			bad(key+".name", "is empty; every caller needs a name")
		case dup:
			bad(key+".name", "%q is already the name of gateway.callers[%d]", c.Name, prev)
		default:
			names[c.Name] = i
		}
		if prev, dup := bearers[c.Bearer]; dup && c.Bearer != "" {
			bad(key+".bearer", "of caller %s is the same token as gateway.callers[%d]'s", c.Name, prev)
		} else if c.Bearer != "" {
			bearers[c.Bearer] = i
		}
		if c.Bearer == "" && c.SigV4 == nil {
			bad(key, "caller %s has neither bearer nor sigv4: it could never be recognised", c.Name)
		}
		if c.SigV4 != nil {
			if c.SigV4.AccessKeyID == "" {
				bad(key+".sigv4.access_key_id", "of caller %s is empty", c.Name)
			} else if prev, dup := keys[c.SigV4.AccessKeyID]; dup {
				bad(key+".sigv4.access_key_id", "of caller %s is already gateway.callers[%d]'s", c.Name, prev)
			} else {
				keys[c.SigV4.AccessKeyID] = i
			}
			if c.SigV4.SecretAccessKey == "" {
				bad(key+".sigv4.secret_access_key", "of caller %s is empty", c.Name)
			}
		}
		for _, m := range c.Models {
			if _, err := path.Match(m, ""); err != nil || m == "" {
				bad(key+".models", "of caller %s: %q is not a glob such as \"*anthropic.claude*\"", c.Name, m)
			}
		}
		if c.Priority != "" && c.Priority != "interactive" && c.Priority != "batch" {
			bad(key+".priority", "of caller %s: %q is not a priority; want interactive or batch", c.Name, c.Priority)
		}
		if c.TokensPerMinute < 0 {
			bad(key+".tokens_per_minute", "of caller %s must not be negative, got %d (0 = no limit of its own)", c.Name, c.TokensPerMinute)
		}
	}
}
