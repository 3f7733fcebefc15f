package auth

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// budgetCallers: "small" has 600 tokens a minute, 10 a second.
func budgetCallers() []Caller {
	return []Caller{
		{Name: "small", Bearer: tokenA, TokensPerMinute: 600},
		{Name: "unlimited", Bearer: tokenC},
	}
}

func newBudgets(t *testing.T, clk clock.Clock) *Budgets {
	t.Helper()
	b, err := NewBudgets(budgetCallers(), clk)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func level(b *Budgets, name string) float64 {
	lv, err := b.store.Level(context.Background(), BudgetKey(name), b.clk.Now())
	if err != nil {
		panic(err)
	}
	return lv.Tokens
}

// reserveNow reserves tokens and fails the test unless it is granted at once.
func reserveNow(t *testing.T, b *Budgets, tokens int) func(int) {
	t.Helper()
	release, err := b.Reserve(context.Background(), "small", tokens)
	if err != nil {
		t.Fatalf("Reserve(%d): %v", tokens, err)
	}
	return release
}

func TestBudgetSettle(t *testing.T) {
	tests := []struct {
		name      string
		reserve   int
		advance   time.Duration // between the reservation and its release
		used      []int         // release calls, in order
		wantLevel float64
	}{
		{name: "fits, nothing released yet", reserve: 400, wantLevel: 200},
		{name: "refund of the unused part", reserve: 400, used: []int{100}, wantLevel: 500},
		{name: "not charged: all back", reserve: 400, used: []int{0}, wantLevel: 600},
		{name: "refund capped at the capacity", reserve: 100, advance: 20 * time.Second, used: []int{0}, wantLevel: 600},
		{name: "refilled meanwhile", reserve: 600, advance: 20 * time.Second, used: []int{500}, wantLevel: 300},
		{name: "used more than reserved: debt", reserve: 400, used: []int{700}, wantLevel: -100},
		{name: "second release does nothing", reserve: 400, used: []int{100, 0}, wantLevel: 500},
		{name: "negative use counts as none", reserve: 400, used: []int{-5}, wantLevel: 600},
		{name: "the whole budget", reserve: 600, wantLevel: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(now)
			b := newBudgets(t, clk)
			release := reserveNow(t, b, tt.reserve)
			clk.Advance(tt.advance)
			for _, u := range tt.used {
				release(u)
			}
			if got := level(b, "small"); got != tt.wantLevel {
				t.Errorf("level %v, want %v", got, tt.wantLevel)
			}
		})
	}
}

func TestBudgetRefuses(t *testing.T) {
	tests := []struct {
		name     string
		caller   string
		tokens   int
		throttle string // the ThrottlingException's message; "" for a plain error
		err      string
	}{
		{name: "never fits", caller: "small", tokens: 601,
			throttle: "Too many tokens, please wait before trying again. Caller small's budget is 600 tokens per minute; " +
				"this request reserves 601 (input + max tokens) and can never fit."},
		{name: "unknown caller", caller: "nobody", tokens: 1, err: `auth: Reserve: no caller named "nobody"`},
		{name: "negative tokens", caller: "small", tokens: -1, err: `auth: Reserve("small", tokens=-1): tokens must not be negative`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(now)
			b := newBudgets(t, clk)
			release, err := b.Reserve(context.Background(), tt.caller, tt.tokens)
			if release != nil || err == nil {
				t.Fatalf("Reserve granted, want a refusal")
			}
			var e *Error
			if tt.throttle != "" {
				if !errors.As(err, &e) {
					t.Fatalf("Reserve error %v, want an *Error", err)
				}
				checkError(t, e, "ThrottlingException", ErrOverBudget, tt.throttle)
			} else if errors.As(err, &e) || err.Error() != tt.err {
				t.Errorf("Reserve error %v, want the plain error %q", err, tt.err)
			}
			if clk.Pending() != 0 || level(b, "small") != 600 {
				t.Errorf("a refusal waited (%d timers) or took tokens (level %v)", clk.Pending(), level(b, "small"))
			}
		})
	}
}

func TestBudgetUnlimited(t *testing.T) {
	b := newBudgets(t, clock.NewFake(now))
	release, err := b.Reserve(context.Background(), "unlimited", 1<<40)
	if err != nil {
		t.Fatalf("a caller without a budget was refused: %v", err)
	}
	release(1 << 40)
}

// TestBudgetWaitsInOrder checks that calls that do not fit wait for the
// bucket to refill, first come first served, and are granted when it has.
func TestBudgetWaitsInOrder(t *testing.T) {
	clk := clock.NewFake(now)
	b := newBudgets(t, clk)
	reserveNow(t, b, 600)
	granted := make(chan int, 2)
	reserve := func(tokens int) {
		release, err := b.Reserve(context.Background(), "small", tokens)
		if err != nil {
			t.Errorf("Reserve(%d): %v", tokens, err)
		}
		granted <- tokens
		release(tokens)
	}
	go reserve(300) // due in 30 s
	clk.WaitForTimers(1)
	go reserve(100) // behind it: due in 40 s
	clk.WaitForTimers(2)
	clk.Advance(29 * time.Second)
	if p := clk.Pending(); p != 2 {
		t.Fatalf("%d waits pending after 29 s, want both: no tokens were refilled for them yet", p)
	}
	clk.Advance(time.Second)
	if n := <-granted; n != 300 {
		t.Fatalf("%d granted first, want the 300 that came first", n)
	}
	clk.Advance(10 * time.Second)
	if n := <-granted; n != 100 {
		t.Fatalf("granted %d, want 100", n)
	}
}

// TestBudgetDeadline checks, with real contexts in a bubble, that a call
// whose wait would pass its deadline is refused at once, and that one
// whose context ends while it waits gives its tokens back.
func TestBudgetDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBudgets(t, clock.Real{})
		reserveNow(t, b, 600)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := b.Reserve(ctx, "small", 100) // needs 10 s
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Reserve = %v, want a ThrottlingException", err)
		}
		checkError(t, e, "ThrottlingException", ErrOverBudget, "Too many tokens, please wait before trying again. "+
			"Caller small's budget of 600 tokens per minute has no room for 100 more until 10s from now, after the request's deadline.")
		if waited := time.Since(start); waited != 0 {
			t.Errorf("refused after %v, want at once", waited)
		}
		if got := level(b, "small"); got != 0 {
			t.Errorf("level %v after a refusal, want 0", got)
		}

		// A deadline late enough: the call waits its 10 s.
		ctx2, cancel2 := context.WithTimeout(context.Background(), 11*time.Second)
		defer cancel2()
		release, err := b.Reserve(ctx2, "small", 100)
		if err != nil {
			t.Fatalf("Reserve with time to wait: %v", err)
		}
		if waited := time.Since(start); waited != 10*time.Second {
			t.Errorf("granted after %v, want 10s", waited)
		}
		release(100)

		// Cancelled while waiting: the tokens come back.
		ctx3, cancel3 := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			_, err := b.Reserve(ctx3, "small", 100)
			done <- err
		}()
		synctest.Wait()
		if got := level(b, "small"); got != -100 {
			t.Fatalf("level %v while waiting, want -100", got)
		}
		cancel3()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Reserve = %v, want context.Canceled", err)
		}
		if got := level(b, "small"); got != 0 {
			t.Errorf("level %v after the cancelled wait, want 0", got)
		}
	})
}
