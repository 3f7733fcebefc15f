package admission

import (
	"errors"
	"fmt"
	"time"
)

// The ways Admit refuses a call. Errors returned by Admit match them with
// errors.Is.
var (
	// ErrTooLarge: the call holds more tokens than the target's quota can
	// ever give at once, so it would be throttled however long it waited.
	ErrTooLarge = errors.New("admission: request can never fit the quota")
	// ErrWouldExceedDeadline: the call would not get quota in time: before
	// Options.MaxWait, or early enough before its context's deadline to be
	// answered by then (the target's replies take time, which the Governor
	// learns). Admit says so at once when its estimate of the wait already
	// crosses that bound, and otherwise when the bound comes while the call
	// waits.
	ErrWouldExceedDeadline = errors.New("admission: wait for quota would cross the deadline")
	// ErrOverloaded: calls ask the target for more than its limit, and an
	// Interactive call's estimated wait in its queue exceeds
	// Options.QueueTarget. Under overload, as many calls are served whether
	// the queue is short or long; a long one only makes every reply later.
	ErrOverloaded = errors.New("admission: target overloaded")
)

// Error is a refusal from Admit. It matches its Reason (ErrTooLarge,
// ErrWouldExceedDeadline or ErrOverloaded) with errors.Is, and, when the
// context's deadline ended the wait, context.DeadlineExceeded too.
type Error struct {
	Target Target
	Class  Class
	// Reason is ErrTooLarge, ErrWouldExceedDeadline or ErrOverloaded.
	Reason error
	// Tokens is what the call would hold: its input estimate plus its max tokens.
	Tokens int64
	// Input and MaxTokens are the two parts of Tokens.
	Input, MaxTokens int64
	// Capacity is the most tokens per minute the target can ever be given
	// (ErrTooLarge).
	Capacity int64
	// Wait is the estimated wait that would have crossed the deadline (or
	// exceeded QueueTarget); zero when the deadline came while the call was
	// waiting.
	Wait time.Duration
	// Offered is what the target's calls asked for over the last minute
	// ÷ its limit, or ÷ this process's Share of it, and QueueTarget the
	// wait an Interactive call may expect there (ErrOverloaded).
	Offered     float64
	QueueTarget time.Duration
	// Share is the part of the limit this process's calls were weighed
	// against (ErrOverloaded): 1 ÷ the processes sharing the target's
	// buckets (see Sharer), or 1 alone.
	Share float64
	// Reply is the time the target's replies take (the 95th percentile of
	// its recent attempts), which a call granted must still have before its
	// context's deadline; zero when another bound refused it. ReplyGuessed:
	// no reply had come back from the target yet, and Reply is half the
	// time the call had from the start of its wait to its deadline.
	Reply        time.Duration
	ReplyGuessed bool
	// Left is the time that was left before the deadline when Admit gave up.
	Left time.Duration
	// Waited is how long the call waited in the queue.
	Waited time.Duration
	// Ahead is the number of calls that were queued ahead of it.
	Ahead int
	// Err is the context's error when the context's deadline ended the wait.
	Err error
}

func (e *Error) Error() string {
	switch {
	case e.Reason == ErrTooLarge:
		return fmt.Sprintf("admission: %s: a request holding %d tokens (input %d + max tokens %d) can never fit %d tokens per minute; lower its max tokens or raise the quota",
			e.Target, e.Tokens, e.Input, e.MaxTokens, e.Capacity)
	case e.Reason == ErrOverloaded && e.Share > 0 && e.Share < 1:
		return fmt.Sprintf("admission: %s: overloaded: this process's calls asked for %.1fx its share (%.2g) of the quota over the last minute, and %d tokens would wait about %v (%d requests ahead), past the %v an interactive call may queue there; refused at once",
			e.Target, e.Offered, e.Share, e.Tokens, e.Wait.Round(time.Millisecond), e.Ahead, e.QueueTarget)
	case e.Reason == ErrOverloaded:
		return fmt.Sprintf("admission: %s: overloaded: calls asked for %.1fx its quota over the last minute, and %d tokens would wait about %v (%d requests ahead), past the %v an interactive call may queue there; refused at once",
			e.Target, e.Offered, e.Tokens, e.Wait.Round(time.Millisecond), e.Ahead, e.QueueTarget)
	case e.Reply > 0 && e.Err == nil && e.Wait > 0:
		return fmt.Sprintf("admission: %s: %d tokens would fit in about %v (%d requests ahead) and %s: past the deadline in %v",
			e.Target, e.Tokens, e.Wait.Round(time.Millisecond), e.Ahead, e.replyTime(), e.Left.Round(time.Millisecond))
	case e.Reply > 0 && e.Err == nil:
		return fmt.Sprintf("admission: %s: no quota at once for %d tokens (waited %v, %d requests ahead) and %s: past the deadline in %v",
			e.Target, e.Tokens, e.Waited.Round(time.Millisecond), e.Ahead, e.replyTime(), e.Left.Round(time.Millisecond))
	case e.Wait > 0:
		return fmt.Sprintf("admission: %s: %d tokens would fit in about %v (%d requests ahead), after the deadline in %v",
			e.Target, e.Tokens, e.Wait.Round(time.Millisecond), e.Ahead, e.Left.Round(time.Millisecond))
	}
	return fmt.Sprintf("admission: %s: no quota for %d tokens before the deadline (waited %v, %d requests ahead)",
		e.Target, e.Tokens, e.Waited.Round(time.Millisecond), e.Ahead)
}

// replyTime says what time the reply was given.
func (e *Error) replyTime() string {
	if e.ReplyGuessed {
		return fmt.Sprintf("no reply has come back from it yet, so half the call's time (%v) is kept for its reply", e.Reply.Round(time.Millisecond))
	}
	return fmt.Sprintf("replies take up to about %v", e.Reply.Round(time.Millisecond))
}

// Unwrap returns the Reason and, if set, the context's error.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Reason, e.Err}
	}
	return []error{e.Reason}
}
