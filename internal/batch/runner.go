package batch

import (
	"cmp"
	"container/heap"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/lockfile"
)

// Doer runs one call through keel's engine; *keel.Keel and *engine.Engine
// are Doers.
type Doer interface {
	Do(ctx context.Context, call *engine.Call) (*http.Response, *engine.Report, error)
}

// Options configure a run. In, Out and Doer are required; the other fields'
// zero values are the defaults.
type Options struct {
	// In is the input JSONL file; Format forces its format (FormatAuto:
	// recognise each line).
	In     string
	Format Format
	// Input is In already read by ReadInput (with Format and Model); nil:
	// Run reads it.
	Input *Input
	// Out is the results JSONL file: one line per record, in the order
	// records finish.
	Out string
	// State is the checkpoint file; empty means Out + ".state". Running
	// again with the same state file resumes the run. While a run uses it,
	// it holds an exclusive lock on State + ".lock" and on Out + ".lock",
	// and another run on either is refused with ErrRunning, before it
	// changes any file.
	State string
	// Restart discards the state file's run, if any, and starts over: a new
	// run id, every record sent again, Out rewritten. It takes the lock
	// first, so it is refused while another run is under way.
	Restart bool
	// Model is the model for records that name none (every Bedrock-format record).
	Model string
	// Region is the region to call; empty means the engine's default.
	Region string
	// Tier is the service tier every record's call asks for (flex: cheaper,
	// served after the other tiers), in place of any its body names.
	// Empty: each record's own, else the engine's tier for Batch calls.
	Tier string
	// MaxTokens is the maxTokens of simple records that set none; zero
	// leaves it to the model (which makes Bedrock reserve the model's
	// maximum output against the quota: set it).
	MaxTokens int
	// Doer sends calls (keel's engine).
	Doer Doer
	// DLQ parks records that fail for good; nil: their failure is only
	// written to the results file.
	DLQ *dlq.Recorder
	// Limiter bounds the calls in flight. Nil: when the Doer has a quota
	// governor (it reports QuotaGoverned), NewPaced(0), which lets the
	// governor pace the run; else NewAIMD(AIMDOptions{}).
	Limiter Limiter
	// Clock measures and waits; nil is the wall clock.
	Clock clock.Clock
	// Progress shows the progress; nil shows nothing.
	Progress *Progress
	// MaxRequeues bounds how often a record whose failure is retryable
	// (throttling, 5xx, timeouts, broken connections) goes back into the
	// queue once the engine's retries are used up; past it the record fails
	// for good. Zero means 8, negative means never requeue. A record whose
	// call ended at an open circuit breaker is not requeued this way: it
	// waits, with the other records to its model, until the breaker lets a
	// call through, and that wait does not count (see maxCircuitWait).
	MaxRequeues int
	// RequeueBase and RequeueCap bound the wait before a requeued record is
	// sent again: for its n-th requeue, between half and all of
	// RequeueBase·2^(n-1), at most RequeueCap. Zero means 1 s and 10 s.
	RequeueBase, RequeueCap time.Duration
	// RecordTimeout bounds each record's call, retries included; zero: none.
	RecordTimeout time.Duration
	// Stop, when closed, stops starting records and gives up, at once, the
	// calls not on the wire: waiting for quota in the governor's queue, or
	// for a retry's backoff (engine.Call.Stop); their records stay pending
	// and run again on resume. Calls with an attempt on the wire finish, and
	// their results are checkpointed. Cancelling the context instead
	// abandons those too (they run again on resume).
	Stop <-chan struct{}
}

// Summary is what a run did.
type Summary struct {
	RunID     string
	Resumed   bool
	Total     int // records in the input
	Before    int // finished before this run started
	Succeeded int // in all, earlier runs included
	Failed    int // in all; each is in the results file and, with a DLQ, parked there
	Pending   int // not finished (the run was stopped)
	// Sent counts calls this run made (a requeued record counts again).
	Sent     int
	Requeued int
	// CircuitWaits counts the times a record's call ended at an open (or
	// busy half-open) circuit breaker and the record waited for it.
	CircuitWaits int
	// Cut is how many bytes of unfinished tail were cut off the results
	// file when resuming (lines written but not checkpointed before a crash).
	Cut          int64
	InputTokens  int64 // in all
	OutputTokens int64
	Elapsed      time.Duration // of this run
	FailedByCode map[string]int
}

