package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

const (
	// bodyReadTimeout bounds reading a request's body: 32 MiB at 1 MB/s
	// fits; a client that trickles a body slower than that is cut.
	bodyReadTimeout = time.Minute
	// idleTimeout closes keep-alive connections left idle this long; the
	// SDKs reconnect at once.
	idleTimeout = 2 * time.Minute
	// cutGrace bounds how long Shutdown waits, once it has cut the calls
	// still running after the drain, for their handlers to write the typed
	// error and return, before it closes their connections.
	cutGrace = 5 * time.Second
)

// Serve serves the gateway on ln until Shutdown or Close: HTTP/1.1 and
// HTTP/2 with prior knowledge (h2c) on a plain listener, or h2 and HTTP/1.1
// over TLS when tlsConfig is set (its certificates; ALPN is added). It
// returns nil after Shutdown or Close.
func (s *Server) Serve(ln net.Listener, tlsConfig *tls.Config) error {
	var p http.Protocols
	p.SetHTTP1(true)
	if tlsConfig != nil {
		p.SetHTTP2(true)
	} else {
		// The AWS SDK for JavaScript v3 speaks HTTP/2 to Bedrock Runtime,
		// with prior knowledge when the endpoint is http://.
		p.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		IdleTimeout:       idleTimeout,
		Protocols:         &p,
		TLSConfig:         tlsConfig,
	}
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	var err error
	if tlsConfig != nil {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the gateway gracefully: it stops accepting connections,
// /readyz answers 503, and calls and streams in flight finish until ctx
// ends (the drain). Then those still running are cut with a typed error
// (503 ServiceUnavailableException, or an exception frame on a stream that
// has begun), and their connections closed after a short grace. It
// returns ctx's error when the drain ran out, else nil.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	servers := append([]*http.Server(nil), s.servers...)
	s.mu.Unlock()
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { errc <- srv.Shutdown(ctx) }()
	}
	var err error
	for range servers {
		if e := <-errc; e != nil && err == nil {
			err = e
		}
	}
	if err == nil && s.inflight.idle() {
		return nil
	}
	// The drain ran out: cut what is left, let the handlers say so and
	// their answers reach the wire, then close the connections left.
	s.cutCall()
	grace, cancel := context.WithTimeout(context.Background(), cutGrace)
	defer cancel()
	select {
	case <-s.inflight.wait():
	case <-grace.Done():
	}
	// A handler that has returned may still have its answer buffered:
	// net/http flushes it after the handler. A second Shutdown waits for
	// each connection to go idle, that is for the answer to be written.
	for _, srv := range servers {
		go func() { errc <- srv.Shutdown(grace) }()
	}
	for range servers {
		<-errc
	}
	for _, srv := range servers {
		srv.Close()
	}
	return cmpErr(err, ctx.Err())
}

// Close stops the gateway at once: calls in flight are cut and every
// connection closed.
func (s *Server) Close() error {
	s.mu.Lock()
	s.stopping = true
	servers := append([]*http.Server(nil), s.servers...)
	s.mu.Unlock()
	s.cutCall()
	var err error
	for _, srv := range servers {
		if e := srv.Close(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// tracker counts the calls in flight, so that a shutdown can wait for
// them. Its zero value is ready to use.
type tracker struct {
	mu    sync.Mutex
	n     int
	empty chan struct{} // closed when n drops to zero; nil while nobody waits
}

func (t *tracker) add() {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
}

func (t *tracker) done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 && t.empty != nil {
		close(t.empty)
		t.empty = nil
	}
	t.mu.Unlock()
}

func (t *tracker) idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n == 0
}

// wait returns a channel closed when no call is in flight.
func (t *tracker) wait() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	if t.empty == nil {
		t.empty = make(chan struct{})
	}
	return t.empty
}
