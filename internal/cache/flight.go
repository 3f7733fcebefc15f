package cache

import (
	"context"
	"errors"
	"sync"
)

// Group coalesces concurrent calls of one key: the first caller (the
// leader) runs its function, and callers that arrive while it runs (the
// followers) wait for its result instead of running their own. It is
// written for keel rather than taken from x/sync/singleflight, which shares
// the leader's error with every follower and has no way for a follower to
// leave alone:
//
//   - a leader that fails hands over: unless share says its error is
//     the request's own (a validation error every follower would get too),
//     the followers are not given it, and one of them becomes the leader
//     and runs its own function;
//   - a follower whose context ends leaves at once with the context's
//     error, and the leader and the other followers go on;
//   - the leader runs on its own context: when it ends, its call fails and
//     hands over like any failure.
//
// The zero Group is ready to use. It is safe for concurrent use.
type Group[T any] struct {
	mu      sync.Mutex
	flights map[string]*flight[T]
}

type flight[T any] struct {
	done chan struct{} // closed with the result every waiter takes
	// baton is given to one waiting follower when the runner failed for
	// a reason of its own: that follower runs fn next, the others keep
	// waiting.
	baton   chan struct{}
	waiters int // followers waiting, under the Group's mu
	v       T
	err     error
}

// errLeaderPanicked is a flight's error when its last runner panicked and
// no follower was left to take over.
var errLeaderPanicked = errors.New("cache: the coalesced call panicked")

// Role says how a call of Do got its result.
type Role int

// Roles.
const (
	// Leader: the call ran its own function.
	Leader Role = iota
	// Follower: the call got another call's result.
	Follower
)

// Do runs fn, or waits for the call of key already running and takes its
// result. A leader's result is fn's. A follower gets the leader's value
// when the leader succeeded, or its error when share(err) is true; when
// the leader failed otherwise, one waiting follower runs its own fn (its
// Role is then Leader) while the others keep waiting for it. A follower
// whose ctx ends returns ctx's error.
func (g *Group[T]) Do(ctx context.Context, key string, fn func() (T, error), share func(error) bool) (T, error, Role) {
	g.mu.Lock()
	if g.flights == nil {
		g.flights = map[string]*flight[T]{}
	}
	f, running := g.flights[key]
	if !running {
		f = &flight[T]{done: make(chan struct{}), baton: make(chan struct{}, 1)}
		g.flights[key] = f
		g.mu.Unlock()
		return g.run(key, f, fn, share)
	}
	f.waiters++
	g.mu.Unlock()
	select {
	case <-f.done:
		return f.v, f.err, Follower
	case <-f.baton:
		g.mu.Lock()
		f.waiters--
		g.mu.Unlock()
		return g.run(key, f, fn, share)
	case <-ctx.Done():
		g.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			select {
			case <-f.baton: // handed to this follower as it left, and no one else waits
				g.end(key, f, *new(T), errLeaderPanicked)
			default:
			}
		}
		g.mu.Unlock()
		var zero T
		return zero, context.Cause(ctx), Follower
	}
}

// run runs fn for flight f as its leader. It ends the flight when fn
// succeeded, failed with an error to share, or no follower waits;
// otherwise it hands the baton to a follower. A panic of fn goes on up the
// leader's stack, after the hand-over.
func (g *Group[T]) run(key string, f *flight[T], fn func() (T, error), share func(error) bool) (v T, err error, _ Role) {
	returned := false
	defer func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		switch {
		case returned && (err == nil || share != nil && share(err)):
			g.end(key, f, v, err)
		case f.waiters == 0:
			if !returned {
				err = errLeaderPanicked
			}
			g.end(key, f, v, err)
		default:
			f.baton <- struct{}{}
		}
	}()
	v, err = fn()
	returned = true
	return v, err, Leader
}

// end sets the flight's result and releases its waiters; mu is held.
func (g *Group[T]) end(key string, f *flight[T], v T, err error) {
	f.v, f.err = v, err
	delete(g.flights, key)
	close(f.done)
}

// Waiting returns the number of followers waiting now, over all keys.
func (g *Group[T]) Waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, f := range g.flights {
		n += f.waiters
	}
	return n
}

// InFlight returns the number of keys whose call is running.
func (g *Group[T]) InFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.flights)
}
