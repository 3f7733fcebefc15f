package doctor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/transport"
)

// The kernel's keep-alive settings: the idle time before the first
// probe, the interval between probes, and how many go unanswered.
const (
	sysKeepAliveTime   = "net.ipv4.tcp_keepalive_time"
	sysKeepAliveIntvl  = "net.ipv4.tcp_keepalive_intvl"
	sysKeepAliveProbes = "net.ipv4.tcp_keepalive_probes"
)

// readSysctl reads a kernel setting from /proc/sys.
func readSysctl(name string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	return strings.TrimSpace(string(b)), err
}

// keepAlive sets keel's per-socket keep-alive and the kernel's against the
// 350 s after which NAT gateways, interface VPC endpoints and Network Load
// Balancers drop an idle connection without a word.
func (r *run) keepAlive(context.Context) []Result {
	res := Result{Group: GroupConnection, Check: "keepalive"}
	idle := r.KeepAliveIdle
	if idle == 0 {
		idle = transport.DefaultKeepAliveIdle
	}
	var kernel string
	var kernelIdle time.Duration
	v, err := r.Sysctl(sysKeepAliveTime)
	secs, perr := strconv.Atoi(v)
	if err == nil && perr == nil {
		kernelIdle = time.Duration(secs) * time.Second
		intvl, _ := r.Sysctl(sysKeepAliveIntvl)
		probes, _ := r.Sysctl(sysKeepAliveProbes)
		kernel = fmt.Sprintf("the kernel's %s=%d (intvl %s, probes %s)", sysKeepAliveTime, secs, intvl, probes)
	}
	nat := transport.NATIdleTimeout
	switch {
	case idle < 0 || idle >= nat:
		res = catalogResult(res, Fail, catalog.CodeIdleConnectionDropped,
			fmt.Sprintf("keel's connections probe only after %s, not under the %s idle timeout", describeIdle(idle, kernelIdle), nat))
	case kernel == "":
		res.Status = Pass
		res.Seen = fmt.Sprintf("keel probes its connections after %s idle, set per socket, under the %s NAT/VPC endpoint idle timeout; the kernel's setting was not read (%v)",
			idle, nat, firstErr(err, perr))
	case kernelIdle < nat:
		res.Status = Pass
		res.Seen = fmt.Sprintf("keel probes after %s per socket; %s is under %s too", idle, kernel, nat)
	case r.loopback():
		res.Status = Pass
		res.Seen = fmt.Sprintf("keel probes after %s per socket; %s is over %s, which does not matter on loopback but does for other clients through NAT", idle, kernel, nat)
	default:
		res.Status = Warn
		res.Seen = fmt.Sprintf("keel probes after %s per socket, but %s: other clients on this host (an SDK without keel's transport) keep idle connections a NAT gateway or VPC endpoint drops at %s", idle, kernel, nat)
		res.Fix = "sysctl -w net.ipv4.tcp_keepalive_time=45 (and persist it in /etc/sysctl.d/, or the pod's securityContext)"
	}
	return []Result{res}
}

