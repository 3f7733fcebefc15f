package dlq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/lockfile"
)

// Sender sends a call through keel's engine: an *engine.Engine is one
// (keelx.Engine returns that of a *keel.Keel). A redrive calls it for one entry at a
// time.
type Sender interface {
	Do(ctx context.Context, call *engine.Call) (*http.Response, *engine.Report, error)
}

// RedriveOptions configure a redrive. Save is required; every other field's
// zero value is the default.
type RedriveOptions struct {
	// Filter selects the entries to consider, lowest ID first; its Limit
	// caps how many.
	Filter Filter
	// Force also sends entries whose NotBefore time has not come. Redacted
	// entries are never sent, forced or not.
	Force bool
	// Region, when set, sends every call to this region instead of the
	// entry's own.
	Region string
	// Lock is the path of a lock file (package lockfile) that keeps
	// redrives of one store apart: two at once would list the same entries
	// and send each twice. Empty: no lock, for a store only this process
	// uses (Memory). keel dlq redrive uses the database's path plus
	// ".redrive.lock".
	Lock string
	// LockOwner names the holder in the lock file, so that a redrive
	// refused by this one can say who holds the lock; empty: "dlq redrive".
	LockOwner string
	// Save writes the reply of an entry that succeeded somewhere durable.
	// The entry is removed only once Save has returned nil, so a crash in
	// between sends it again rather than losing its reply; an error from
	// Save ends the redrive and keeps the entry.
	Save func(Result) error
	// Done, when set, is told the outcome of each entry sent, once the
	// entry has been removed (success) or updated (failure).
	Done func(Result)
	// Stop, when closed, ends the redrive before its next entry; the call
	// in flight finishes. Cancelling the context instead abandons the call
	// in flight and leaves its entry as it was.
	Stop <-chan struct{}
	// Clock decides which entries are due and stamps new failures; nil is
	// the wall clock.
	Clock clock.Clock
}

// Result is the outcome of sending one entry again.
type Result struct {
	// Entry is the entry sent; after a failure, as updated in the store
	// (error fields, attempts appended, Redrives counted).
	Entry *Entry
	// Op is the operation sent: a streaming call's non-streaming twin,
	// which takes the same body (see RedriveOp).
	Op attempt.Op
	// Header and Body are the reply's, when the call succeeded.
	Header http.Header
	Body   []byte
	// Report is the engine's account of the call, when it gave one.
	Report *engine.Report
	// Err is why the call failed again; nil when it succeeded.
	Err error
}

// Summary counts what a redrive did with the entries its filter selected.
type Summary struct {
	Selected  int // entries the filter selected
	NotDue    int // left alone: their NotBefore time had not come (never with Force)
	Redacted  int // left alone: a redacted body cannot be sent
	Succeeded int // sent; reply saved, entry removed
	Failed    int // sent and failed again; entry kept, its history extended
	NotTried  int // to send, but not sent or abandoned: the redrive was stopped, cancelled or ended by an error
}

// Skip is a selected entry a redrive leaves alone, and why.
type Skip struct {
	Entry *Entry
	// Redacted is true when the entry's body was redacted when parked;
	// otherwise its NotBefore time has not come.
	Redacted bool
}

// A Plan is a redrive ready to run: its lock held, its entries chosen.
// PlanRedrive makes one; Run sends its entries, once; Close releases its
// lock. Most callers want Redrive, which does all three; a caller that
// should prepare only when there is something to send (start a target,
// open an output file) makes a Plan and looks at Send first. A Plan is not
// safe for concurrent use.
type Plan struct {
	// Send holds the entries Run sends, lowest ID first.
	Send []*Entry
	// Skipped holds the selected entries Run leaves alone, lowest ID first.
	Skipped []Skip

	sum    Summary // what planning found
	store  Store
	opts   RedriveOptions
	clk    clock.Clock
	lock   *lockfile.Lock
	ran    bool
	closed bool // Close was called: Run refuses
}

// Redrive sends the entries of s that o selects again through sender (see
// PlanRedrive and Plan.Run): a reply that comes back is saved with o.Save
// and its entry removed; a call that fails again has its entry updated,
// with the new failure and attempts. It returns what it did; the error is
// the first that stopped it (a lock held by another redrive, a store
// error, a *RedriveError).
func Redrive(ctx context.Context, s Store, sender Sender, o RedriveOptions) (Summary, error) {
	p, err := PlanRedrive(ctx, s, o)
	if err != nil {
		return Summary{}, err
	}
	defer p.Close()
	return p.Run(ctx, sender)
}

// PlanRedrive takes the redrive lock (o.Lock), lists the entries o.Filter
// selects, and sorts them into those to send and those to skip: redacted
// ones, and unless o.Force those whose NotBefore time has not come. When
// another redrive holds the lock it returns at once with an error matching
// lockfile.ErrLocked, which names the holder; a store's error comes back as
// the store gave it. The caller must Close the Plan.
func PlanRedrive(ctx context.Context, s Store, o RedriveOptions) (*Plan, error) {
	if o.Save == nil {
		return nil, errors.New("dlq: a redrive needs RedriveOptions.Save, or its replies would be lost")
	}
	p := &Plan{store: s, opts: o, clk: o.Clock}
	if p.clk == nil {
		p.clk = clock.Real{}
	}
	if o.Lock != "" {
		owner := o.LockOwner
		if owner == "" {
			owner = "dlq redrive"
		}
		lock, err := lockfile.Acquire(o.Lock, owner)
		if err != nil {
			return nil, err
		}
		p.lock = lock
	}
	all, err := s.List(ctx, o.Filter)
	if err != nil {
		p.Close()
		return nil, err
	}
	now := p.clk.Now()
	p.sum.Selected = len(all)
	for _, e := range all {
		switch {
		case e.Redacted:
			p.sum.Redacted++
			p.Skipped = append(p.Skipped, Skip{Entry: e, Redacted: true})
		case !o.Force && !e.Due(now):
			p.sum.NotDue++
			p.Skipped = append(p.Skipped, Skip{Entry: e})
		default:
			p.Send = append(p.Send, e)
		}
	}
	return p, nil
}

