package clock

import (
	"context"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var epoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func TestFakeTimers(t *testing.T) {
	tests := []struct {
		name      string
		after     time.Duration
		advance   []time.Duration
		wantFired bool
	}{
		{name: "not due yet", after: time.Second, advance: []time.Duration{999 * time.Millisecond}, wantFired: false},
		{name: "exactly due", after: time.Second, advance: []time.Duration{time.Second}, wantFired: true},
		{name: "due over two steps", after: time.Second, advance: []time.Duration{600 * time.Millisecond, 400 * time.Millisecond}, wantFired: true},
		{name: "zero duration fires at once", after: 0, wantFired: true},
		{name: "negative duration fires at once", after: -time.Second, wantFired: true},
		{name: "negative advance does nothing", after: time.Second, advance: []time.Duration{-time.Hour}, wantFired: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake(epoch)
			tm := f.NewTimer(tt.after)
			for _, d := range tt.advance {
				f.Advance(d)
			}
			select {
			case <-tm.C():
				if !tt.wantFired {
					t.Fatal("timer fired early")
				}
			default:
				if tt.wantFired {
					t.Fatal("timer did not fire")
				}
			}
		})
	}
}

func TestFakeNowAdvances(t *testing.T) {
	f := NewFake(epoch)
	f.Advance(90 * time.Second)
	if got, want := f.Now(), epoch.Add(90*time.Second); !got.Equal(want) {
		t.Fatalf("Now() = %v, want %v", got, want)
	}
}

func TestFakeFiresInDeadlineOrder(t *testing.T) {
	f := NewFake(epoch)
	late := f.NewTimer(3 * time.Second)
	early := f.NewTimer(time.Second)
	f.Advance(5 * time.Second)
	// Both fire with the time of the Advance; what matters is that both did.
	for name, tm := range map[string]Timer{"early": early, "late": late} {
		select {
		case <-tm.C():
		default:
			t.Fatalf("%s timer did not fire", name)
		}
	}
	if f.Pending() != 0 {
		t.Fatalf("Pending() = %d after all fired, want 0", f.Pending())
	}
}

func TestFakeStop(t *testing.T) {
	f := NewFake(epoch)
	tm := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop() on a pending timer = false, want true")
	}
	if tm.Stop() {
		t.Fatal("second Stop() = true, want false")
	}
	if f.Pending() != 0 {
		t.Fatalf("Pending() = %d after Stop, want 0", f.Pending())
	}
	f.Advance(time.Hour)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}
	fired := f.NewTimer(time.Second)
	f.Advance(time.Second)
	if fired.Stop() {
		t.Fatal("Stop() on a fired timer = true, want false")
	}
}

// TestFakeWaitForTimersManyWaiters checks that every WaitForTimers caller
// wakes, not only one of them. It runs in a synctest bubble: a waiter that
// never wakes fails the test as a deadlock, at once.
func TestFakeWaitForTimersManyWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := NewFake(epoch)
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.WaitForTimers(2)
			}()
		}
		synctest.Wait() // every waiter is waiting
		f.NewTimer(time.Second)
		f.NewTimer(time.Second)
		wg.Wait()
	})
}

func TestFakeSleeperPattern(t *testing.T) {
	f := NewFake(epoch)
	woke := make(chan time.Time)
	go func() {
		tm := f.NewTimer(time.Minute)
		woke <- <-tm.C()
	}()
	f.WaitForTimers(1)
	f.Advance(time.Minute)
	if got := <-woke; !got.Equal(epoch.Add(time.Minute)) {
		t.Fatalf("woke at %v, want %v", got, epoch.Add(time.Minute))
	}
}

// TestRealTimer runs in a synctest bubble, whose clock the time package
// (and so Real) reads: the timer fires exactly on time, and at once.
func TestRealTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c Clock = Real{}
		start := c.Now()
		if !start.Equal(time.Now()) {
			t.Fatalf("Real.Now() = %v, time.Now() = %v", start, time.Now())
		}
		tm := c.NewTimer(time.Millisecond)
		if got := <-tm.C(); got.Sub(start) != time.Millisecond {
			t.Fatalf("fired after %v, want 1ms", got.Sub(start))
		}
		if tm.Stop() {
			t.Fatal("Stop() after firing = true, want false")
		}
		if tm := c.NewTimer(time.Hour); !tm.Stop() {
			t.Fatal("Stop() on a pending timer = false, want true")
		}
	})
}

