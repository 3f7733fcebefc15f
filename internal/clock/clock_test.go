package clock

import (
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

func TestAuto(t *testing.T) {
	start := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	c := NewAuto(start)
	tm := c.NewTimer(2 * time.Second)
	select {
	case got := <-tm.C():
		if !got.Equal(start.Add(2 * time.Second)) {
			t.Fatalf("fired at %v", got)
		}
	default:
		t.Fatal("an Auto timer did not fire at once")
	}
	c.Advance(time.Second)
	c.NewTimer(-time.Second)
	if got := c.Now(); !got.Equal(start.Add(3 * time.Second)) {
		t.Fatalf("Now = %v", got)
	}
	if w := c.Waits(); len(w) != 2 || w[0] != 2*time.Second || w[1] != -time.Second {
		t.Fatalf("Waits = %v", w)
	}
	if tm.Stop() {
		t.Fatal("Stop on a fired timer reported true")
	}
}
