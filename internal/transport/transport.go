package transport

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// NATIdleTimeout is the fixed idle timeout of AWS NAT gateways, interface
// VPC endpoints and Network Load Balancers: a TCP connection silent for this
// long is dropped without notice.
const NATIdleTimeout = 350 * time.Second

// Defaults for zero Options fields.
const (
	// DefaultDialTimeout bounds the TCP connect. Bedrock endpoints answer a
	// SYN in milliseconds; a connect that takes seconds is a network fault
	// worth failing (and retrying elsewhere) early.
	DefaultDialTimeout = 10 * time.Second
	// DefaultKeepAliveIdle is the silence after which TCP keep-alive probes
	// start: well under NATIdleTimeout, and the value AWS's Bedrock
	// troubleshooting guide suggests for tcp_keepalive_time.
	DefaultKeepAliveIdle = 45 * time.Second
	// DefaultKeepAliveInterval is the time between unanswered probes.
	DefaultKeepAliveInterval = 15 * time.Second
	// DefaultKeepAliveCount is how many unanswered probes drop the
	// connection: a dead peer is noticed 45 s + 4×15 s = 105 s after it went quiet.
	DefaultKeepAliveCount = 4
	// DefaultTLSHandshakeTimeout bounds the TLS handshake.
	DefaultTLSHandshakeTimeout = 10 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for response headers
	// once the request is sent. A non-streaming call's headers arrive only
	// when the model has finished generating, and Bedrock lets an inference
	// run for up to 60 minutes, so this is a backstop, not a latency
	// target: bound a call's time with its context, and stalls with the
	// keep-alive probes and the stream inspector.
	DefaultResponseHeaderTimeout = 60 * time.Minute
	// DefaultIdleConnTimeout closes pooled connections idle this long,
	// well under NATIdleTimeout.
	DefaultIdleConnTimeout = 90 * time.Second
	// DefaultMaxIdleConns bounds idle connections across all hosts.
	DefaultMaxIdleConns = 256
	// DefaultMaxIdleConnsPerHost bounds idle connections per host. keel
	// talks to few hosts (one per region) with many calls in flight; Go's
	// default of 2 would close and re-handshake most connections.
	DefaultMaxIdleConnsPerHost = 64
	// DefaultExpectContinueTimeout is the wait for a 100 Continue, as in
	// http.DefaultTransport.
	DefaultExpectContinueTimeout = time.Second
)

// Options configures the transport. The zero value means all defaults: each
// zero field takes the Default constant of the same name. For timeouts, a
// negative value means no timeout; for the keep-alive fields, a negative
// value leaves the operating system's setting alone.
type Options struct {
	// DialTimeout bounds the TCP connect.
	DialTimeout time.Duration
	// KeepAliveIdle is the silence after which keep-alive probes start. It
	// must stay under NATIdleTimeout to keep connections through NAT
	// gateways and VPC endpoints; Validate checks it. It also sets the
	// HTTP/2 ping health check (HTTP2Config.SendPingTimeout).
	KeepAliveIdle time.Duration
	// KeepAliveInterval is the time between unanswered probes. It also sets
	// the HTTP/2 ping timeout.
	KeepAliveInterval time.Duration
	// KeepAliveCount is how many unanswered probes drop the connection.
	KeepAliveCount int
	// TLSHandshakeTimeout bounds the TLS handshake.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers after the
	// request is written.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes pooled connections idle this long.
	IdleConnTimeout time.Duration
	// MaxIdleConns and MaxIdleConnsPerHost bound the idle pool. Negative
	// means no limit for MaxIdleConns and Go's default (2) per host.
	MaxIdleConns, MaxIdleConnsPerHost int
	// TLSClientConfig is used for TLS connections; nil means the system
	// roots and TLS 1.2 or later. It is cloned, not modified.
	TLSClientConfig *tls.Config
	// Proxy picks a proxy per request; nil means http.ProxyFromEnvironment
	// (HTTPS_PROXY, NO_PROXY, ...), which never proxies loopback addresses.
	Proxy func(*http.Request) (*url.URL, error)
}

