package quota

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/scenario/glob"
)

// Limits are the quotas of one model in one region. A zero limit means
// that dimension is not limited, so the zero Limits limit nothing.
type Limits struct {
	TokensPerMinute   int64 `json:"tokens_per_minute,omitempty"`
	RequestsPerMinute int64 `json:"requests_per_minute,omitempty"`
	TokensPerDay      int64 `json:"tokens_per_day,omitempty"`
	// Shape is the shape of the per-minute buckets; nil means DefaultShape.
	// A non-nil Shape sets every field (StartLevel 0 is an empty bucket).
	// Usage reports the shape in force, so it is left out of Limits' JSON.
	Shape *Shape `json:"-"`
}

// Unlimited reports whether l limits nothing.
func (l Limits) Unlimited() bool {
	return l.TokensPerMinute == 0 && l.RequestsPerMinute == 0 && l.TokensPerDay == 0
}

// shape returns the shape in force: l.Shape, or DefaultShape when it is nil.
func (l Limits) shape() Shape {
	if l.Shape == nil {
		return DefaultShape()
	}
	return *l.Shape
}

// equal reports whether l and o limit the same way; Shape is compared by
// value, not by pointer.
func (l Limits) equal(o Limits) bool {
	return l.TokensPerMinute == o.TokensPerMinute && l.RequestsPerMinute == o.RequestsPerMinute &&
		l.TokensPerDay == o.TokensPerDay && l.shape() == o.shape()
}

// Rule gives Limits to every (model, region) its patterns match. A pattern
// is a glob in which '*' matches any run of characters; an empty pattern
// means "*". Model is matched against the model id as the request sent it,
// which may be a foundation model id, an inference profile id or an ARN.
type Rule struct {
	Model  string
	Region string
	Limits Limits
}

// Matches reports whether r applies to model in region.
func (r Rule) Matches(model, region string) bool {
	return (r.Model == "" || glob.Match(r.Model, model)) &&
		(r.Region == "" || glob.Match(r.Region, region))
}

// Table is an ordered list of rules. The first rule that matches a (model,
// region) gives its limits; a pair no rule matches is not limited. Put a
// catch-all rule (both patterns "*") last to set a default.
type Table []Rule

// Lookup returns the limits for model in region and whether a rule matched.
func (t Table) Lookup(model, region string) (Limits, bool) {
	for _, r := range t {
		if r.Matches(model, region) {
			return r.Limits, true
		}
	}
	return Limits{}, false
}

// Validate reports the first rule with a negative limit or a bad shape.
func (t Table) Validate() error {
	for i, r := range t {
		if s := r.Limits.Shape; s != nil {
			if r.Limits.TokensPerMinute <= 0 && r.Limits.RequestsPerMinute <= 0 {
				return fmt.Errorf("quota: rule %d: a shape applies to the per-minute buckets, and the rule limits neither tokens nor requests per minute", i)
			}
			if err := s.Validate(); err != nil {
				return fmt.Errorf("quota: rule %d: %w", i, err)
			}
		}
		switch {
		case r.Limits.TokensPerMinute < 0:
			return fmt.Errorf("quota: rule %d: tokens per minute %d is negative", i, r.Limits.TokensPerMinute)
		case r.Limits.RequestsPerMinute < 0:
			return fmt.Errorf("quota: rule %d: requests per minute %d is negative", i, r.Limits.RequestsPerMinute)
		case r.Limits.TokensPerDay < 0:
			return fmt.Errorf("quota: rule %d: tokens per day %d is negative", i, r.Limits.TokensPerDay)
		}
	}
	return nil
}

// AdmitRequest is what Admit needs to know about a request that is starting.
// Its fields match the emulator server's AdmitRequest, so one converts to the
// other.
type AdmitRequest struct {
	Model       string
	Region      string
	Operation   string
	InputTokens int
	// MaxTokens is the request's maximum output, already replaced by the
	// model's default maximum when the request set none.
	MaxTokens int
}

// SettleRequest is what a finished request really used.
type SettleRequest struct {
	Model            string
	Region           string
	Operation        string
	InputTokens      int
	CacheWriteTokens int
	OutputTokens     int
	// Burndown is the model's output burndown rate; zero or less counts as 1.
	Burndown float64
	// MaxTokens is the MaxTokens the request was admitted with, so the meter
	// can release the reservation it made (InputTokens + MaxTokens).
	MaxTokens int
}

// Rejection says why a request was not admitted. Code is the catalog code.
// Rejections returned by a Meter are shared; callers must not modify them.
type Rejection struct {
	Code    string
	Message string
}

// The rejections Bedrock sends when a quota is spent.
var (
	tooManyTokens = &Rejection{Code: "ThrottlingException",
		Message: "Too many tokens, please wait before trying again."}
	tooManyRequests = &Rejection{Code: "ThrottlingException",
		Message: "Too many requests, please wait before trying again."}
	tooManyTokensPerDay = &Rejection{Code: "ThrottlingException",
		Message: "Too many tokens per day, please wait before trying again."}
)

