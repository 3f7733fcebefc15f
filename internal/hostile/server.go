package hostile

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// A Server serves a handler for a test, over a socket on 127.0.0.1 (Listen)
// or over in-memory connections (Pipe). Close it when done: Close ends every
// request in flight, a Hang included, and returns when every goroutine of
// the server has. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to give a client as its endpoint, with no
	// trailing slash: http://127.0.0.1:port, or http://hostile.pipe for a
	// Pipe (whose client reaches the server whatever the host).
	URL string

	srv    http.Server
	client *http.Client
	wg     sync.WaitGroup // Serve, each connection until it closes, each handler
	once   sync.Once
}

// Listen serves h on a new socket on 127.0.0.1 and returns the running
// Server. It panics when it cannot listen, as httptest.NewServer does.
func Listen(h http.Handler) *Server {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		panic("hostile: " + err.Error())
	}
	return serve(h, l, &http.Transport{})
}

// Pipe serves h over in-memory connections (net.Pipe) and returns the
// running Server; only its Client reaches it. Every wait of its requests,
// on either side, blocks durably in a testing/synctest bubble, so bubble
// time runs on while a Hang holds or a Drip waits. Inside a bubble, call
// Pipe, use the client and Close the server in that bubble.
//
// A Reset is carried over: after the server sets SetLinger(0) and closes,
// the client's reads and writes fail with ECONNRESET as from a socket.
func Pipe(h http.Handler) *Server {
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	return serve(h, l, &http.Transport{DialContext: l.dial})
}

func serve(h http.Handler, l net.Listener, t *http.Transport) *Server {
	s := &Server{URL: "http://" + l.Addr().String(), client: &http.Client{Transport: t}}
	s.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The connection's count is held while its handler starts, so
		// this Add never races with Close's Wait at zero.
		s.wg.Add(1)
		defer s.wg.Done()
		h.ServeHTTP(w, r)
	})
	s.srv.ConnState = func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.wg.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.wg.Done()
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.srv.Serve(l)
	}()
	return s
}

// Client returns a client that reaches the server; it follows redirects as
// http.Client does unless its CheckRedirect is set. Close closes its idle
// connections.
func (s *Server) Client() *http.Client { return s.client }

// Close stops the server: it closes the listener and every connection,
// which ends the context of every request in flight, then waits for every
// handler and connection goroutine to return. Close is idempotent.
func (s *Server) Close() {
	s.once.Do(func() {
		s.srv.Close()
		s.wg.Wait()
		s.client.CloseIdleConnections()
	})
}

// pipeListener is a net.Listener whose connections are dialled by a
// client's transport in the same process.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial is the client transport's DialContext: it hands one end of a new
// pipe to Accept and returns the other.
func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	rst := new(atomic.Bool)
	var err error
	select {
	case l.conns <- &pipeConn{Conn: server, rst: rst}:
		return &pipeConn{Conn: client, rst: rst, client: true}, nil
	case <-l.done:
		err = &net.OpError{Op: "dial", Net: "pipe", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	case <-ctx.Done():
		err = ctx.Err()
	}
	server.Close()
	client.Close()
	return nil, err
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "hostile.pipe" }

// pipeConn is one end of a Pipe connection. The server's end takes
// SetLinger(0), as a *net.TCPConn does, to close with a reset; the client's
// end then reads a peer's close as ECONNRESET instead of io.EOF.
type pipeConn struct {
	net.Conn
	rst    *atomic.Bool // shared by both ends
	client bool
}

// SetLinger(0) makes the next Close a reset; other values are ignored.
func (c *pipeConn) SetLinger(sec int) error {
	if sec == 0 {
		c.rst.Store(true)
	}
	return nil
}

func (c *pipeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	return n, c.reset("read", err)
}

func (c *pipeConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	return n, c.reset("write", err)
}

// reset turns the error of the client's end into ECONNRESET, as a socket
// reports it, when the server's end closed with a reset.
func (c *pipeConn) reset(op string, err error) error {
	if err == nil || !c.client || !c.rst.Load() || !(err == io.EOF || errors.Is(err, io.ErrClosedPipe)) {
		return err
	}
	return &net.OpError{Op: op, Net: "pipe", Source: c.LocalAddr(), Addr: c.RemoteAddr(),
		Err: os.NewSyscallError(op, syscall.ECONNRESET)}
}
