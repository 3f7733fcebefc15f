// Package redisproc runs a redis-server process (Debian's package
// redis-server) on a free loopback port, without persistence: for tests
// (through redistest) and for the benches that kill Redis in the middle of
// a run.
package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// readyWithin bounds the wait for a started server to answer PING.
const readyWithin = 10 * time.Second

// ErrNotInstalled: no redis-server in PATH.
var ErrNotInstalled = errors.New("redis-server not found in PATH: install Debian's package redis-server (apt-get install redis-server)")

// Proc is a running redis-server. Kill and Restart stop and start it on
// the same port. It is not safe for concurrent use.
type Proc struct {
	// Addr is 127.0.0.1:port; URL is redis://[:password@]Addr.
	Addr, URL string
	// Password is the server's requirepass, if any.
	Password string

	bin, dir string
	args     []string // added to the command line
	port     int
	cmd      *exec.Cmd
	exit     chan struct{}
}

// Start starts a redis-server on a free loopback port, keeping its files
// (none: persistence is off) in dir, requiring password unless it is empty.
// args are added to its command line (--cluster-enabled yes, say).
func Start(dir, password string, args ...string) (*Proc, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	p := &Proc{bin: bin, dir: dir, Password: password, args: args}
	var last error
	for range 5 { // a port found free may be taken before the server binds it
		if p.port, err = freePort(); err != nil {
			return nil, fmt.Errorf("redisproc: no free port: %w", err)
		}
		if last = p.start(); last == nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("redisproc: redis-server did not start: %w", last)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (p *Proc) start() error {
	p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
	p.URL = "redis://" + p.Addr
	args := []string{"--port", strconv.Itoa(p.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", p.dir, "--daemonize", "no", "--loglevel", "warning", "--protected-mode", "yes"}
	if p.Password != "" {
		args = append(args, "--requirepass", p.Password)
		p.URL = "redis://:" + p.Password + "@" + p.Addr
	}
	cmd := exec.Command(p.bin, append(args, p.args...)...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd, p.exit = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(p.exit) }()
	rdb := p.Client()
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
		case <-p.exit:
			p.cmd = nil
			return fmt.Errorf("redis-server exited at start (port %d taken?)", p.port)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Kill()
			return fmt.Errorf("no answer to PING within %s: %v", readyWithin, err)
		}
	}
}

// Kill stops the server at once (SIGKILL), as a crash would. It does
// nothing when the server is not running.
func (p *Proc) Kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.exit
	p.cmd = nil
}

// Restart starts the server again on the same port, empty (nothing is
// persisted), as a restarted cache would be.
func (p *Proc) Restart() error {
	p.Kill()
	if err := p.start(); err != nil {
		return fmt.Errorf("redisproc: restart on port %d: %w", p.port, err)
	}
	return nil
}

// Client returns a new go-redis client of the server; the caller closes it.
func (p *Proc) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: p.Addr, Password: p.Password, MaxRetries: -1, DisableIdentity: true})
}

// InCI reports whether CI=true: tests that need redis-server fail there
// instead of skipping.
func InCI() bool { return os.Getenv("CI") == "true" }
