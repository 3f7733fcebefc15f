package jobs

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/aws/smithy-go"

	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/clock"
)

// Polling defaults; docs/jobs.md gives the reasoning at length.
const (
	// DefaultFirstPoll: Bedrock takes minutes to validate a job, and a bad
	// job fails there; half a minute finds that out soon without waste.
	DefaultFirstPoll = 30 * time.Second
	// DefaultPollGrowth: each quiet poll waits 1.5 times longer, as the
	// issue's pattern asks: gentle enough to notice the end of a short job.
	DefaultPollGrowth = 1.5
	// DefaultMaxPoll: jobs run for hours; at this cap, full jitter makes the
	// mean wait 2.5 minutes (under 600 calls a day), and the end is seen
	// within five.
	DefaultMaxPoll = 5 * time.Minute
	// DefaultErrorGrowth: after a throttle or a server error the wait
	// triples, so polling gives the control plane room to recover.
	DefaultErrorGrowth = 3.0
	// DefaultPollsPerHour: a hard ceiling over all of that, below the
	// control plane's rate quota for GetModelInvocationJob by a wide margin.
	DefaultPollsPerHour = 60
	// DefaultMaxPollErrors: consecutive failed polls before Wait gives up
	// (the job runs on; running again resumes the wait).
	DefaultMaxPollErrors = 20
	// errorCapFactor: after errors the wait may grow to twice MaxInterval.
	errorCapFactor = 2
)

// Polling says how Wait polls GetModelInvocationJob: the first interval
// grows by Growth after each poll up to MaxInterval, every wait is drawn
// uniformly from [0, interval) (full jitter, so many runs do not poll in
// step), a failed poll multiplies the interval by ErrorGrowth instead (up to
// twice MaxInterval), and no more than PerHour polls start in any hour. The
// zero value means the defaults; each zero field takes its own.
type Polling struct {
	First       time.Duration
	Growth      float64
	MaxInterval time.Duration
	ErrorGrowth float64
	PerHour     int
	MaxErrors   int // consecutive failed polls before giving up
}

func (p Polling) withDefaults() Polling {
	if p.First <= 0 {
		p.First = DefaultFirstPoll
	}
	if p.Growth < 1 {
		p.Growth = DefaultPollGrowth
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = DefaultMaxPoll
	}
	if p.MaxInterval < p.First {
		p.MaxInterval = p.First
	}
	if p.ErrorGrowth < 1 {
		p.ErrorGrowth = DefaultErrorGrowth
	}
	if p.PerHour <= 0 {
		p.PerHour = DefaultPollsPerHour
	}
	if p.MaxErrors <= 0 {
		p.MaxErrors = DefaultMaxPollErrors
	}
	return p
}

// poller decides how long to wait before each poll. Not safe for concurrent use.
type poller struct {
	p        Polling
	clk      clock.Clock
	rand     func() float64 // in [0, 1)
	interval time.Duration
	recent   []time.Time // starts of the polls of the last hour
	errs     int         // consecutive failed polls
}

func newPoller(p Polling, clk clock.Clock, rand func() float64) *poller {
	return &poller{p: p.withDefaults(), clk: clk, rand: rand}
}

// next returns the wait before the next poll, given how the last one went,
// and counts a failure; it returns the error when too many failed in a row.
func (q *poller) next(pollErr error) (time.Duration, error) {
	if pollErr != nil {
		q.errs++
		if q.errs >= q.p.MaxErrors {
			return 0, pollErr
		}
	} else {
		q.errs = 0
	}
	switch {
	case q.interval == 0:
		q.interval = q.p.First
	case pollErr != nil:
		q.interval = min(time.Duration(float64(q.interval)*q.p.ErrorGrowth), errorCapFactor*q.p.MaxInterval)
	default:
		q.interval = min(time.Duration(float64(q.interval)*q.p.Growth), q.p.MaxInterval)
	}
	return q.ceiling(time.Duration(q.rand() * float64(q.interval))), nil
}

// ceiling returns d, or the longer wait the hourly ceiling asks for: until
// the oldest of the last PerHour polls is an hour old.
func (q *poller) ceiling(d time.Duration) time.Duration {
	now := q.clk.Now()
	at := now.Add(d)
	for len(q.recent) > 0 && !q.recent[0].After(at.Add(-time.Hour)) {
		q.recent = q.recent[1:]
	}
	if len(q.recent) >= q.p.PerHour {
		d = max(d, q.recent[len(q.recent)-q.p.PerHour].Add(time.Hour).Sub(now))
	}
	return d
}

// maxSavedPolls bounds the poll times a state file keeps: enough for any
// ceiling up to 10 polls a minute; a higher one is no ceiling that a
// restart loop (one poll per start) could break.
const maxSavedPolls = 600

// polled records that a poll started now.
func (q *poller) polled() {
	q.recent = append(q.recent, q.clk.Now())
	if n := min(q.p.PerHour, maxSavedPolls); len(q.recent) > n {
		q.recent = q.recent[len(q.recent)-n:] // only the last PerHour decide a wait
	}
}

// since seeds the poller with the polls of an earlier process (the state
// file's), so the hourly ceiling holds across restarts. Times after now (a
// clock stepped back, a state file from a machine whose clock ran ahead)
// count as now, so they hold a poll an hour at most; the times are sorted.
func (q *poller) since(polls []time.Time) *poller {
	now := q.clk.Now()
	q.recent = make([]time.Time, len(polls))
	for i, t := range polls {
		q.recent[i] = t
		if t.After(now) {
			q.recent[i] = now
		}
	}
	slices.SortFunc(q.recent, time.Time.Compare)
	return q
}

// sleep waits d on clk, or until ctx is done.
func sleep(ctx context.Context, clk clock.Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryable reports whether a failed control-plane call may succeed if
// made again: throttles, server errors, and calls that got no answer
// because of the network (what package classify calls retryable).
// Validation, access and not-found errors are final, and so are failures
// before any request was sent: no credentials, an expired SSO session, a
// signing or configuration error (sending again fails the same way).
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, errNoARN) {
		return true
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return classify.FromError(err).Entry.Retryable()
	}
	switch ae.ErrorCode() {
	case "ThrottlingException", "TooManyRequestsException", "ServiceUnavailableException", "InternalServerException",
		"ServiceQuotaExceededException", "RequestTimeout", "SlowDown", "InternalError":
		return true
	}
	return ae.ErrorFault() == smithy.FaultServer
}