// Run runs (or resumes) a batch. It returns an error when the run could
// not be carried out (bad input, a state file of another run, a disk
// error); records that fail are not errors, they are counted in the Summary.
//
// The checkpoint protocol, which makes a run exactly-once after a crash:
//
//  1. A record's result line is appended to the results file, and the file
//     is fsynced.
//  2. Then, in one SQLite transaction, the state file records the record as
//     finished (with the offsets of its line) and the new committed length
//     of the results file.
//  3. On resume, the results file is cut back to the committed length (a
//     tail written in step 1 whose step 2 never happened is removed) and
//     only records the state file does not hold are sent.
//
// So every record's line is in the results file exactly once, and a record
// whose result was checkpointed is never sent again. A record whose
// response arrived but was not yet checkpointed when the process died is
// sent again: that window is a few milliseconds per record and is bounded
// by the calls in flight. A failed record is parked in the dead-letter queue
// (keyed by run and record, so parking twice is harmless) before step 1.
// Results are written in batches (group commit): one fsync and one
// transaction for all the records that finished meanwhile.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if o.In == "" || o.Out == "" {
		return nil, errors.New("batch: an input file and a results file are required")
	}
	if o.Doer == nil {
		return nil, errors.New("batch: no Doer to send calls with")
	}
	if o.Tier != "" && !bedrock.ValidTier(o.Tier) {
		return nil, fmt.Errorf("batch: service tier %q is not one of %s", o.Tier, strings.Join(bedrock.Tiers(), ", "))
	}
	if o.State == "" {
		o.State = o.Out + ".state"
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Limiter == nil {
		l, err := defaultLimiter(o.Doer)
		if err != nil {
			return nil, err
		}
		o.Limiter = l
	}
	if o.MaxRequeues == 0 {
		o.MaxRequeues = 8
	}
	if o.RequeueBase <= 0 {
		o.RequeueBase = time.Second
	}
	if o.RequeueCap <= 0 {
		o.RequeueCap = 10 * time.Second
	}
	if same, _ := samePath(o.In, o.Out); same {
		return nil, fmt.Errorf("batch: the input and the results are the same file %s", o.In)
	}
	// Every lock is taken before anything is changed, so that a refused run
	// changes no file: the results file's first (a second run on it with a
	// new --state then does not even create that state's lock file), then
	// the state file's. Each lock file names its holder, with both files.
	outAbs, _ := filepath.Abs(o.Out)
	stateAbs, _ := filepath.Abs(o.State)
	what := "keel batch run --out " + outAbs + " --state " + stateAbs
	for _, path := range []string{o.Out + ".lock", o.State + ".lock"} {
		lock, err := lockfile.Acquire(path, what)
		if err != nil {
			if errors.Is(err, lockfile.ErrLocked) {
				return nil, fmt.Errorf("%w: %v; wait for it to end, or stop it (a run that died holds nothing)", ErrRunning, err)
			}
			return nil, fmt.Errorf("batch: %w", err)
		}
		defer lock.Release()
	}
	in := o.Input
	if in == nil {
		var err error
		if in, err = ReadInput(o.In, InputOptions{Format: o.Format, Model: o.Model}); err != nil {
			return nil, err
		}
	}
	if o.Restart {
		if err := removeState(o.State); err != nil {
			return nil, err
		}
	}
	_, err := os.Stat(o.State)
	fresh := errors.Is(err, os.ErrNotExist)
	st, err := OpenState(o.State)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	input, err := os.Open(o.In)
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	defer input.Close()
	r := &runner{o: o, in: in, input: input, st: st, sum: &Summary{Total: len(in.Records), FailedByCode: map[string]int{}}}
	if err := r.open(); err != nil {
		if fresh {
			// Refused (the results file is someone's): leave no state
			// file behind that would name a run that never began.
			st.Close()
			removeState(o.State)
		}
		return nil, err
	}
	defer r.rf.Close()
	return r.run(ctx)
}

// defaultLimiter is Paced when d's calls go through a quota governor, else
// AIMD.
func defaultLimiter(d Doer) (Limiter, error) {
	if g, ok := d.(interface{ QuotaGoverned() bool }); ok && g.QuotaGoverned() {
		return NewPaced(0)
	}
	return NewAIMD(AIMDOptions{})
}

func samePath(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}