// Summary returns what planning found: how many entries were selected, not
// due and redacted. Nothing has been sent yet.
func (p *Plan) Summary() Summary { return p.sum }

// Close releases the plan's lock. It may be called more than once.
func (p *Plan) Close() error {
	p.closed = true
	if p.lock == nil {
		return nil
	}
	err := p.lock.Release()
	p.lock = nil
	return err
}

// Run sends p.Send, one entry at a time, through sender, as Redrive says,
// until they are done, Stop is closed, ctx is cancelled, or a reply cannot
// be saved or the store not changed (a *RedriveError, after which nothing
// more is sent). Store changes are made even when ctx has ended: an entry
// that was answered is removed, one that failed is updated. Run runs once;
// a second call returns an error.
func (p *Plan) Run(ctx context.Context, sender Sender) (sum Summary, err error) {
	if p.ran {
		return p.sum, errors.New("dlq: Plan.Run called twice; make a new Plan")
	}
	if p.closed {
		return p.sum, errors.New("dlq: Plan.Run after Close: the queue lock is released; make a new Plan")
	}
	p.ran = true
	sum = p.sum
	defer func() { sum.NotTried = len(p.Send) - sum.Succeeded - sum.Failed }()
	for _, e := range p.Send {
		if isClosed(p.opts.Stop) || ctx.Err() != nil {
			break
		}
		r := p.send(ctx, sender, e)
		if r.Err != nil && ctx.Err() != nil {
			break // abandoned: the entry stays as it was
		}
		if r.Err == nil {
			// The reply is saved before the entry goes: a crash in between
			// redrives it again rather than losing it.
			if err := p.opts.Save(r); err != nil {
				return sum, &RedriveError{ID: e.ID, Step: StepSave, Err: err}
			}
			if err := p.store.Delete(context.WithoutCancel(ctx), e.ID); err != nil {
				return sum, &RedriveError{ID: e.ID, Step: StepRemove, Err: err}
			}
			sum.Succeeded++
		} else {
			e.Redrives++
			e.Fail(r.Err, p.clk.Now(), e.Redrives)
			if err := p.store.Update(context.WithoutCancel(ctx), e); err != nil {
				return sum, &RedriveError{ID: e.ID, Step: StepUpdate, Err: err}
			}
			sum.Failed++
		}
		if p.opts.Done != nil {
			p.opts.Done(r)
		}
	}
	return sum, nil
}

// send sends e once and reads its reply.
func (p *Plan) send(ctx context.Context, sender Sender, e *Entry) Result {
	op := RedriveOp(e.Op)
	region := e.Region
	if p.opts.Region != "" {
		region = p.opts.Region
	}
	call := &engine.Call{Op: op, Model: e.Model, Region: region, Body: e.Body,
		Header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}}
	resp, rep, err := sender.Do(ctx, call)
	r := Result{Entry: e, Op: op, Report: rep}
	if err == nil {
		r.Header = resp.Header
		r.Body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	} else if resp != nil {
		resp.Body.Close()
	}
	r.Err = err
	return r
}

// RedriveOp is the operation a parked call is sent again with: a streaming
// call as its non-streaming twin, which takes the same body; any other as
// itself.
func RedriveOp(op string) attempt.Op {
	switch attempt.Op(op) {
	case attempt.ConverseStream:
		return attempt.Converse
	case attempt.InvokeWithResponseStream:
		return attempt.Invoke
	}
	return attempt.Op(op)
}

func isClosed(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// RedriveStep says which step of a redrive failed.
type RedriveStep int

const (
	// StepSave: Save failed for an entry whose call succeeded; the entry is kept.
	StepSave RedriveStep = iota + 1
	// StepRemove: the call succeeded and its reply was saved, but the store
	// could not remove the entry; a later redrive sends it again.
	StepRemove
	// StepUpdate: the call failed again, and the store could not record
	// the new failure; the entry keeps its former history.
	StepUpdate
)

// RedriveError is a failure that ended a redrive at one entry: its reply
// could not be saved, or the store could not remove or update it.
type RedriveError struct {
	ID   int64 // the entry's
	Step RedriveStep
	Err  error
}

func (e *RedriveError) Error() string {
	switch e.Step {
	case StepSave:
		return fmt.Sprintf("dlq: saving the reply of entry %d: %v (entry kept)", e.ID, e.Err)
	case StepRemove:
		return fmt.Sprintf("dlq: entry %d succeeded but could not be removed: %v", e.ID, e.Err)
	}
	return fmt.Sprintf("dlq: entry %d failed again and its history could not be saved: %v", e.ID, e.Err)
}

func (e *RedriveError) Unwrap() error { return e.Err }
