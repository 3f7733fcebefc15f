// Package redistest starts a real redis-server (Debian's package
// redis-server) for tests: on a free loopback port, without persistence,
// stopped when the test ends. A test on a machine without redis-server is
// skipped with a message naming the package, except in CI (CI=true), where
// it fails.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// readyWithin bounds the wait for a started server to answer PING.
const readyWithin = 10 * time.Second

// Server is a running redis-server. Kill and Restart stop and start it on
// the same port, for tests of what keel does while Redis is away.
type Server struct {
	// Addr is host:port; URL is redis://[:password@]Addr.
	Addr, URL string
	// Password is the server's requirepass, if any.
	Password string

	t    testing.TB
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	exit chan struct{}
}

// Option changes a Server.
type Option func(*Server)

// WithPassword makes the server require pw.
func WithPassword(pw string) Option { return func(s *Server) { s.Password = pw } }

// Start starts a redis-server and registers its stop with t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not found in PATH: install Debian's package redis-server (.ci/run does)")
		}
		t.Skip("redis-server not found: install Debian's package redis-server (apt-get install redis-server) to run this test")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	for _, o := range opts {
		o(s)
	}
	var last error
	for range 5 { // a port found free may be taken before the server binds it
		s.port, err = freePort()
		if err != nil {
			t.Fatalf("redistest: no free port: %v", err)
		}
		if last = s.start(); last == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("redistest: redis-server did not start: %v", last)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.URL = "redis://" + s.Addr
	args := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--daemonize", "no", "--loglevel", "warning", "--protected-mode", "yes"}
	if s.Password != "" {
		args = append(args, "--requirepass", s.Password)
		s.URL = "redis://:" + s.Password + "@" + s.Addr
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd, s.exit = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.exit) }()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password, MaxRetries: -1, DisableIdentity: true})
	defer rdb.Close()
	deadline := time.Now().Add(readyWithin)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exit:
			return fmt.Errorf("redis-server exited at start (port %d taken?)", s.port)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("no answer to PING within %s: %v", readyWithin, err)
		}
	}
}

// Kill stops the server at once (SIGKILL), as a crash would. It does
// nothing when the server is not running.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exit
	s.cmd = nil
}

// Restart starts the server again on the same port, empty (nothing is
// persisted), as a restarted cache would be.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart on port %d: %v", s.port, err)
	}
}

// Client returns a go-redis client of the server, closed when the test
// ends.
func (s *Server) Client() *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password, MaxRetries: -1, DisableIdentity: true})
	s.t.Cleanup(func() { rdb.Close() })
	return rdb
}