type runner struct {
	o     Options
	in    *Input
	input *os.File // In, read again (ReadAt) as records are sent
	st    *State
	rf    *resultsFile
	meta  Meta
	sum   *Summary

	guard     *targetGuard
	kept      []Limit     // the limits the state file kept when the run began (see hintLimits)
	saved     []Limit     // the limits the last checkpoint wrote; touched by the committer only
	requeues  []int       // per record index; touched by the dispatcher only
	firstSent []time.Time // per record index; written by the dispatcher before the record's first send
	// circuitSince holds, per model, when its records began to wait for
	// an open breaker: the first refusal since the model's last success.
	cmu          sync.Mutex
	circuitSince map[string]time.Time
	sent         atomic.Int64
	requeued     atomic.Int64
	circuitWaits atomic.Int64
}

// open starts a new run or checks that the state file belongs to this one.
func (r *runner) open() error {
	m, ok, err := r.st.Meta()
	if err != nil {
		return err
	}
	outAbs, _ := filepath.Abs(r.o.Out)
	inAbs, _ := filepath.Abs(r.o.In)
	if !ok {
		if r.rf, err = createResults(r.o.Out, r.o.Restart); err != nil {
			return err
		}
		id := make([]byte, 8)
		crand.Read(id)
		m = Meta{RunID: hex.EncodeToString(id), Input: inAbs, InputHash: r.in.SHA256, InputSize: r.in.Size,
			Total: len(r.in.Records), Out: outAbs, Model: r.o.Model, CreatedAt: r.o.Clock.Now()}
		if err := r.st.Begin(m); err != nil {
			return err
		}
		r.meta = m
		r.sum.RunID = m.RunID
		return nil
	}
	switch {
	case m.InputHash != r.in.SHA256:
		return fmt.Errorf("%w: %s was made for input %s (sha256 %.12s…), but %s is different (sha256 %.12s…); use a new --out (or --state) for a new input, or --restart to start over",
			ErrStateMismatch, r.st.Path(), m.Input, m.InputHash, r.o.In, r.in.SHA256)
	case m.Out != outAbs:
		return fmt.Errorf("%w: %s writes its results to %s, not %s; pass the same --out to resume, or --restart to start over", ErrStateMismatch, r.st.Path(), m.Out, outAbs)
	case m.Model != r.o.Model:
		return fmt.Errorf("%w: %s was started with --model %q, not %q; resume with the same model, or --restart to start over", ErrStateMismatch, r.st.Path(), m.Model, r.o.Model)
	}
	committed, err := r.st.OutLen()
	if err != nil {
		return err
	}
	if r.rf, r.sum.Cut, err = reopenResults(r.o.Out, committed); err != nil {
		return err
	}
	r.meta = m
	r.sum.RunID, r.sum.Resumed = m.RunID, true
	return nil
}

// governor returns the Doer's quota governor; nil when it has none.
func (r *runner) governor() *admission.Governor {
	if g, ok := r.o.Doer.(interface{ Governor() *admission.Governor }); ok {
		return g.Governor()
	}
	return nil
}

// hintLimits gives the governor, as first guesses, the limits it learned
// before this run was stopped (see State.Limits): a resumed run then paces
// itself from the first call, rather than learning its quota again from a
// bucket the stopped run may have left spent. Limits the state file cannot
// give are not hinted: they only spare the run some learning (keel batch
// status says what is wrong with them).
func (r *runner) hintLimits() {
	g := r.governor()
	if g == nil {
		return
	}
	limits, err := r.st.Limits()
	if err != nil {
		return
	}
	r.kept = limits
	for _, l := range limits {
		g.Hint(admission.Target{Model: l.Model, Region: l.Region, Tier: l.Tier}, int(min(l.TokensPerMinute, math.MaxInt32)))
	}
}

// learnedLimits returns the limits the governor has learned so far, with
// those the state file kept for targets it has not called (or has
// forgotten) since, for the next checkpoint; nil when there are none, or
// when they are what the last checkpoint saved.
func (r *runner) learnedLimits() []Limit {
	g := r.governor()
	if g == nil {
		return nil
	}
	byTarget := map[admission.Target]Limit{}
	for _, l := range r.kept {
		byTarget[admission.Target{Model: l.Model, Region: l.Region, Tier: l.Tier}] = l
	}
	for _, s := range g.Snapshot() {
		if s.Source == admission.SourceLearned && s.Limit > 0 {
			byTarget[s.Target] = Limit{Model: s.Target.Model, Region: s.Target.Region, Tier: s.Target.Tier, TokensPerMinute: s.Limit}
		}
	}
	out := slices.Collect(maps.Values(byTarget))
	slices.SortFunc(out, func(a, b Limit) int {
		return cmp.Or(strings.Compare(a.Model, b.Model), strings.Compare(a.Region, b.Region), strings.Compare(a.Tier, b.Tier))
	})
	if len(out) == 0 || slices.Equal(out, r.saved) {
		return nil // nothing to write, or what the last checkpoint wrote
	}
	return out
}