func describeIdle(idle, kernel time.Duration) string {
	if idle < 0 {
		if kernel > 0 {
			return "the kernel's " + kernel.String()
		}
		return "the kernel's setting (Linux: 2h)"
	}
	return idle.String()
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// proxy reports the proxy the endpoint is reached through, if any: the
// HTTPS_PROXY (or HTTP_PROXY for a plain endpoint) Go's HTTP client uses,
// unless NO_PROXY covers the host or the host is loopback.
func (r *run) proxy(context.Context) []Result {
	res := Result{Group: GroupConnection, Check: "proxy"}
	host := r.endpoint.Hostname()
	name, value := "HTTPS_PROXY", r.env("HTTPS_PROXY")
	if r.endpoint.Scheme == "http" {
		name, value = "HTTP_PROXY", r.env("HTTP_PROXY")
	}
	noProxy := r.env("NO_PROXY")
	switch {
	case value == "":
		res.Status, res.Seen = Pass, "no "+name+": "+host+" is reached directly"
	case r.loopback():
		res.Status, res.Seen = Pass, name+" is set, but Go never proxies a loopback host: "+host+" is reached directly"
	case noProxyCovers(noProxy, host):
		res.Status, res.Seen = Pass, fmt.Sprintf("%s is set, but NO_PROXY (%s) covers %s: reached directly", name, noProxy, host)
	default:
		if !strings.Contains(value, "://") {
			value = "http://" + value // as Go's HTTP client reads a bare host:port
		}
		u, err := url.Parse(value)
		if err != nil || u.Host == "" {
			res.Status, res.Seen = Fail, fmt.Sprintf("%s=%q is not a proxy URL, so every call fails", name, value)
			res.Fix = "set " + name + " to a URL such as http://proxy.internal:3128, or unset it"
			return []Result{res}
		}
		u.User = nil // never print a proxy password
		res.Status = Pass
		res.Seen = fmt.Sprintf("%s is reached through the proxy %s (%s; NO_PROXY=%q does not cover it); the proxy's own idle timeout applies too", host, u.Redacted(), name, noProxy)
	}
	return []Result{res}
}

// env reads an environment variable in upper or lower case, as Go's HTTP
// client does.
func (r *run) env(name string) string {
	if v := r.Getenv(name); v != "" {
		return v
	}
	return r.Getenv(strings.ToLower(name))
}

// noProxyCovers reports whether a NO_PROXY list covers host: "*", the
// host itself, a domain it is under (".amazonaws.com" or "amazonaws.com"),
// or an IP range holding it.
func noProxyCovers(list, host string) bool {
	ip := net.ParseIP(host)
	for _, e := range strings.Split(list, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if h, _, err := net.SplitHostPort(e); err == nil {
			e = h
		}
		switch {
		case e == "":
		case e == "*":
			return true
		case ip != nil && strings.Contains(e, "/"):
			if _, n, err := net.ParseCIDR(e); err == nil && n.Contains(ip) {
				return true
			}
		case host == strings.TrimPrefix(e, "."), strings.HasSuffix(host, "."+strings.TrimPrefix(e, ".")):
			return true
		}
	}
	return false
}

// dns resolves the endpoint's host.
func (r *run) dns(ctx context.Context) []Result {
	res := Result{Group: GroupConnection, Check: "dns"}
	host := r.endpoint.Hostname()
	if net.ParseIP(host) != nil {
		res.Status, res.Seen = Pass, host+" is an address: nothing to resolve"
		return []Result{res}
	}
	start := r.Now()
	addrs, err := r.Resolver.LookupHost(ctx, host)
	if err != nil {
		return []Result{networkResult(res, err, "resolving "+host)}
	}
	res.Status = Pass
	res.Seen = fmt.Sprintf("%s resolves to %s in %s", host, strings.Join(addrs[:min(len(addrs), 3)], ", "), r.Now().Sub(start).Round(time.Millisecond))
	return []Result{res}
}

// tcp connects to the endpoint (through no proxy: the path the proxy
// check reports is the proxy's own business).
func (r *run) tcp(ctx context.Context) []Result {
	res := Result{Group: GroupConnection, Check: "tcp"}
	addr := r.hostPort()
	start := r.Now()
	c, err := r.Dial(ctx, "tcp", addr)
	if err != nil {
		return []Result{networkResult(res, err, "connecting to "+addr)}
	}
	c.Close()
	res.Status, res.Seen = Pass, fmt.Sprintf("connected to %s in %s", addr, r.Now().Sub(start).Round(time.Millisecond))
	return []Result{res}
}

// hostPort is the endpoint's host and port, the scheme's port when the
// URL names none.
func (r *run) hostPort() string {
	if r.endpoint.Port() != "" {
		return r.endpoint.Host
	}
	port := "443"
	if r.endpoint.Scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(r.endpoint.Hostname(), port)
}

// tls shakes hands with the endpoint and reports the certificate.
func (r *run) tls(ctx context.Context) []Result {
	res := Result{Group: GroupConnection, Check: "tls"}
	if r.endpoint.Scheme != "https" {
		if r.loopback() {
			res.Status, res.Seen = Pass, "plain HTTP to this machine ("+r.endpoint.Host+"): no TLS to check"
		} else {
			res.Status, res.Seen = Warn, "plain HTTP to "+r.endpoint.Host+": signatures and prompts cross the network unencrypted"
			res.Fix = "use https:// for an endpoint on another machine"
		}
		return []Result{res}
	}
	addr := r.hostPort()
	st, err := r.DialTLS(ctx, addr)
	if err != nil {
		return []Result{networkResult(res, err, "TLS to "+addr)}
	}
	left := st.NotAfter.Sub(r.Now())
	version := st.Version
	if st.ALPN != "" {
		version += " (" + st.ALPN + ")"
	}
	seen := fmt.Sprintf("%s to %s, certificate by %s valid until %s", version, addr, st.Issuer, st.NotAfter.UTC().Format(time.DateOnly))
	if left < certSoon {
		res.Status, res.Seen = Warn, seen+" (in "+left.Round(time.Hour).String()+")"
		res.Fix = "the endpoint's certificate expires soon: renew it (for AWS's own endpoints, a proxy that intercepts TLS is presenting its own)"
		return []Result{res}
	}
	res.Status, res.Seen = Pass, seen
	return []Result{res}
}

// certSoon is how close to expiry the endpoint's certificate draws a
// warning: AWS renews its certificates weeks ahead, so a shorter life left
// means someone else's certificate (a TLS-inspecting proxy) or a neglected
// gateway.
const certSoon = 7 * 24 * time.Hour

// dialTLS shakes hands with addr and reports the session.
func dialTLS(ctx context.Context, addr string) (TLSState, error) {
	d := tls.Dialer{Config: &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return TLSState{}, err
	}
	defer c.Close()
	cs := c.(*tls.Conn).ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return TLSState{}, errors.New("tls: the server sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	return TLSState{Version: tls.VersionName(cs.Version), ALPN: cs.NegotiatedProtocol, Issuer: leaf.Issuer.CommonName,
		NotAfter: leaf.NotAfter}, nil
}

// networkResult explains a DNS, TCP or TLS failure in the catalog's words.
func networkResult(res Result, err error, what string) Result {
	c := classify.FromError(err)
	code := catalog.CodeUnknownNetworkError
	if c.Entry != nil {
		code = c.Entry.Code
	}
	return catalogResult(res, Fail, code, what+": "+abbreviate(err.Error(), 160))
}
