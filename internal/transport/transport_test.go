package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"
)

func TestTransportSettings(t *testing.T) {
	tests := []struct {
		name              string
		opts              Options
		wantHeader        time.Duration
		wantIdle          time.Duration
		wantTLS           time.Duration
		wantDial          time.Duration
		wantPerHost       int
		wantPing          time.Duration // HTTP/2 SendPingTimeout; 0: no HTTP2 config
		wantDialKeepAlive time.Duration
	}{
		{name: "defaults", opts: Options{},
			wantHeader: time.Hour, wantIdle: 90 * time.Second, wantTLS: 10 * time.Second, wantDial: 10 * time.Second,
			wantPerHost: 64, wantPing: 45 * time.Second, wantDialKeepAlive: 45 * time.Second},
		{name: "custom", opts: Options{ResponseHeaderTimeout: time.Minute, IdleConnTimeout: time.Second, TLSHandshakeTimeout: time.Second,
			DialTimeout: 2 * time.Second, MaxIdleConnsPerHost: 8, KeepAliveIdle: 20 * time.Second},
			wantHeader: time.Minute, wantIdle: time.Second, wantTLS: time.Second, wantDial: 2 * time.Second,
			wantPerHost: 8, wantPing: 20 * time.Second, wantDialKeepAlive: 20 * time.Second},
		{name: "negative means none", opts: Options{ResponseHeaderTimeout: -1, IdleConnTimeout: -1, TLSHandshakeTimeout: -1, DialTimeout: -1,
			KeepAliveIdle: -1, MaxIdleConnsPerHost: -1},
			wantPerHost: 0, wantDialKeepAlive: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTransport(tt.opts)
			if tr.ResponseHeaderTimeout != tt.wantHeader || tr.IdleConnTimeout != tt.wantIdle ||
				tr.TLSHandshakeTimeout != tt.wantTLS || tr.MaxIdleConnsPerHost != tt.wantPerHost {
				t.Fatalf("transport header %v idle %v tls %v per-host %d, want %v %v %v %d",
					tr.ResponseHeaderTimeout, tr.IdleConnTimeout, tr.TLSHandshakeTimeout, tr.MaxIdleConnsPerHost,
					tt.wantHeader, tt.wantIdle, tt.wantTLS, tt.wantPerHost)
			}
			if !tr.ForceAttemptHTTP2 {
				t.Fatal("ForceAttemptHTTP2 is off")
			}
			if tr.Proxy == nil {
				t.Fatal("no Proxy function: HTTPS_PROXY would be ignored")
			}
			switch {
			case tt.wantPing == 0 && tr.HTTP2 != nil:
				t.Fatalf("HTTP2 config %+v, want none", tr.HTTP2)
			case tt.wantPing != 0 && (tr.HTTP2 == nil || tr.HTTP2.SendPingTimeout != tt.wantPing):
				t.Fatalf("HTTP2 config %+v, want SendPingTimeout %v", tr.HTTP2, tt.wantPing)
			}
			d := Dialer(tt.opts)
			if d.Timeout != tt.wantDial || !d.KeepAliveConfig.Enable || d.KeepAliveConfig.Idle != tt.wantDialKeepAlive {
				t.Fatalf("dialer timeout %v keep-alive %+v, want %v and idle %v", d.Timeout, d.KeepAliveConfig, tt.wantDial, tt.wantDialKeepAlive)
			}
		})
	}
}

func TestTLSConfigIsCloned(t *testing.T) {
	cfg := &tls.Config{ServerName: "example"}
	tr := NewTransport(Options{TLSClientConfig: cfg})
	if tr.TLSClientConfig == cfg || tr.TLSClientConfig.ServerName != "example" {
		t.Fatal("TLSClientConfig not cloned")
	}
	if tr := NewTransport(Options{}); tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion != tls.VersionTLS12 {
		t.Fatal("default TLS config does not require TLS 1.2")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "defaults", opts: Options{}},
		{name: "just under the NAT timeout", opts: Options{KeepAliveIdle: NATIdleTimeout - time.Second}},
		{name: "at the NAT timeout", opts: Options{KeepAliveIdle: NATIdleTimeout}, wantErr: "transport: KeepAliveIdle 5m50s is not under the 5m50s NAT/VPC endpoint idle timeout"},
		{name: "OS default", opts: Options{KeepAliveIdle: -1}, wantErr: "leaves keep-alive timing to the OS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestProtocols(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Proto))
	})
	plain := httptest.NewServer(handler)
	defer plain.Close()
	tlsSrv := httptest.NewUnstartedServer(handler)
	tlsSrv.EnableHTTP2 = true
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(tlsSrv.Certificate())

	tests := []struct {
		name      string
		url       string
		opts      Options
		wantMajor int
	}{
		{name: "HTTP/1.1 over plain loopback", url: plain.URL, wantMajor: 1},
		{name: "HTTP/2 over TLS", url: tlsSrv.URL, opts: Options{TLSClientConfig: &tls.Config{RootCAs: roots}}, wantMajor: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := NewClient(tt.opts)
			defer client.CloseIdleConnections()
			resp, err := client.Get(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != tt.wantMajor {
				t.Fatalf("ProtoMajor = %d (%s), want %d", resp.ProtoMajor, resp.Proto, tt.wantMajor)
			}
		})
	}
}

// TestIdleConnectionsClosed checks that a pooled connection is reused while
// fresh and closed once idle for IdleConnTimeout. It uses real time (a
// fraction of a second): the pool's timer is the http package's own.
func TestIdleConnectionsClosed(t *testing.T) {
	closed := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			select {
			case closed <- struct{}{}:
			default:
			}
		}
	}
	srv.Start()
	defer srv.Close()

	const idle = 150 * time.Millisecond
	client := NewClient(Options{IdleConnTimeout: idle})
	get := func() (reused bool) {
		t.Helper()
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, srv.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return reused
	}
	get()
	if !get() {
		t.Fatal("second request did not reuse the pooled connection")
	}
	start := time.Now()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("idle connection still open after 2s")
	}
	if waited := time.Since(start); waited < idle/2 {
		t.Fatalf("idle connection closed after %v, before the %v idle timeout", waited, idle)
	}
	if get() {
		t.Fatal("request after the idle timeout reused a closed connection")
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	client := NewClient(Options{ResponseHeaderTimeout: 50 * time.Millisecond})
	_, err := client.Get(srv.URL)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() || !strings.Contains(err.Error(), "awaiting response headers") {
		t.Fatalf("Get = %v, want a response-header timeout", err)
	}
}