// event is a record's end as the dispatcher sees it.
type event struct {
	idx     int
	requeue bool // put it back, after a wait
	// until, when not zero, is when the breaker that ended the record's
	// call may let a call through: the record, and the others to its
	// model, wait until then; its requeue allowance is not spent.
	until time.Time
}

// delayed is a requeued record waiting for its time.
type delayed struct {
	idx int
	at  time.Time
}

type delayHeap []delayed

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h delayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)        { *h = append(*h, x.(delayed)) }
func (h *delayHeap) Pop() any          { old := *h; x := old[len(old)-1]; *h = old[:len(old)-1]; return x }

// finishedRec is a record's final result on its way to the committer.
type finishedRec struct {
	f    Finished
	line []byte
	tok  int
	took time.Duration // from the record's first send
}

func (r *runner) run(ctx context.Context) (*Summary, error) {
	start := r.o.Clock.Now()
	done, err := r.st.FinishedIDs()
	if err != nil {
		return nil, err
	}
	var pending []int
	for i, rec := range r.in.Records {
		if !done[rec.ID] {
			pending = append(pending, i)
		}
	}
	r.sum.Before = len(done)
	before, err := r.st.Status(ctx)
	if err != nil {
		return nil, err
	}
	r.requeues = make([]int, len(r.in.Records))
	r.circuitSince = map[string]time.Time{}
	r.firstSent = make([]time.Time, len(r.in.Records))
	r.guard = newTargetGuard()
	r.hintLimits()
	r.o.Progress.begin(len(r.in.Records), len(done), before.FailedByCode)

	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	// dispatchCtx ends when the run does or Stop is closed.
	dispatchCtx, cancelDispatch := context.WithCancel(runCtx)
	defer cancelDispatch()
	if r.o.Stop != nil {
		go func() {
			select {
			case <-r.o.Stop:
				cancelDispatch()
			case <-dispatchCtx.Done():
			}
		}()
	}

	events := make(chan event)
	results := make(chan finishedRec, 256)
	var (
		fatalOnce sync.Once
		fatalErr  error
	)
	fatal := func(err error) {
		fatalOnce.Do(func() {
			fatalErr = err
			cancelRun(err)
		})
	}
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		r.commit(results, fatal)
	}()

	var wg sync.WaitGroup
	r.dispatch(dispatchCtx, runCtx, pending, events, results, &wg, fatal)
	// Workers still running send their events here; nobody requeues now.
	go func() {
		for range events {
		}
	}()
	wg.Wait()
	close(events)
	if fatalErr == nil && runCtx.Err() == nil {
		r.guard.flushAll() // records held for a target that never proved itself either way
	}
	close(results)
	<-committed
	r.o.Progress.end()

	final, err := r.st.Status(context.WithoutCancel(ctx))
	if err != nil && fatalErr == nil {
		fatalErr = err
	}
	if final != nil {
		r.sum.Succeeded, r.sum.Failed, r.sum.Pending = final.Succeeded, final.Failed, final.Pending
		r.sum.InputTokens, r.sum.OutputTokens, r.sum.FailedByCode = final.InputTokens, final.OutputTokens, final.FailedByCode
	}
	r.sum.Sent = int(r.sent.Load())
	r.sum.Requeued = int(r.requeued.Load())
	r.sum.CircuitWaits = int(r.circuitWaits.Load())
	r.sum.Elapsed = r.o.Clock.Now().Sub(start)
	if fatalErr != nil {
		return r.sum, fatalErr
	}
	if ctx.Err() != nil && r.sum.Pending > 0 {
		return r.sum, context.Cause(ctx)
	}
	if stops := r.guard.stopped(); len(stops) > 0 {
		return r.sum, r.stopError(stops)
	}
	return r.sum, nil
}