// resolved returns o with every zero field set to its default.
func (o Options) resolved() Options {
	o.DialTimeout = cmp.Or(o.DialTimeout, DefaultDialTimeout)
	o.KeepAliveIdle = cmp.Or(o.KeepAliveIdle, DefaultKeepAliveIdle)
	o.KeepAliveInterval = cmp.Or(o.KeepAliveInterval, DefaultKeepAliveInterval)
	o.TLSHandshakeTimeout = cmp.Or(o.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout)
	o.ResponseHeaderTimeout = cmp.Or(o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	o.IdleConnTimeout = cmp.Or(o.IdleConnTimeout, DefaultIdleConnTimeout)
	o.KeepAliveCount = cmp.Or(o.KeepAliveCount, DefaultKeepAliveCount)
	o.MaxIdleConns = cmp.Or(o.MaxIdleConns, DefaultMaxIdleConns)
	o.MaxIdleConnsPerHost = cmp.Or(o.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost)
	if o.Proxy == nil {
		o.Proxy = http.ProxyFromEnvironment
	}
	return o
}

// Validate reports settings that defeat the transport's purpose: a
// keep-alive idle time at or above NATIdleTimeout, or keep-alive probes left
// to the operating system's default (7200 s on Linux). NewTransport accepts
// them anyway; call Validate when loading configuration.
func (o Options) Validate() error {
	r := o.resolved()
	switch {
	case r.KeepAliveIdle < 0:
		return fmt.Errorf("transport: KeepAliveIdle %v leaves keep-alive timing to the OS (Linux: 2 h), over the %v NAT/VPC endpoint idle timeout",
			o.KeepAliveIdle, NATIdleTimeout)
	case r.KeepAliveIdle >= NATIdleTimeout:
		return fmt.Errorf("transport: KeepAliveIdle %v is not under the %v NAT/VPC endpoint idle timeout", r.KeepAliveIdle, NATIdleTimeout)
	}
	return nil
}

// Dialer returns the net.Dialer the transport connects with: its connect
// timeout and TCP keep-alive settings come from o.
func Dialer(o Options) *net.Dialer {
	r := o.resolved()
	return &net.Dialer{
		Timeout: max(r.DialTimeout, 0),
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true,
			// Negative values leave the OS setting alone (net.KeepAliveConfig).
			Idle:     r.KeepAliveIdle,
			Interval: r.KeepAliveInterval,
			Count:    r.KeepAliveCount,
		},
	}
}

// NewTransport returns an *http.Transport configured by o. HTTP/2 is used
// over TLS when the server offers it (ForceAttemptHTTP2: a custom dialer
// would otherwise turn it off); plain-text connections speak HTTP/1.1.
func NewTransport(o Options) *http.Transport {
	r := o.resolved()
	d := Dialer(o)
	tr := &http.Transport{
		Proxy:                 r.Proxy,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   max(r.TLSHandshakeTimeout, 0),
		ResponseHeaderTimeout: max(r.ResponseHeaderTimeout, 0),
		IdleConnTimeout:       max(r.IdleConnTimeout, 0),
		ExpectContinueTimeout: DefaultExpectContinueTimeout,
		MaxIdleConns:          max(r.MaxIdleConns, 0),
		MaxIdleConnsPerHost:   max(r.MaxIdleConnsPerHost, 0),
	}
	if r.TLSClientConfig != nil {
		tr.TLSClientConfig = r.TLSClientConfig.Clone()
	} else {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if r.KeepAliveIdle > 0 {
		// HTTP/2 multiplexes calls on one connection; a ping after the same
		// silence finds a dead connection even when TCP probes cannot
		// (a proxy in between keeps its own side alive).
		tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: r.KeepAliveIdle, PingTimeout: max(r.KeepAliveInterval, 0)}
	}
	return tr
}

// NewClient returns an *http.Client over NewTransport(o). It has no overall
// Timeout: a call's time limit comes from its context, so that a long stream
// is not cut off by a client-wide deadline meant for short calls. It never
// follows a redirect (see NoRedirect).
func NewClient(o Options) *http.Client {
	return &http.Client{Transport: NewTransport(o), CheckRedirect: NoRedirect}
}

// NoRedirect is an http.Client CheckRedirect that stops at the first
// redirect and hands the 3xx response back as it is. Bedrock Runtime never
// redirects, so a 3xx comes from something else on the path, and following
// it would send the call elsewhere: Go's client keeps the Authorization
// header on a redirect to the same host on another port and always keeps
// X-Amz-Security-Token, a 307 or 308 posts the prompt again, and the other
// server's answer would be taken for the model's.
func NoRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// WithoutRedirects returns a copy of c (http.DefaultClient when c is nil)
// whose CheckRedirect is NoRedirect. The copy shares c's Transport, Jar and
// Timeout, so connections stay pooled; c itself is not modified.
func WithoutRedirects(c *http.Client) *http.Client {
	if c == nil {
		c = http.DefaultClient
	}
	cc := *c
	cc.CheckRedirect = NoRedirect
	return &cc
}
