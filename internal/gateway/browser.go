package gateway

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/keel-run/keel/internal/catalog"
)

// browserRefusal returns why r is refused as a browser's, or nil. No SDK
// sends Origin or Sec-Fetch-Site; every browser sends one of them with a
// cross-site POST (a "simple request" needs no preflight) and with a
// same-origin one after DNS rebinding, so a web page could otherwise spend
// the gateway's quota with its upstream credentials.
func browserRefusal(r *http.Request) *Refusal {
	for _, k := range []string{"Origin", "Sec-Fetch-Site"} {
		if v := r.Header.Get(k); v != "" {
			return &Refusal{Code: catalog.CodeAccessDenied, Status: http.StatusForbidden, Message: fmt.Sprintf(
				"keel gateway: requests from a browser (this one has an %s header) are refused; call the gateway with an AWS SDK or another HTTP client", k)}
		}
	}
	return nil
}

// hostRefusal returns why an open gateway refuses r, or nil: an open
// gateway (no Authenticate, no InsecureOpen) answers only requests for a
// loopback name. A DNS-rebinding page reaches 127.0.0.1 under its own name,
// which is in Host.
func (s *Server) hostRefusal(r *http.Request) *Refusal {
	if s.opts.Authenticate != nil || s.opts.InsecureOpen || loopbackHost(r.Host) {
		return nil
	}
	return &Refusal{Code: catalog.CodeAccessDenied, Status: http.StatusForbidden, Message: fmt.Sprintf(
		"keel gateway: this gateway is open (no callers), so it answers only loopback names (localhost, 127.0.0.1, ::1); "+
			"the request is for Host %q", shownValue(r.Host))}
}

// loopbackHost reports whether a Host header (with or without a port) is
// localhost or a loopback IP address.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// cmpRefusal returns the first refusal that is not nil.
func cmpRefusal(a, b *Refusal) *Refusal {
	if a != nil {
		return a
	}
	return b
}