// stopError says which models were stopped, why, and what was left of their
// records.
func (r *runner) stopError(stops []stopInfo) error {
	done, err := r.st.FinishedIDs()
	if err != nil {
		return err
	}
	left := map[string]int{} // by model: records not finished
	for i, rec := range r.in.Records {
		if !done[rec.ID] {
			left[r.modelOf(i)]++
		}
	}
	var parts []string
	var codes []string
	stoppedLeft := 0
	for _, si := range stops {
		n := left[si.model]
		stoppedLeft += n
		parts = append(parts, fmt.Sprintf("%d records in a row failed with %s on %s: %q. Every record sent there would fail the same way, "+
			"so the run stopped sending to %s: %d records were not sent, and the %d that failed were neither parked nor written; all %d are left for the next run",
			stopAfter, si.code, si.target, si.message, si.model, max(n-si.dropped, 0), si.dropped, n))
		if !slices.Contains(codes, si.code) {
			codes = append(codes, si.code)
		}
	}
	msg := strings.Join(parts, ". ")
	if others := len(done); others > 0 && stoppedLeft < len(r.in.Records) {
		msg += fmt.Sprintf(". The records to other models went on: %d are finished", others)
		if o := len(r.in.Records) - len(done) - stoppedLeft; o > 0 {
			msg += fmt.Sprintf(", %d are pending", o)
		}
	}
	return fmt.Errorf("%w: %s. Fix the cause (keel explain %s), then run the same command again to resume (for a wrong model id: correct it, in --model or in the records, and start over with --restart)",
		ErrTargetFailing, msg, strings.Join(codes, ", keel explain "))
}