// countTokens is the operation that Bedrock does not meter: CountTokens is
// free and generates nothing.
const countTokens = "count-tokens"

// Usage is a snapshot of one (model, region)'s counters and windows.
type Usage struct {
	Model  string `json:"model"`
	Region string `json:"region"`
	// Limits in force; all zero when nothing limits this pair.
	Limits Limits `json:"limits"`
	// Shape is the shape of the per-minute buckets; nil when neither tokens
	// nor requests per minute are limited.
	Shape *Shape `json:"shape,omitempty"`
	// Requests counts every call to Admit.
	Requests int64 `json:"requests"`
	// Admitted and Throttled split Requests by Admit's answer.
	Admitted  int64 `json:"admitted"`
	Throttled int64 `json:"throttled"`
	// Settled counts calls to Settle.
	Settled int64 `json:"settled"`
	// TokensReserved sums the reservations of admitted requests.
	TokensReserved int64 `json:"tokens_reserved"`
	// TokensSettled sums what settled requests really used (output × burndown).
	TokensSettled int64 `json:"tokens_settled"`
	// TokensAvailable is what the tokens-per-minute window holds now; it is
	// negative while a settlement above its reservation is being paid back.
	// Omitted when tokens per minute are not limited.
	TokensAvailable *int64 `json:"tokens_available,omitempty"`
	// TokensCapacity is what the tokens-per-minute bucket holds when full:
	// TokensPerMinute × Shape.Burst / 1m, rounded down. Omitted when tokens
	// per minute are not limited.
	TokensCapacity *int64 `json:"tokens_capacity,omitempty"`
	// RequestsAvailable and RequestsCapacity are the same for the
	// requests-per-minute bucket, in requests, unrounded (a one-second burst
	// of 30 requests per minute holds half a request). Omitted when requests
	// per minute are not limited.
	RequestsAvailable *float64 `json:"requests_available,omitempty"`
	RequestsCapacity  *float64 `json:"requests_capacity,omitempty"`
}

// MaxPairs caps how many (model, region) pairs a Meter keeps windows and
// counters for: a real run uses a handful, and a client inventing model ids
// (ARNs with made-up accounts) or regions must not grow the Meter without
// bound. Requests for a new pair beyond it share one entry, counted as model
// and region Other and limited by the first rule that matches Other in both
// (a catch-all rule, as a rule for a real model does not).
const MaxPairs = 1024

// Other is the model and region of the entry that takes the pairs beyond
// MaxPairs.
const Other = "(other)"

// A Meter admits and settles requests against a Table of limits. Most
// callers use Admit at the start of each request and Settle at its end. The
// zero Meter is not usable; call NewMeter. A Meter is safe for concurrent use.
type Meter struct {
	clk clock.Clock

	// table holds the current rules with a generation number; entries made
	// under an older generation pick up their new limits on next use.
	table atomic.Pointer[tableGen]

	// entries maps a (model, region) to its windows and counters. The map is
	// never modified once published: adding a pair copies it under mu, so
	// the per-request lookup is a plain read.
	entries atomic.Pointer[map[key]*entry]
	mu      sync.Mutex
}

type tableGen struct {
	table Table
	gen   uint64
}

type key struct{ model, region string }

type entry struct {
	mu            sync.Mutex
	gen           uint64
	limits        Limits
	tpm, rpm, tpd bucket
	u             Usage // counters; Model, Region set at creation
}

// NewMeter returns a Meter that applies t and reads time from clk (nil
// means the wall clock). A nil or empty t limits nothing but still counts.
func NewMeter(clk clock.Clock, t Table) *Meter {
	if clk == nil {
		clk = clock.Real{}
	}
	m := &Meter{clk: clk}
	m.table.Store(&tableGen{table: slices.Clone(t), gen: 1})
	empty := map[key]*entry{}
	m.entries.Store(&empty)
	return m
}

// SetTable replaces the limits. Each (model, region) keeps what its windows
// hold, cut down to a smaller capacity; a window that was not limited before
// starts at its shape's start level (a daily window full).
func (m *Meter) SetTable(t Table) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.table.Load()
	m.table.Store(&tableGen{table: slices.Clone(t), gen: old.gen + 1})
}

// Table returns a copy of the limits in force.
func (m *Meter) Table() Table { return slices.Clone(m.table.Load().table) }

// Reset forgets every counter and window: each (model, region) starts again
// with windows at their shape's start level (daily windows full). Requests admitted before Reset settle into the windows
// it discarded.
func (m *Meter) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	empty := map[key]*entry{}
	m.entries.Store(&empty)
}

// Admit reserves r.InputTokens + r.MaxTokens for r's model and region. It
// returns nil when the request may go ahead (the caller must then call
// Settle once it ends, however it ends), or the ThrottlingException Bedrock
// would send when a quota is spent: requests per minute are checked first,
// then tokens per minute, then tokens per day. A rejected request reserves
// nothing; one that reserves more than a bucket's capacity is rejected
// every time. Count-tokens requests are counted but never limited.
func (m *Meter) Admit(r AdmitRequest) *Rejection {
	return m.AdmitAt(m.clk.Now(), r)
}

