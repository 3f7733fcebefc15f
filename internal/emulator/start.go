package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// closeGrace bounds how long Close waits for handlers to reset their own
// connections before closing what is left.
const closeGrace = time.Second

// Running is an emulator listening on a TCP address.
type Running struct {
	// URL is the base URL to give an SDK as its endpoint, e.g.
	// "http://127.0.0.1:40123".
	URL string
	// Server is the handler serving the requests.
	Server *Server

	srv      *http.Server
	done     chan error
	waitOnce sync.Once
	serveErr error
}

// Start starts an emulator configured by opts on 127.0.0.1 at a free port.
// Most tests want Start; call Close when done.
func Start(opts Options) (*Running, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	return s.Listen("127.0.0.1:0")
}

// Listen serves s on addr ("host:port"; port 0 picks a free one) until the
// returned Running is closed.
func (s *Server) Listen(addr string) (*Running, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("emulator: listen on %s: %w", addr, err)
	}
	rn := &Running{
		URL:    "http://" + ln.Addr().String(),
		Server: s,
		srv: &http.Server{
			Handler:           s,
			ReadHeaderTimeout: 30 * time.Second,
			// Reply pacing can be slow on purpose; no write timeout.
			IdleTimeout: 5 * time.Minute,
			Protocols:   protocols(),
		},
		done: make(chan error, 1),
	}
	go func() {
		err := rn.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		rn.done <- err
	}()
	return rn, nil
}

// protocols are HTTP/1.1 and HTTP/2 without TLS (prior knowledge): the AWS
// SDK for JavaScript v3 speaks HTTP/2 to Bedrock Runtime. Over HTTP/2 a
// connection fault (Refuse, Reset, Truncate) resets the stream
// (RST_STREAM) instead of the TCP connection.
func protocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}

// Addr returns the host:port the emulator listens on.
func (r *Running) Addr() string { return r.URL[len("http://"):] }

// Close stops the emulator at once: requests in flight, including those
// hanging or stalled on purpose, have their connections reset, so clients
// see an error rather than a reply that merely stops. It returns any error
// the server stopped with. Close may be called more than once.
func (r *Running) Close() error {
	r.Server.Close() // waiting handlers give up and reset their connections
	stop, cancel := context.WithCancel(context.Background())
	cancel()
	_ = r.srv.Shutdown(stop) // stop listening and drop idle connections, without waiting
	handled := r.Server.inflight.none()
	t := time.NewTimer(closeGrace)
	select {
	case <-handled:
	case <-t.C:
		// A handler is stuck writing to a client that stopped reading;
		// closing its connection below frees it.
	}
	t.Stop()
	err := r.srv.Close()
	<-handled
	if serveErr := r.wait(); serveErr != nil {
		return serveErr
	}
	return err
}

// wait returns the error Serve stopped with, once it has stopped.
func (r *Running) wait() error {
	r.waitOnce.Do(func() { r.serveErr = <-r.done })
	return r.serveErr
}

// Shutdown stops the emulator promptly and cleanly: it stops accepting
// connections, makes every request that waits (a hang, a stall, an added
// latency, a paced reply) give up and reset its connection, lets responses
// being written finish until ctx ends, and then closes what is left as
// Close does.
func (r *Running) Shutdown(ctx context.Context) error {
	r.Server.Close()
	err := r.srv.Shutdown(ctx)
	if err != nil {
		r.srv.Close()
	}
	if serveErr := r.wait(); serveErr != nil {
		return serveErr
	}
	return err
}