// dispatch starts records while the limiter allows, until every record is
// finished or dispatchCtx ends. Records to a model that may not take another
// call yet (unproven and at its cap) wait without holding back the records
// to other models; records to a stopped model are left pending.
func (r *runner) dispatch(dispatchCtx, runCtx context.Context, pending []int, events chan event, results chan<- finishedRec, wg *sync.WaitGroup, fatal func(error)) {
	var (
		waiting  delayHeap
		inflight int
		byModel  = map[string]int{} // calls in flight per model
		queue    = newQueue()
		stops    int // stopped models already taken out of the queue
		// closedAt holds, per model, when its breaker may let a call
		// through again: its records are not sent before.
		closedAt = map[string]time.Time{}
	)
	for _, idx := range pending {
		queue.push(r.modelOf(idx), idx)
	}
	handle := func(ev event) {
		inflight--
		m := r.modelOf(ev.idx)
		byModel[m]--
		if !ev.until.IsZero() {
			if ev.until.After(closedAt[m]) {
				closedAt[m] = ev.until
			}
			queue.push(m, ev.idx)
			return
		}
		if !ev.requeue {
			return
		}
		r.requeues[ev.idx]++
		n := r.requeues[ev.idx]
		d := r.o.RequeueBase << (n - 1)
		if d > r.o.RequeueCap || d <= 0 {
			d = r.o.RequeueCap
		}
		// Equal jitter: records throttled together do not come back together.
		d = d/2 + rand.N(d/2+1)
		heap.Push(&waiting, delayed{idx: ev.idx, at: r.o.Clock.Now().Add(d)})
	}
	// wait blocks until a record ends, a requeued one is due, a model's
	// breaker may let calls through, or the run ends.
	wait := func(now time.Time) {
		var next time.Time
		if waiting.Len() > 0 {
			next = waiting[0].at
		}
		for m, at := range closedAt {
			if !at.After(now) {
				delete(closedAt, m)
			} else if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		var timer clock.Timer
		var due <-chan time.Time
		if !next.IsZero() {
			timer = r.o.Clock.NewTimer(next.Sub(now))
			due = timer.C()
		}
		select {
		case ev := <-events:
			handle(ev)
		case <-due:
		case <-dispatchCtx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
	}
	may := func(m string) bool {
		if at, ok := closedAt[m]; ok && r.o.Clock.Now().Before(at) {
			return false
		}
		return r.guard.mayStart(m, byModel[m])
	}
	for {
		// Take in what has ended, and what is due, without blocking.
		for drained := false; !drained; {
			select {
			case ev := <-events:
				handle(ev)
			default:
				drained = true
			}
		}
		// A model stopped: its records are left pending, waiting or not.
		if st := r.guard.stopped(); len(st) > stops {
			for _, si := range st[stops:] {
				queue.drop(si.model)
				kept := waiting[:0]
				for _, w := range waiting {
					if r.modelOf(w.idx) != si.model {
						kept = append(kept, w)
					}
				}
				waiting = kept
				heap.Init(&waiting)
			}
			stops = len(st)
		}
		now := r.o.Clock.Now()
		for waiting.Len() > 0 && !waiting[0].at.After(now) {
			idx := heap.Pop(&waiting).(delayed).idx
			queue.push(r.modelOf(idx), idx)
		}
		if dispatchCtx.Err() != nil || r.stopping() {
			return
		}
		if queue.len() == 0 && inflight == 0 && waiting.Len() == 0 {
			return // all finished, or left to a stopped model
		}
		if queue.len() == 0 || !queue.canPop(may) {
			wait(now)
			continue
		}
		var (
			admitted func()
			release  func(Outcome)
			err      error
		)
		if al, ok := r.o.Limiter.(AdmitLimiter); ok {
			admitted, release, err = al.AcquireAdmit(dispatchCtx)
		} else {
			release, err = r.o.Limiter.Acquire(dispatchCtx)
		}
		if err != nil {
			return // stopped or cancelled
		}
		// While the slot was being acquired, a record may have ended and a
		// model been stopped: take the record that may go now, if any.
		idx, ok := queue.pop(may)
		if r.stopping() || !ok {
			// Stop came, or nothing may go: give the slot back.
			if admitted != nil {
				admitted()
			}
			release(Outcome{Dropped: true})
			if r.stopping() {
				return
			}
			continue
		}
		inflight++
		byModel[r.modelOf(idx)]++
		if r.firstSent[idx].IsZero() {
			r.firstSent[idx] = r.o.Clock.Now()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			requeue, until := r.work(runCtx, idx, admitted, release, results, fatal)
			events <- event{idx: idx, requeue: requeue, until: until}
		}()
	}
}

// modelOf is the model record idx is sent to.
func (r *runner) modelOf(idx int) string {
	if m := r.in.Records[idx].Model; m != "" {
		return m
	}
	return r.o.Model
}

// stopping reports whether Stop is closed. dispatchCtx ends then too, but
// from another goroutine, a moment later: without this check, a dispatcher
// whose calls end at once could start every remaining record first
// (TestRunStopAndResume failed about once in 40 runs under -race).
func (r *runner) stopping() bool {
	select {
	case <-r.o.Stop:
		return true
	default:
		return false
	}
}

// work sends one record and hands its result to the committer; it reports
// whether the record should go back into the queue instead, and, when its
// call ended at an open circuit breaker, until when it should wait (see
// circuitWait). admitted, when not nil, is told when the quota governor has
// admitted the record's first attempt.
func (r *runner) work(ctx context.Context, idx int, admitted func(), release func(Outcome), results chan<- finishedRec, fatal func(error)) (requeue bool, until time.Time) {
	rec := r.in.Records[idx]
	released := false
	defer func() {
		if !released {
			release(Outcome{Dropped: true})
		}
	}()
	req, err := r.request(rec)
	if err != nil {
		fatal(err)
		return false, time.Time{}
	}
	// Batch priority: the governor serves interactive calls to the same
	// target first, without starving the run.
	// Stop gives the call up at the first interrupt unless an attempt is on
	// the wire: waiting for quota or to retry is not finishing.
	call := &engine.Call{Op: req.op, Model: req.model, Region: r.o.Region, Body: req.body, Priority: engine.Batch, Tier: r.o.Tier, OnAdmit: admitted,
		Stop: r.o.Stop, Header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}}
	callCtx := ctx
	if r.o.RecordTimeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, r.o.RecordTimeout)
		defer cancel()
	}
	start := r.o.Clock.Now()
	r.sent.Add(1)
	resp, rep, callErr := r.o.Doer.Do(callCtx, call)
	var body []byte
	if callErr == nil {
		body, callErr = io.ReadAll(resp.Body)
		resp.Body.Close()
		if callErr == nil && !json.Valid(body) {
			callErr = fmt.Errorf("batch: the response body is not JSON (%d bytes)", len(body))
		}
	} else if resp != nil {
		resp.Body.Close()
	}
	out := Outcome{Start: start, Latency: r.o.Clock.Now().Sub(start), Throttled: throttled(rep)}
	if callErr != nil && (ctx.Err() != nil || errors.Is(callErr, engine.ErrStopped)) {
		// The run was cancelled, or stopped before the call's next attempt
		// was sent: this record failed because of it, says nothing, and
		// runs again on resume.
		return false, time.Time{}
	}
	if callErr != nil {
		if until, ok := r.circuitWait(callErr, rep, req.model); ok {
			// Not a try of the record: the limiter hears nothing of it.
			r.circuitWaits.Add(1)
			return false, until
		}
	}
	released = true
	release(out)

	line := &resultLine{Attempts: attempts(rep)}
	line.setID(rec)
	f := Finished{ID: rec.ID, Line: rec.Line, Attempts: line.Attempts, At: r.o.Clock.Now()}
	if callErr == nil {
		rp, perr := ParseReply(req.op, resp.Header, body)
		if perr != nil {
			callErr = fmt.Errorf("batch: %w", perr)
		} else {
			f.OK = true
			r.cmu.Lock()
			delete(r.circuitSince, req.model) // it serves calls again
			r.cmu.Unlock()
			f.InputTokens, f.OutputTokens = rp.Usage.InputTokens, rp.Usage.OutputTokens
			line.Reply, line.StopReason, line.Usage = &rp.Text, rp.StopReason, &rp.Usage
			if rec.Format == FormatBedrock {
				line.ModelOutput = body
			}
			if rep != nil && rep.Target.Model != "" {
				line.Target = rep.Target.String()
			}
		}
	}
	var entry *catalog.Entry
	if callErr != nil {
		entry = entryOf(callErr)
		if r.requeueable(entry, idx) {
			r.requeued.Add(1)
			r.o.Progress.requeue()
			return true, time.Time{}
		}
	}
	// finish parks a failure and hands the result to the committer.
	finish := func() {
		if callErr != nil {
			le := &lineError{Code: entry.Code, Message: callErr.Error()}
			var ee *engine.Error
			if errors.As(callErr, &ee) {
				le.Status = ee.Status
			}
			if r.o.DLQ != nil {
				e, err := r.o.DLQ.Record(ctx, call, callErr, "batch:"+r.meta.RunID+":"+rec.ID)
				if err != nil {
					fatal(fmt.Errorf("batch: parking record %s (line %d) in the dead-letter queue: %w", rec.ID, rec.Line, err))
					return
				}
				if e != nil {
					le.DLQID = e.ID
					f.DLQID = e.ID
				}
			}
			line.Error = le
			f.Code = entry.Code
		}
		b, err := encodeLine(line)
		if err != nil {
			fatal(fmt.Errorf("batch: encoding the result of record %s: %w", rec.ID, err))
			return
		}
		results <- finishedRec{f: f, line: b, tok: f.InputTokens + f.OutputTokens, took: r.o.Clock.Now().Sub(r.firstSent[idx])}
	}
	if callErr != nil {
		if msg := serviceMessage(callErr); targetFault(entry, msg) {
			// Held until the model shows it works; enough of these in a
			// row and the run stops with the records left pending.
			target := req.model
			if rep != nil && rep.Target.Model != "" {
				target = rep.Target.String()
			}
			r.guard.fault(req.model, target, entry.Code, msg, finish)
			return false, time.Time{}
		}
	}
	r.guard.works(req.model)
	finish()
	return false, time.Time{}
}