// AdmitAt is Admit at time now.
func (m *Meter) AdmitAt(now time.Time, r AdmitRequest) *Rejection {
	e := m.entry(r.Model, r.Region)
	e.mu.Lock()
	defer e.mu.Unlock()
	m.sync(e, now)
	e.u.Requests++
	if r.Operation == countTokens {
		e.u.Admitted++
		return nil
	}
	need := float64(max(r.InputTokens, 0)) + float64(max(r.MaxTokens, 0))
	var rej *Rejection
	switch {
	case !e.rpm.fits(1):
		rej = tooManyRequests
	case !e.tpm.fits(need):
		rej = tooManyTokens
	case !e.tpd.fits(need):
		rej = tooManyTokensPerDay
	}
	if rej != nil {
		e.u.Throttled++
		return rej
	}
	e.rpm.take(1)
	e.tpm.take(need)
	e.tpd.take(need)
	e.u.Admitted++
	e.u.TokensReserved += int64(need)
	return nil
}

// Settle replaces the reservation Admit made for r with what r used:
// InputTokens + CacheWriteTokens + OutputTokens × Burndown, rounded up.
// Call it once per admitted request, with zero usage if the request produced
// nothing.
func (m *Meter) Settle(r SettleRequest) {
	m.SettleAt(m.clk.Now(), r)
}

// SettleAt is Settle at time now.
func (m *Meter) SettleAt(now time.Time, r SettleRequest) {
	e := m.entry(r.Model, r.Region)
	e.mu.Lock()
	defer e.mu.Unlock()
	m.sync(e, now)
	e.u.Settled++
	if r.Operation == countTokens {
		return
	}
	burndown := r.Burndown
	if burndown <= 0 {
		burndown = 1
	}
	used := float64(max(r.InputTokens, 0)) + float64(max(r.CacheWriteTokens, 0)) +
		math.Ceil(float64(max(r.OutputTokens, 0))*burndown)
	reserved := float64(max(r.InputTokens, 0)) + float64(max(r.MaxTokens, 0))
	e.tpm.give(reserved - used)
	e.tpd.give(reserved - used)
	e.u.TokensSettled += int64(used)
}

// Snapshot returns the counters of every (model, region) seen since the
// Meter was made or last Reset, sorted by model then region.
func (m *Meter) Snapshot() []Usage {
	return m.SnapshotAt(m.clk.Now())
}

// SnapshotAt is Snapshot at time now.
func (m *Meter) SnapshotAt(now time.Time) []Usage {
	entries := *m.entries.Load()
	out := make([]Usage, 0, len(entries))
	for _, e := range entries {
		e.mu.Lock()
		m.sync(e, now)
		u := e.u
		u.Limits = e.limits
		if e.tpm.limited() || e.rpm.limited() {
			s := e.limits.shape()
			u.Shape = &s
		}
		if e.tpm.limited() {
			avail, capacity := int64(math.Floor(e.tpm.level)), int64(math.Floor(e.tpm.capacity))
			u.TokensAvailable, u.TokensCapacity = &avail, &capacity
		}
		if e.rpm.limited() {
			avail, capacity := e.rpm.level, e.rpm.capacity
			u.RequestsAvailable, u.RequestsCapacity = &avail, &capacity
		}
		e.mu.Unlock()
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b Usage) int {
		return cmp.Or(cmp.Compare(a.Model, b.Model), cmp.Compare(a.Region, b.Region))
	})
	return out
}

// entry returns the state of (model, region), making it on first use.
func (m *Meter) entry(model, region string) *entry {
	k := key{model, region}
	if e, ok := (*m.entries.Load())[k]; ok {
		return e
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := *m.entries.Load()
	if e, ok := cur[k]; ok {
		return e
	}
	if len(cur) >= MaxPairs {
		k = key{Other, Other}
		if e, ok := cur[k]; ok {
			return e
		}
	}
	next := make(map[key]*entry, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	e := &entry{u: Usage{Model: k.model, Region: k.region}}
	next[k] = e
	m.entries.Store(&next)
	return e
}

// sync refills e's windows up to now, then applies a replaced table. e.mu is held.
func (m *Meter) sync(e *entry, now time.Time) {
	e.tpm.refill(now)
	e.rpm.refill(now)
	e.tpd.refill(now)
	if tg := m.table.Load(); e.gen != tg.gen {
		limits, _ := tg.table.Lookup(e.u.Model, e.u.Region)
		e.gen = tg.gen
		if !limits.equal(e.limits) {
			e.limits = limits
			shape := limits.shape()
			e.tpm.reshape(limits.TokensPerMinute, time.Minute, shape, now)
			e.rpm.reshape(limits.RequestsPerMinute, time.Minute, shape, now)
			e.tpd.reshape(limits.TokensPerDay, day, dayShape, now)
		}
	}
}

// day is the period of the per-day bucket, and dayShape its shape: a whole
// day of quota, full at the start, refilled continuously.
const day = 24 * time.Hour

var dayShape = Shape{Burst: day, StartLevel: 1}
