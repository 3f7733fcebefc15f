package transport

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"syscall"
	"testing"
	"time"
)

// sockopts are a socket's keep-alive settings as the kernel reports them.
type sockopts struct {
	keepAlive, idle, interval, count int
}

func readSockopts(t *testing.T, c net.Conn) sockopts {
	t.Helper()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		t.Fatalf("dialed a %T, want *net.TCPConn", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var s sockopts
	var errs [4]error
	err = raw.Control(func(fd uintptr) {
		s.keepAlive, errs[0] = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		s.idle, errs[1] = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		s.interval, errs[2] = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL)
		s.count, errs[3] = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		if e != nil {
			t.Fatalf("getsockopt: %v", e)
		}
	}
	return s
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln
}

// TestKeepAliveOnTheSocket dials through the transport's own DialContext and
// reads the keep-alive settings back from the kernel.
func TestKeepAliveOnTheSocket(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want sockopts
	}{
		{name: "defaults", opts: Options{}, want: sockopts{keepAlive: 1, idle: 45, interval: 15, count: 4}},
		{name: "custom", opts: Options{KeepAliveIdle: 30 * time.Second, KeepAliveInterval: 5 * time.Second, KeepAliveCount: 3},
			want: sockopts{keepAlive: 1, idle: 30, interval: 5, count: 3}},
	}
	ln := listen(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTransport(tt.opts)
			c, err := tr.DialContext(context.Background(), "tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := readSockopts(t, c); got != tt.want {
				t.Fatalf("socket keep-alive %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestKeepAliveOnHTTPConnections checks the connection an HTTP request
// actually uses carries the settings, not only a connection dialed by hand.
func TestKeepAliveOnHTTPConnections(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	client := NewClient(Options{})
	defer client.CloseIdleConnections()
	var conn net.Conn
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { conn = info.Conn }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if conn == nil {
		t.Fatal("no connection seen")
	}
	want := sockopts{keepAlive: 1, idle: 45, interval: 15, count: 4}
	if got := readSockopts(t, conn); got != want {
		t.Fatalf("HTTP connection keep-alive %+v, want %+v", got, want)
	}
}
