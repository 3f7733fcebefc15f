// Package redistest starts a real redis-server (Debian's package
// redis-server) for tests: on a free loopback port, without persistence,
// stopped when the test ends. A test on a machine without redis-server is
// skipped with a message naming the package, except in CI (CI=true), where
// it fails.
package redistest

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/redisx/redisproc"
)

// Server is a running redis-server. Kill and Restart stop and start it on
// the same port, for tests of what keel does while Redis is away.
type Server struct {
	*redisproc.Proc
	t testing.TB
}

// Option changes the server Start starts.
type Option func(*options)

type options struct {
	password string
	args     []string
}

// WithPassword makes the server require pw.
func WithPassword(pw string) Option { return func(o *options) { o.password = pw } }

// WithArgs adds args to the server's command line.
func WithArgs(args ...string) Option { return func(o *options) { o.args = append(o.args, args...) } }

// Start starts a redis-server and registers its stop with t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	p, err := redisproc.Start(t.TempDir(), o.password, o.args...)
	switch {
	case errors.Is(err, redisproc.ErrNotInstalled) && !redisproc.InCI():
		t.Skip("redis-server not found: install Debian's package redis-server (apt-get install redis-server) to run this test")
	case err != nil:
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(p.Kill)
	return &Server{Proc: p, t: t}
}

// Restart starts the server again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.Proc.Restart(); err != nil {
		s.t.Fatal(err)
	}
}

// Client returns a go-redis client of the server, closed when the test
// ends.
func (s *Server) Client() *redis.Client {
	rdb := s.Proc.Client()
	s.t.Cleanup(func() { rdb.Close() })
	return rdb
}
