package status

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
)

// Event is one request the gateway answered. It carries no prompt or reply
// text.
type Event struct {
	// Caller is the configured caller's name; empty on a gateway that runs
	// open (no callers), counted as Anonymous.
	Caller string
	// Op is the operation ("converse", "converse-stream", "invoke",
	// "invoke-with-response-stream", "count-tokens"); another is counted as
	// OtherLabel.
	Op string
	// Model is the model id as the request named it.
	Model string
	// Status is the HTTP status the caller got; for a stream that failed
	// after its start, the status of the exception it ended with.
	Status int
	// Code is the catalog code of the failure; empty on success. A code
	// the catalog does not know is counted as OtherLabel.
	Code string
	// Attempts counts the attempts sent upstream.
	Attempts int
	// Duration is the request's time in the gateway, to its last byte.
	Duration time.Duration
	// InputTokens and OutputTokens are the call's usage (negative counts
	// are taken as zero).
	InputTokens, OutputTokens int
	// Refused reports that keel refused the call itself, without an
	// upstream answer to pass on: no quota before the deadline, breaker
	// open, retry budget spent, target overloaded. Code says which.
	Refused bool
}

// failed reports whether the caller got a failure.
func (ev *Event) failed() bool { return ev.Code != "" || ev.Status >= 400 || ev.Refused }

// Labels the Recorder uses for values it does not keep as they are.
const (
	// Anonymous is the caller name of Events with none.
	Anonymous = "anonymous"
	// OtherLabel stands for an operation, status or code outside the known
	// set, and for the callers past Options.MaxCallers: metric labels stay
	// few whatever the Events say.
	OtherLabel = "other"
)

// DefaultMaxCallers is Options.MaxCallers's default: far more callers than
// a gateway's configuration lists, few enough that a bug passing request
// data as caller names cannot flood the metrics.
const DefaultMaxCallers = 1000

// recentErrors is how many of a caller's latest failures are kept: what one
// screen of the status page shows.
const recentErrors = 10

// maxModelLen bounds a model id kept with a failure: longer than any Bedrock
// model id, inference profile id or ARN (at most 2048 characters would be
// allowed by the API, but real ones are under 200).
const maxModelLen = 256

// Options configure a Recorder. The zero value means all defaults.
type Options struct {
	// Registerer gets the per-caller metrics. Nil: none are registered
	// (the Recorder still keeps its figures for the status page).
	Registerer prometheus.Registerer
	// Clock stamps the failures kept. Nil: the wall clock.
	Clock clock.Clock
	// MaxCallers bounds the callers kept apart; Events of callers beyond it
	// are counted under OtherLabel. Zero: DefaultMaxCallers.
	MaxCallers int
}

// Recorder keeps per-caller figures from the gateway's Events. It is safe
// for concurrent use; Observe is the per-request method. Make one with
// NewRecorder.
type Recorder struct {
	clk        clock.Clock
	maxCallers int

	requests *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	refusals *prometheus.CounterVec

	mu      sync.RWMutex
	callers map[string]*caller
}

// caller is one caller's figures.
type caller struct {
	tokensIn, tokensOut prometheus.Counter
	// requestCounters holds the caller's keel_gateway_requests_total
	// series found so far, so that a request costs a map lookup rather than
	// the CounterVec's hashing of three labels. Under mu.
	requestCounters map[requestKey]prometheus.Counter

	mu                  sync.Mutex
	requests, failures  int64
	refused             int64
	inTokens, outTokens int64
	seconds             float64          // summed durations; a float does not overflow
	refusals            map[string]int64 // by code
	recent              [recentErrors]RecentError
	nRecent             int // failures ever put in recent
	lastSeen            time.Time
}

