package config

import (
	"net/url"
	"strings"
)

// Redis configures the state that keel processes sharing one Bedrock quota
// share through Redis: the quota governor's buckets and learned limits, the
// circuit breakers, the retry budget and the gateway's per-caller budgets
// (docs/redis.md). Absent (URL empty): every process keeps its own, in
// memory.
type Redis struct {
	// URL is redis://[user:password@]host:port[/db], or rediss:// for TLS.
	// It is a Secret: written literally, or env:NAME.
	URL Secret `yaml:"url"`
	// Prefix starts every key keel writes. Empty: "keel:".
	Prefix string `yaml:"prefix"`
	// Timeout bounds each Redis round trip; past it the process falls
	// back to local state. 0: 50ms.
	Timeout Duration `yaml:"timeout"`
	// TLS adds a CA, a client certificate or a server name to a rediss://
	// URL's connection.
	TLS RedisTLS `yaml:"tls"`
	// Share is the part of each limit this process uses while Redis is
	// unreachable, between 0 and 1. 0: 1 ÷ the replicas seen alive.
	Share float64 `yaml:"share"`
}

// RedisTLS is a rediss:// connection's TLS settings; files are PEM.
type RedisTLS struct {
	CA         string `yaml:"ca"`
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
	ServerName string `yaml:"server_name"`
}

// Enabled reports whether a Redis URL is set.
func (r Redis) Enabled() bool { return r.URL != "" }

func (r *Redis) resolve(lookup func(string) (string, bool), bad func(key, format string, args ...any)) {
	r.URL = resolveSecret(r.URL, "redis.url", "", lookup, bad)
}

func (r Redis) validate(bad func(key, format string, args ...any)) {
	if !r.Enabled() {
		if r.Prefix != "" || r.Timeout != 0 || r.Share != 0 || r.TLS != (RedisTLS{}) {
			bad("redis.url", "is empty, but other redis settings are set: without a URL keel shares nothing")
		}
		return
	}
	if strings.HasPrefix(string(r.URL), envPrefix) {
		return // resolve reported the unset variable
	}
	u, err := url.Parse(r.URL.Value())
	switch {
	case err != nil:
		// url's error quotes the URL, password and all.
		bad("redis.url", "is not a URL (redis://host:6379 or rediss://host:6379)")
	case u.Scheme != "redis" && u.Scheme != "rediss":
		bad("redis.url", "scheme %q: want redis:// or rediss://", u.Scheme)
	case u.Host == "":
		bad("redis.url", "names no host: want redis://host:6379")
	}
	if r.Timeout < 0 {
		bad("redis.timeout", "must not be negative, got %s", r.Timeout.D())
	}
	if r.Share < 0 || r.Share > 1 {
		bad("redis.share", "must be between 0 and 1 (0 = 1 ÷ the replicas alive), got %g", r.Share)
	}
	if (r.TLS.Cert == "") != (r.TLS.Key == "") {
		bad("redis.tls", "needs both cert and key, or neither")
	}
	if r.TLS != (RedisTLS{}) && err == nil && u.Scheme != "rediss" {
		bad("redis.tls", "is set but redis.url is %s://, not rediss://", u.Scheme)
	}
	if strings.ContainsAny(r.Prefix, "{} \t\n") {
		bad("redis.prefix", "%q holds a brace or a space: keel puts each target's name in braces (a Redis Cluster hash tag)", r.Prefix)
	}
}