// TestNewAuto: every timer fires at once, however long, and moves the time
// by its duration; Advance moves it too but is no wait.
func TestNewAuto(t *testing.T) {
	c := NewAuto(epoch)
	const long = 100 * 365 * 24 * time.Hour
	select {
	case got := <-c.NewTimer(long).C():
		if !got.Equal(epoch.Add(long)) {
			t.Fatalf("fired at %v", got)
		}
	default:
		t.Fatal("a NewAuto timer did not fire at once")
	}
	c.Advance(time.Second)
	c.NewTimer(-time.Second)
	if got := c.Now(); !got.Equal(epoch.Add(long + time.Second)) {
		t.Fatalf("Now = %v", got)
	}
	if w := c.Waits(); len(w) != 2 || w[0] != long || w[1] != -time.Second || c.Pending() != 0 {
		t.Fatalf("Waits = %v, %d pending", w, c.Pending())
	}
}

// TestFakeAutoFire: timers shorter than AutoFire's duration fire as they
// are made and move the time; longer ones wait for Advance or Fire.
func TestFakeAutoFire(t *testing.T) {
	f := NewFake(epoch).AutoFire(30 * time.Second)
	short := f.NewTimer(2 * time.Second)
	select {
	case got := <-short.C():
		if !got.Equal(epoch.Add(2 * time.Second)) {
			t.Fatalf("fired at %v", got)
		}
	default:
		t.Fatal("a short timer did not fire at once")
	}
	long := f.NewTimer(30 * time.Second)
	f.NewTimer(-time.Second)
	f.NewTimer(31 * time.Second).Stop() // a long one, stopped
	f.NewTimer(29 * time.Second)        // moves the time; long is not due yet
	f.NewTimer(time.Second)             // past long's deadline, but only Advance or Fire fires it
	if got := f.Now(); !got.Equal(epoch.Add(32 * time.Second)) {
		t.Fatalf("Now = %v", got)
	}
	if w := f.Waits(); len(w) != 4 || w[0] != 2*time.Second || w[1] != -time.Second || w[2] != 29*time.Second || w[3] != time.Second {
		t.Fatalf("Waits = %v", w)
	}
	if short.Stop() || f.Pending() != 1 {
		t.Fatalf("Stop on a fired timer reported true, or %d timers pending, want 1", f.Pending())
	}
	select {
	case <-long.C():
		t.Fatal("a long timer fired by itself")
	default:
	}
	f.Advance(0)
	select {
	case got := <-long.C():
		if !got.Equal(epoch.Add(32 * time.Second)) {
			t.Fatalf("the long timer fired at %v", got)
		}
	default:
		t.Fatal("Advance did not fire a long timer past its deadline")
	}
}

// TestFakeFire: Fire waits for a timer match accepts, moves the time to its
// deadline and fires it alone; it gives up when its context ends. It runs
// in a synctest bubble so that a Fire that never returns fails at once.
func TestFakeFire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := NewFake(epoch)
		minute := func(d time.Duration) bool { return d == time.Minute }
		fired := make(chan bool)
		go func() { fired <- f.Fire(context.Background(), minute) }()
		synctest.Wait()
		early := f.NewTimer(time.Second)
		synctest.Wait() // Fire looked, and found no minute
		m := f.NewTimer(time.Minute)
		if !<-fired {
			t.Fatal("Fire gave up")
		}
		if got := <-m.C(); !got.Equal(epoch.Add(time.Minute)) || !f.Now().Equal(got) {
			t.Fatalf("fired at %v, now %v; want both at a minute", got, f.Now())
		}
		select {
		case <-early.C():
			t.Fatal("Fire fired a timer match did not accept")
		default:
		}
		if !f.Fire(context.Background(), nil) || f.Pending() != 0 || !f.Now().Equal(epoch.Add(time.Minute)) {
			t.Fatalf("Fire(nil) with a timer past due: %d pending, now %v", f.Pending(), f.Now())
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { fired <- f.Fire(ctx, nil) }()
		synctest.Wait()
		cancel()
		if <-fired {
			t.Fatal("Fire reported a timer after its context ended")
		}
	})
}

// TestAutoFireEdges: NewAuto fires even a timer of the longest duration,
// and a plain Fake records no waits (only AutoFire's timers are waits).
func TestAutoFireEdges(t *testing.T) {
	a := NewAuto(epoch)
	tm := a.NewTimer(time.Duration(math.MaxInt64))
	select {
	case <-tm.C():
	default:
		t.Fatal("NewAuto left a timer of the longest duration pending")
	}
	f := NewFake(epoch)
	f.NewTimer(-time.Second)
	f.NewTimer(0)
	if w := f.Waits(); len(w) != 0 {
		t.Fatalf("a plain Fake recorded waits %v", w)
	}
}
