package jobs

import (
	"context"
	"errors"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/bedrock"

	"github.com/keel-run/keel/internal/clock"
)

// failGets fails the first n GetModelInvocationJob calls with err.
type failGets struct {
	*fakeAWS
	err   error
	n     int
	calls int
}

func (f *failGets) GetModelInvocationJob(ctx context.Context, in *bedrock.GetModelInvocationJobInput, o ...func(*bedrock.Options)) (*bedrock.GetModelInvocationJobOutput, error) {
	f.calls++
	if f.calls <= f.n {
		return nil, f.err
	}
	return f.fakeAWS.GetModelInvocationJob(ctx, in, o...)
}

// TestPollFailures (review r5, finding 6): a poll that failed before any
// request went out (no credentials, an expired SSO session) or that
// Bedrock refused for its identity or signature ends the wait at once;
// the network and throttles are tried again, and each retry is told.
func TestPollFailures(t *testing.T) {
	sso := errors.New("operation error Bedrock: GetModelInvocationJob, get identity: get credentials: failed to refresh cached credentials, the SSO session has expired or is invalid")
	none := errors.New("operation error Bedrock: GetModelInvocationJob, get identity: get credentials: failed to retrieve credentials: no EC2 IMDS role found")
	reset := &url.Error{Op: "Post", URL: "https://bedrock.us-east-1.amazonaws.com/model-invocation-job/x", Err: syscall.ECONNRESET}
	tests := []struct {
		name  string
		err   error
		final bool
	}{
		{"expired SSO session", sso, true},
		{"no credentials", none, true},
		{"ExpiredTokenException", apiErr("ExpiredTokenException", "The security token included in the request is expired"), true},
		{"UnrecognizedClientException", apiErr("UnrecognizedClientException", "The security token included in the request is invalid."), true},
		{"InvalidSignatureException", apiErr("InvalidSignatureException", "The request signature we calculated does not match"), true},
		{"connection reset", reset, false},
		{"throttled", apiErr("ThrottlingException", "slow down"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			if err := e.runner(t).Submit(context.Background()); err != nil {
				t.Fatal(err)
			}
			f := &failGets{fakeAWS: e.fake, err: tt.err, n: 1}
			e.opts.Bedrock = f
			var told []error
			e.opts.Retrying = func(what string, err error, wait time.Duration) { told = append(told, err) }
			_, err := e.runner(t).Wait(context.Background())
			if tt.final {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want the wait ended by %v", err, tt.err)
				}
				if f.calls != 1 || len(told) != 0 || len(e.clock.Waits()) != 0 {
					t.Fatalf("%d polls, %d retries told, waits %v: want one poll and no retry", f.calls, len(told), e.clock.Waits())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(told) != 1 || !errors.Is(told[0], tt.err) {
				t.Fatalf("retries told: %v, want the one failed poll", told)
			}
		})
	}
}

// TestPollCeilingAcrossRestarts (review r5, finding 8): the polls-per-hour
// ceiling holds across processes (a supervisor or cron restarting keel
// jobs wait), since the state file keeps the times of the last polls.
func TestPollCeilingAcrossRestarts(t *testing.T) {
	tests := []struct {
		name     string
		perHour  int
		restarts int
		later    time.Duration // then the clock moves on this much and one more restart comes
		want     int           // GetModelInvocationJob calls in all
		held     int           // restarts told they hold their first poll (Options.Holding)
	}{
		{"4 an hour, 100 restarts at once", 4, 100, 0, 4, 96},
		{"1 an hour, 10 restarts at once", 1, 10, 0, 1, 9},
		{"4 an hour, then an hour later", 4, 10, time.Hour, 5, 6},
		{"4 an hour, then 59 minutes later", 4, 10, 59 * time.Minute, 4, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			e.fake.pollsToEnd = 1 << 30
			if err := e.runner(t).Submit(context.Background()); err != nil {
				t.Fatal(err)
			}
			clk := clock.NewFake(t0) // time stands still unless the test moves it
			e.opts.Clock, e.opts.Polling = clk, Polling{PerHour: tt.perHour}
			held := 0
			e.opts.Holding = func(wait time.Duration) {
				if wait <= 0 || wait > time.Hour {
					t.Errorf("told to hold %v", wait)
				}
				held++
			}
			restart := func() {
				ctx, cancel := context.WithCancel(context.Background())
				cancel() // each process polls at most once, then is gone
				e.runner(t).Wait(ctx)
			}
			for range tt.restarts {
				restart()
			}
			if tt.later > 0 {
				clk.Advance(tt.later)
				restart()
			}
			if e.fake.gets != tt.want || held != tt.held {
				t.Fatalf("%d polls, %d restarts told they hold; want %d and %d", e.fake.gets, held, tt.want, tt.held)
			}
		})
	}
}

// TestSavedPollsFromTheFuture: poll times a state file holds after now (a
// clock stepped back, another machine's clock) hold the next poll an hour
// at most, not the gap plus an hour.
func TestSavedPollsFromTheFuture(t *testing.T) {
	tests := []struct {
		name  string
		ahead []time.Duration // the saved polls, from now
		want  time.Duration   // the ceiling's wait before the next poll
	}{
		{"four polls a day ahead", []time.Duration{24 * time.Hour, 24*time.Hour + time.Minute, 24*time.Hour + 2*time.Minute, 24*time.Hour + 3*time.Minute}, time.Hour},
		{"out of order, some ahead", []time.Duration{2 * time.Hour, -30 * time.Minute, time.Hour, -10 * time.Minute}, 30 * time.Minute},
		{"all past", []time.Duration{-50 * time.Minute, -40 * time.Minute, -30 * time.Minute, -20 * time.Minute}, 10 * time.Minute},
		{"fewer than the ceiling", []time.Duration{24 * time.Hour}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			var saved []time.Time
			for _, d := range tt.ahead {
				saved = append(saved, t0.Add(d))
			}
			q := newPoller(Polling{PerHour: 4}, clk, func() float64 { return 0 }).since(saved)
			if got := q.ceiling(0); got != tt.want {
				t.Fatalf("wait %v, want %v", got, tt.want)
			}
		})
	}
}