// NewRecorder returns a Recorder whose metrics are registered with
// o.Registerer; it fails when they cannot be (another Recorder registered
// them there already) or an option is out of range.
func NewRecorder(o Options) (*Recorder, error) {
	if o.MaxCallers < 0 {
		return nil, fmt.Errorf("status: MaxCallers must not be negative, got %d", o.MaxCallers)
	}
	r := &Recorder{
		clk:        cmp.Or[clock.Clock](o.Clock, clock.Real{}),
		maxCallers: cmp.Or(o.MaxCallers, DefaultMaxCallers),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_gateway_requests_total", Help: "Requests the gateway answered, by caller, operation and the HTTP status the caller got.",
		}, []string{"caller", "operation", "status"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_gateway_tokens_total", Help: "Tokens the gateway's callers used, by caller and direction (input, output).",
		}, []string{"caller", "direction"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keel_gateway_refusals_total", Help: "Requests keel refused itself (no quota before the deadline, breaker open, retry budget spent, overloaded), by caller and catalog code.",
		}, []string{"caller", "code"}),
		callers: make(map[string]*caller),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{r.requests, r.tokens, r.refusals} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("status: register the gateway metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Observe counts one request. It is cheap (a map lookup under a read lock,
// one short per-caller lock, three or four metric updates; no allocation
// once the caller, operation and status have been seen) and keeps nothing
// of ev but a failure's fields, its model id cut at 256 bytes.
func (r *Recorder) Observe(ev Event) {
	name := cmp.Or(ev.Caller, Anonymous)
	c := r.caller(name)
	if c == nil {
		name = OtherLabel
		c = r.caller(name)
	}
	code := codeLabel(ev.Code, ev.Refused)
	in, out := max(ev.InputTokens, 0), max(ev.OutputTokens, 0)
	failed := ev.failed()
	op := opLabel(ev.Op)
	now := r.clk.Now()

	c.mu.Lock()
	requests := c.requestCounter(r, name, op, ev.Status)
	c.requests++
	c.inTokens += int64(in)
	c.outTokens += int64(out)
	c.seconds += max(ev.Duration, 0).Seconds()
	c.lastSeen = now
	if failed {
		c.failures++
		c.recent[c.nRecent%recentErrors] = RecentError{Time: now, Op: op, Model: truncate(ev.Model, maxModelLen),
			Status: ev.Status, Code: code, Attempts: ev.Attempts, Refused: ev.Refused}
		c.nRecent++
	}
	if ev.Refused {
		c.refused++
		c.refusals[code]++
	}
	c.mu.Unlock()

	requests.Inc()
	if in > 0 {
		c.tokensIn.Add(float64(in))
	}
	if out > 0 {
		c.tokensOut.Add(float64(out))
	}
	if ev.Refused {
		r.refusals.WithLabelValues(name, code).Inc()
	}
}

// caller returns name's figures, made on first use; nil when the Recorder
// keeps MaxCallers callers already (OtherLabel is always made).
func (r *Recorder) caller(name string) *caller {
	r.mu.RLock()
	c := r.callers[name]
	r.mu.RUnlock()
	if c != nil {
		return c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.callers[name]; c != nil {
		return c
	}
	if name != OtherLabel && len(r.callers) >= r.maxCallers {
		return nil
	}
	c = &caller{tokensIn: r.tokens.WithLabelValues(name, "input"), tokensOut: r.tokens.WithLabelValues(name, "output"),
		requestCounters: make(map[requestKey]prometheus.Counter), refusals: make(map[string]int64)}
	r.callers[name] = c
	return c
}

// requestKey names a series of keel_gateway_requests_total for one caller:
// op as opLabel gives it, and the status, -1 for any statusLabel counts as
// OtherLabel (so that the keys are as few as the series).
type requestKey struct {
	op     string
	status int
}

// requestCounter returns the caller's requests counter for op and status;
// c.mu must be held.
func (c *caller) requestCounter(r *Recorder, name, op string, status int) prometheus.Counter {
	label := statusLabel(status)
	if label == OtherLabel {
		status = -1
	}
	k := requestKey{op, status}
	cnt := c.requestCounters[k]
	if cnt == nil {
		cnt = r.requests.WithLabelValues(name, op, label)
		c.requestCounters[k] = cnt
	}
	return cnt
}

// codeLabel returns the catalog's name for code, OtherLabel for a code it
// does not know, and for a refusal without a code; "" for none.
func codeLabel(code string, refused bool) string {
	if code == "" {
		if refused {
			return OtherLabel
		}
		return ""
	}
	if e, ok := catalog.Lookup(code); ok {
		return e.Code
	}
	return OtherLabel
}

func opLabel(op string) string {
	if bedrock.Op(op).Valid() {
		return op
	}
	return OtherLabel
}

// statusLabel keeps real HTTP statuses apart; 0 (no response: the caller
// went away) is kept too.
func statusLabel(s int) string {
	if s == 0 || (s >= 100 && s <= 599) {
		return statusLabels[s]
	}
	return OtherLabel
}

// statusLabels holds the labels of the statuses kept apart, made once so
// that counting a request does not format its status.
var statusLabels = func() (l [600]string) {
	for i := range l {
		l[i] = strconv.Itoa(i)
	}
	return l
}()

// truncate returns s cut at n bytes (less, not to split a UTF-8 sequence),
// copied so that it does not hold the rest of s in memory.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.Clone(s[:n])
}

// CallerStatus is one caller's figures since the Recorder was made.
type CallerStatus struct {
	Name string
	// Requests counts the requests answered; Failures those that failed
	// (refusals included); Refused those keel refused itself.
	Requests, Failures, Refused int64
	// InputTokens and OutputTokens sum the requests' usage.
	InputTokens, OutputTokens int64
	// MeanDuration is the requests' mean time in the gateway.
	MeanDuration time.Duration
	// Refusals counts the refusals by catalog code, the most first.
	Refusals []CodeCount
	// Recent holds the latest failures, the newest first.
	Recent []RecentError
	// LastSeen is when the latest request ended.
	LastSeen time.Time
}

// CodeCount is a count under a catalog code.
type CodeCount struct {
	Code  string `json:"code"`
	Count int64  `json:"count"`
}

// RecentError is one failed request, as a caller's Recent keeps it.
type RecentError struct {
	Time     time.Time
	Op       string
	Model    string
	Status   int
	Code     string
	Attempts int
	Refused  bool
}

// Callers returns every caller's figures, ordered by name.
func (r *Recorder) Callers() []CallerStatus {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	out := make([]CallerStatus, 0, len(r.callers))
	cs := make([]*caller, 0, len(r.callers))
	for name, c := range r.callers {
		out = append(out, CallerStatus{Name: name})
		cs = append(cs, c)
	}
	r.mu.RUnlock()
	for i, c := range cs {
		c.status(&out[i])
	}
	slices.SortFunc(out, func(a, b CallerStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func (c *caller) status(s *CallerStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.Requests, s.Failures, s.Refused = c.requests, c.failures, c.refused
	s.InputTokens, s.OutputTokens = c.inTokens, c.outTokens
	if c.requests > 0 {
		s.MeanDuration = time.Duration(c.seconds / float64(c.requests) * float64(time.Second))
	}
	s.LastSeen = c.lastSeen
	for code, n := range c.refusals {
		s.Refusals = append(s.Refusals, CodeCount{Code: code, Count: n})
	}
	slices.SortFunc(s.Refusals, func(a, b CodeCount) int { return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Code, b.Code)) })
	for i := range min(c.nRecent, recentErrors) {
		s.Recent = append(s.Recent, c.recent[(c.nRecent-1-i)%recentErrors])
	}
}