// serviceMessage is the service's message in a failure, or the error's text.
func serviceMessage(err error) string {
	var ee *engine.Error
	if errors.As(err, &ee) && ee.Message != "" {
		return ee.Message
	}
	return err.Error()
}

// A record whose call ended at an open circuit breaker waits for it rather
// than being requeued: sending it again at once would be refused again (in
// a throttle storm, thousands of refusals used up records' requeue
// allowance while the breaker was open, and records failed for good).
const (
	// circuitProbeWait is how long a record waits when the breaker's probe
	// time is not known or has passed (half-open with every probe slot
	// taken): a slot frees when a probe's attempt ends, within seconds.
	circuitProbeWait = time.Second
	// maxCircuitWait bounds the time a model's records wait for breakers
	// without spending their requeue allowance, from the first refusal
	// since one of them last succeeded: a target that has served nothing
	// for this long (20 cool-downs at the default 30 s) is down, not
	// throttled, and its records then requeue and fail like any others, so
	// the run ends.
	maxCircuitWait = 10 * time.Minute
)

// circuitWait reports whether a call to model ended because a circuit
// breaker refused it, and until when the record should wait: the breaker's
// probe time when the error carries it (an *breaker.OpenError, for the
// first target refused on the route), else circuitProbeWait from now. A
// call whose last attempt was refused after an earlier failure (the
// breaker opened between its retries) ends with that failure, and only its
// report shows the refusal; the dispatcher holds such a record as long as
// its model's breaker is known to be open. No wait ends more than
// maxCircuitWait after the model's first refusal since its last success;
// past that, it reports false.
func (r *runner) circuitWait(err error, rep *engine.Report, model string) (time.Time, bool) {
	var oe *breaker.OpenError
	isOpen := errors.As(err, &oe)
	if !isOpen && (rep == nil || len(rep.Attempts) == 0 || rep.Attempts[len(rep.Attempts)-1].Code != catalog.CodeCircuitOpen) {
		return time.Time{}, false
	}
	now := r.o.Clock.Now()
	r.cmu.Lock()
	since, ok := r.circuitSince[model]
	if !ok {
		since = now
		r.circuitSince[model] = now
	}
	r.cmu.Unlock()
	left := maxCircuitWait - now.Sub(since)
	if left <= 0 {
		return time.Time{}, false
	}
	until := now.Add(circuitProbeWait)
	if isOpen && !oe.HalfOpen && oe.ProbeAt.After(now) {
		until = oe.ProbeAt
	}
	return minTime(until, now.Add(left)), true
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// requeueable says whether a failure means "try later" rather than "this
// record fails": a retryable failure (throttling, 5xx, timeouts, broken
// connections) once the engine's retries are used up, every target's
// breaker open, or no quota before the record's deadline. A batch has time;
// a live call does not.
func (r *runner) requeueable(e *catalog.Entry, idx int) bool {
	if r.o.MaxRequeues < 0 || r.requeues[idx] >= r.o.MaxRequeues {
		return false
	}
	return e.Retryable() || e.Code == catalog.CodeCircuitOpen || e.Code == catalog.CodeNoQuotaBeforeDeadline
}

func entryOf(err error) *catalog.Entry {
	var ee *engine.Error
	if errors.As(err, &ee) && ee.Entry != nil {
		return ee.Entry
	}
	if e := classify.FromError(err).Entry; e != nil {
		return e
	}
	return catalog.Must(catalog.CodeUnclassified)
}

func throttled(rep *engine.Report) bool {
	if rep == nil {
		return false
	}
	for _, a := range rep.Attempts {
		if a.Code == catalog.CodeThrottling {
			return true
		}
	}
	return false
}

func attempts(rep *engine.Report) int {
	if rep == nil {
		return 0
	}
	return rep.Sent()
}

// request reads a record's line back from the input file and builds its call.
func (r *runner) request(rec Record) (request, error) {
	b := make([]byte, rec.Length)
	if _, err := r.input.ReadAt(b, rec.Offset); err != nil {
		return request{}, fmt.Errorf("batch: reading line %d of %s: %w", rec.Line, r.o.In, err)
	}
	return buildRequest(b, rec, r.o.Model, r.o.MaxTokens)
}

// commit writes finished records to the results file and checkpoints them,
// as many at a time as have finished (group commit).
func (r *runner) commit(results <-chan finishedRec, fatal func(error)) {
	var broken bool
	for first := range results {
		if broken {
			continue // drain, so workers never block
		}
		batch := []finishedRec{first}
	more:
		for len(batch) < 512 {
			select {
			case x, ok := <-results:
				if !ok {
					break more
				}
				batch = append(batch, x)
			default:
				break more
			}
		}
		var buf []byte
		recs := make([]Finished, len(batch))
		off := r.rf.size
		for i, x := range batch {
			recs[i] = x.f
			recs[i].OutStart = off + int64(len(buf))
			buf = append(buf, x.line...)
			recs[i].OutEnd = off + int64(len(buf))
		}
		size, err := r.rf.append(buf)
		limits := r.learnedLimits()
		if err == nil {
			err = r.st.Commit(recs, size, limits)
		}
		if err == nil && limits != nil {
			r.saved = limits
		}
		if err != nil {
			broken = true
			fatal(err)
			continue
		}
		for _, x := range batch {
			r.o.Progress.finished(x.f.OK, x.f.Code, x.tok, x.took)
		}
	}
}
