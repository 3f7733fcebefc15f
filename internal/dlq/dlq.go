package dlq

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// Entry is one dead letter: a request whose call failed for good, and why.
type Entry struct {
	// ID is the store's identifier, assigned by Put; zero before.
	ID int64 `json:"id"`
	// Key, when set, makes parking idempotent: a Put with a Key the store
	// already holds replaces that entry (keeping its ID and CreatedAt)
	// instead of adding one. The batch runner keys entries by run and
	// record, so a record dead-lettered again after a crash is not parked twice.
	Key string `json:"key,omitempty"`
	// Source says who parked the entry ("batch", "cli", a service name).
	Source string `json:"source,omitempty"`

	// The request.
	Op     string `json:"op"`    // Bedrock Runtime operation: converse, invoke, ...
	Model  string `json:"model"` // model id, inference profile id or ARN, as called
	Region string `json:"region,omitempty"`
	Body   []byte `json:"body"`
	// Redacted reports that message text in Body was replaced (see Redact);
	// such an entry cannot be redriven.
	Redacted bool `json:"redacted,omitempty"`

	// The last failure.
	Code      string `json:"code"`             // catalog code
	Status    int    `json:"status,omitempty"` // HTTP status; 0 when no response arrived
	Message   string `json:"message,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	Retry     string `json:"retry,omitempty"` // the catalog entry's retry class

	// Attempts is the attempt history of the first call and of every redrive, oldest first.
	Attempts []Attempt `json:"attempts"`

	CreatedAt time.Time `json:"createdAt"` // first failure
	FailedAt  time.Time `json:"failedAt"`  // last failure
	// NotBefore is the earliest time a redrive may succeed (LongWait
	// failures); zero means at once.
	NotBefore time.Time `json:"notBefore,omitzero"`
	// Redrives counts failed redrives.
	Redrives int `json:"redrives"`
}

// Attempt is one attempt of the call's history (engine.Attempt, flattened
// for storage).
type Attempt struct {
	Model     string        `json:"model"`
	Region    string        `json:"region"`
	Status    int           `json:"status,omitempty"`
	Code      string        `json:"code,omitempty"`
	RequestID string        `json:"requestId,omitempty"`
	Start     time.Time     `json:"start"`
	Delay     time.Duration `json:"delayNs,omitempty"`
	Duration  time.Duration `json:"durationNs"`
	Skipped   bool          `json:"skipped,omitempty"` // not sent: the target's breaker was open
	Redrive   int           `json:"redrive,omitempty"` // 0 for the first call, n for the n-th redrive
}

// Due reports whether a redrive may be tried at now.
func (e *Entry) Due(now time.Time) bool { return e.NotBefore.IsZero() || !now.Before(e.NotBefore) }

// Clone returns a deep copy of e.
func (e *Entry) Clone() *Entry {
	c := *e
	c.Body = slices.Clone(e.Body)
	c.Attempts = slices.Clone(e.Attempts)
	return &c
}

// normalize strips monotonic clock readings and locations, so entries
// compare the same whichever store they came back from.
func (e *Entry) normalize() {
	e.CreatedAt = normTime(e.CreatedAt)
	e.FailedAt = normTime(e.FailedAt)
	e.NotBefore = normTime(e.NotBefore)
	for i := range e.Attempts {
		e.Attempts[i].Start = normTime(e.Attempts[i].Start)
	}
	if e.Body == nil {
		e.Body = []byte{}
	}
	if e.Attempts == nil {
		e.Attempts = []Attempt{}
	}
}

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(0, t.UnixNano()).UTC()
}

// Filter selects entries. The zero Filter selects every entry; each set
// field narrows the selection, and all set fields must match.
type Filter struct {
	// IDs: only these entries.
	IDs []int64
	// Codes: entries whose catalog code is one of these (exact, ASCII case-insensitive).
	Codes []string
	// Models: entries whose model is one of these, exactly.
	Models []string
	// CreatedBefore: entries first parked before this time (`--older-than`).
	CreatedBefore time.Time
	// CreatedAfter: entries first parked after this time (`--newer-than`).
	CreatedAfter time.Time
	// DueAt: entries whose NotBefore is zero or not after this time.
	DueAt time.Time
	// Limit caps how many entries List returns, lowest IDs first; zero: no cap.
	Limit int
}

// Match reports whether e passes f (Limit aside). Stores may use it; the
// conformance suite checks every store agrees with it.
func (f *Filter) Match(e *Entry) bool {
	if len(f.IDs) > 0 && !slices.Contains(f.IDs, e.ID) {
		return false
	}
	if len(f.Codes) > 0 && !slices.ContainsFunc(f.Codes, func(c string) bool { return strings.EqualFold(c, e.Code) }) {
		return false
	}
	if len(f.Models) > 0 && !slices.Contains(f.Models, e.Model) {
		return false
	}
	if !f.CreatedBefore.IsZero() && !e.CreatedAt.Before(f.CreatedBefore) {
		return false
	}
	if !f.CreatedAfter.IsZero() && !e.CreatedAt.After(f.CreatedAfter) {
		return false
	}
	if !f.DueAt.IsZero() && !e.Due(f.DueAt) {
		return false
	}
	return true
}

// Store keeps dead letters. Implementations are safe for concurrent use, and
// every method that changes the store has made the change durable (as far as
// the backend promises durability) when it returns. Entries going in and
// coming out are copies: a caller may keep or change them freely.
type Store interface {
	// Put stores e and returns its new ID; e.ID is ignored and e is not
	// changed. When e.Key is set and an entry with that key exists, Put
	// replaces it instead, keeping its ID and CreatedAt, and returns that ID.
	Put(ctx context.Context, e *Entry) (int64, error)
	// Get returns the entry with id, or an error matching ErrNotFound.
	Get(ctx context.Context, id int64) (*Entry, error)
	// List returns the entries f selects, lowest ID first.
	List(ctx context.Context, f Filter) ([]*Entry, error)
	// Update replaces the stored entry with e.ID by e (CreatedAt and Key
	// included), or returns an error matching ErrNotFound.
	Update(ctx context.Context, e *Entry) error
	// Delete removes the entry with id, or returns an error matching ErrNotFound.
	Delete(ctx context.Context, id int64) error
	// Purge removes every entry f selects (Limit aside) and returns how many it removed.
	Purge(ctx context.Context, f Filter) (int, error)
	// Close releases the store. Other methods must not be called after it.
	Close() error
}

// ErrNotFound is returned (wrapped) for an ID the store does not hold.
var ErrNotFound = errors.New("dlq: no such entry")
