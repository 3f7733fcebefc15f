package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

var errTransient = errors.New("transient")
var errOwn = errors.New("the request's own")

func shareOwn(err error) bool { return errors.Is(err, errOwn) }

func TestGroupCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[int]
		var runs atomic.Int32
		release := make(chan struct{})
		fn := func() (int, error) {
			runs.Add(1)
			<-release
			return 42, nil
		}
		var wg sync.WaitGroup
		roles := make(chan Role, 100)
		for range 100 {
			wg.Go(func() {
				v, err, role := g.Do(t.Context(), "k", fn, shareOwn)
				if v != 42 || err != nil {
					t.Errorf("Do = %d, %v", v, err)
				}
				roles <- role
			})
		}
		synctest.Wait() // every caller is in Do: one runs, the others wait
		close(release)
		wg.Wait()
		close(roles)
		leaders := 0
		for r := range roles {
			if r == Leader {
				leaders++
			}
		}
		if runs.Load() != 1 || leaders != 1 {
			t.Errorf("fn ran %d times, %d leaders; want 1 and 1", runs.Load(), leaders)
		}
		if g.InFlight() != 0 {
			t.Errorf("InFlight = %d after the flight", g.InFlight())
		}
	})
}

func TestGroupHandsOver(t *testing.T) {
	tests := []struct {
		name     string
		firstErr error
		// wantRuns: how many times fn runs for a leader and two followers.
		wantRuns int32
		wantErr  error
	}{
		{"a transient failure hands over to one follower", errTransient, 2, nil},
		{"the request's own failure is shared", errOwn, 1, errOwn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var g Group[int]
				var runs atomic.Int32
				release := make(chan struct{})
				fn := func() (int, error) {
					n := runs.Add(1)
					<-release
					if n == 1 {
						return 0, tt.firstErr
					}
					return 7, nil
				}
				results := make(chan error, 3)
				go func() { _, err, _ := g.Do(t.Context(), "k", fn, shareOwn); results <- err }()
				synctest.Wait()
				var wg sync.WaitGroup
				for range 2 {
					wg.Go(func() {
						v, err, role := g.Do(t.Context(), "k", fn, shareOwn)
						if err == nil && v != 7 || role == Follower && err == nil && runs.Load() < 2 {
							t.Errorf("follower got %d, %v as %v", v, err, role)
						}
						results <- err
					})
				}
				synctest.Wait()
				close(release)
				wg.Wait()
				if got := <-results; !errors.Is(got, tt.firstErr) {
					t.Errorf("the leader got %v, want its own %v", got, tt.firstErr)
				}
				for range 2 {
					if got := <-results; !errors.Is(got, tt.wantErr) && got != tt.wantErr {
						t.Errorf("a follower got %v, want %v", got, tt.wantErr)
					}
				}
				if runs.Load() != tt.wantRuns {
					t.Errorf("fn ran %d times, want %d", runs.Load(), tt.wantRuns)
				}
			})
		})
	}
}

func TestGroupFollowerLeavesAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[int]
		release := make(chan struct{})
		fn := func() (int, error) { <-release; return 1, nil }
		leader := make(chan int)
		go func() { v, _, _ := g.Do(t.Context(), "k", fn, nil); leader <- v }()
		synctest.Wait()
		ctx, cancel := context.WithCancel(t.Context())
		left := make(chan error)
		go func() { _, err, _ := g.Do(ctx, "k", fn, nil); left <- err }()
		stay := make(chan int)
		go func() { v, _, _ := g.Do(t.Context(), "k", fn, nil); stay <- v }()
		synctest.Wait()
		cancel()
		if err := <-left; !errors.Is(err, context.Canceled) {
			t.Errorf("the follower that left got %v", err)
		}
		close(release)
		if v, w := <-leader, <-stay; v != 1 || w != 1 {
			t.Errorf("leader %d, other follower %d; want both 1: a follower leaving cancels nothing", v, w)
		}
	})
}

func TestGroupLeaderPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g Group[int]
		release := make(chan struct{})
		var runs atomic.Int32
		fn := func() (int, error) {
			if runs.Add(1) == 1 {
				<-release
				panic("boom")
			}
			return 3, nil
		}
		go func() {
			defer func() { recover() }()
			g.Do(t.Context(), "k", fn, nil)
		}()
		synctest.Wait()
		got := make(chan int)
		go func() { v, _, _ := g.Do(t.Context(), "k", fn, nil); got <- v }()
		synctest.Wait()
		close(release)
		if v := <-got; v != 3 {
			t.Errorf("after the leader panicked the follower got %d, want its own run's 3", v)
		}
	})
}
