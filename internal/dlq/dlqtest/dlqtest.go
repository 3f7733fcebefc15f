// Package dlqtest is the conformance suite for dlq.Store implementations,
// in the manner of testing/slogtest: a backend's test calls Run with a
// function that makes an empty store, and every documented behaviour of
// dlq.Store is checked against it.
//
//	func TestConformance(t *testing.T) {
//		dlqtest.Run(t, func(t *testing.T) dlq.Store { return mystore.New(t.TempDir()) })
//	}
package dlqtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/dlq"
)

// Run runs the suite. newStore is called once per subtest and must return an
// empty store; Run closes it at the end of the subtest.
func Run(t *testing.T, newStore func(t *testing.T) dlq.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s dlq.Store)
	}{
		{"round trip keeps every field", roundTrip},
		{"IDs are unique and increasing", ids},
		{"missing IDs are ErrNotFound", notFound},
		{"a key makes Put an upsert", keyUpsert},
		{"filters select as Filter.Match says", filters},
		{"update replaces and extends history", update},
		{"delete removes one entry", deleteOne},
		{"purge removes what the filter selects", purge},
		{"entries in and out are copies", copies},
		{"concurrent puts", concurrent},
		{"empty body and no attempts", empty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

var base = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

// sample returns a fully populated entry; n varies it.
func sample(n int) *dlq.Entry {
	at := base.Add(time.Duration(n) * time.Minute)
	return &dlq.Entry{
		Source: "test",
		Op:     "converse",
		Model:  fmt.Sprintf("model-%d", n%3),
		Region: "us-east-1",
		// Bytes that are not UTF-8 and a NUL: bodies are bytes, not text.
		Body:      []byte(fmt.Sprintf("{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"héllo %d\"}]}]}\x00\xff", n)),
		Code:      []string{"ThrottlingException", "ValidationException", "MPAgreementBeingCreated"}[n%3],
		Status:    []int{429, 400, 403}[n%3],
		Message:   "Too many tokens — «please» wait",
		RequestID: fmt.Sprintf("req-%d", n),
		Retry:     "throttled",
		Attempts: []dlq.Attempt{
			{Model: "m", Region: "us-east-1", Status: 429, Code: "ThrottlingException", RequestID: "a1",
				Start: at.Add(-3*time.Second + 7), Duration: 1234567 * time.Nanosecond},
			{Model: "m", Region: "us-west-2", Skipped: true, Code: "CircuitOpen", Start: at.Add(-time.Second), Delay: 987654321},
		},
		CreatedAt: at.Add(123456789), // nanoseconds must survive
		FailedAt:  at.Add(time.Second),
		NotBefore: at.Add(15 * time.Minute),
		Redrives:  n % 2,
	}
}

func put(t *testing.T, s dlq.Store, e *dlq.Entry) int64 {
	t.Helper()
	id, err := s.Put(context.Background(), e)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if id <= 0 {
		t.Fatalf("Put returned ID %d; want a positive ID", id)
	}
	return id
}

func get(t *testing.T, s dlq.Store, id int64) *dlq.Entry {
	t.Helper()
	e, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%d): %v", id, err)
	}
	return e
}

func list(t *testing.T, s dlq.Store, f dlq.Filter) []*dlq.Entry {
	t.Helper()
	es, err := s.List(context.Background(), f)
	if err != nil {
		t.Fatalf("List(%+v): %v", f, err)
	}
	return es
}

func idsOf(es []*dlq.Entry) []int64 {
	out := []int64{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// same compares entries field by field, times with Equal.
func same(t *testing.T, got, want *dlq.Entry) {
	t.Helper()
	g, w := got.Clone(), want.Clone()
	for _, e := range []*dlq.Entry{g, w} {
		if len(e.Body) == 0 {
			e.Body = nil
		}
		if len(e.Attempts) == 0 {
			e.Attempts = nil
		}
	}
	if !g.CreatedAt.Equal(w.CreatedAt) || !g.FailedAt.Equal(w.FailedAt) || !g.NotBefore.Equal(w.NotBefore) ||
		g.NotBefore.IsZero() != w.NotBefore.IsZero() {
		t.Errorf("times: got created %v failed %v notBefore %v; want %v %v %v", g.CreatedAt, g.FailedAt, g.NotBefore, w.CreatedAt, w.FailedAt, w.NotBefore)
	}
	g.CreatedAt, g.FailedAt, g.NotBefore = time.Time{}, time.Time{}, time.Time{}
	w.CreatedAt, w.FailedAt, w.NotBefore = time.Time{}, time.Time{}, time.Time{}
	if len(g.Attempts) != len(w.Attempts) {
		t.Fatalf("attempts: got %d, want %d", len(g.Attempts), len(w.Attempts))
	}
	for i := range g.Attempts {
		if !g.Attempts[i].Start.Equal(w.Attempts[i].Start) {
			t.Errorf("attempt %d start: got %v, want %v", i, g.Attempts[i].Start, w.Attempts[i].Start)
		}
		g.Attempts[i].Start, w.Attempts[i].Start = time.Time{}, time.Time{}
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("entry differs:\n got %+v\nwant %+v", g, w)
	}
}

func roundTrip(t *testing.T, s dlq.Store) {
	e := sample(1)
	e.Key = "run-1:rec-7"
	e.Redacted = true
	id := put(t, s, e)
	if e.ID != 0 {
		t.Errorf("Put changed the caller's entry: ID %d", e.ID)
	}
	want := e.Clone()
	want.ID = id
	same(t, get(t, s, id), want)
	es := list(t, s, dlq.Filter{})
	if len(es) != 1 {
		t.Fatalf("List: %d entries, want 1", len(es))
	}
	same(t, es[0], want)
}

func ids(t *testing.T, s dlq.Store) {
	var got []int64
	for i := range 5 {
		got = append(got, put(t, s, sample(i)))
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("IDs %v are not strictly increasing", got)
		}
	}
	if l := idsOf(list(t, s, dlq.Filter{})); !slices.Equal(l, got) {
		t.Errorf("List order %v, want %v", l, got)
	}
	// Deleting the highest ID must not let a new entry reuse it.
	if err := s.Delete(context.Background(), got[4]); err != nil {
		t.Fatal(err)
	}
	if id := put(t, s, sample(9)); id <= got[4] {
		t.Errorf("ID %d reused or went back after deleting %d", id, got[4])
	}
}

func notFound(t *testing.T, s dlq.Store) {
	ctx := context.Background()
	id := put(t, s, sample(1))
	missing := id + 1000
	if _, err := s.Get(ctx, missing); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("Get(missing): %v, want ErrNotFound", err)
	}
	e := sample(2)
	e.ID = missing
	if err := s.Update(ctx, e); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("Update(missing): %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, missing); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("Delete(missing): %v, want ErrNotFound", err)
	}
	if n := len(list(t, s, dlq.Filter{})); n != 1 {
		t.Errorf("%d entries after failed operations, want 1", n)
	}
}

func keyUpsert(t *testing.T, s dlq.Store) {
	first := sample(0)
	first.Key = "batch:r1:a"
	id1 := put(t, s, first)
	second := sample(1)
	second.Key = "batch:r1:a"
	id2 := put(t, s, second)
	if id1 != id2 {
		t.Fatalf("same key got IDs %d and %d; want one entry", id1, id2)
	}
	want := second.Clone()
	want.ID = id1
	want.CreatedAt = first.CreatedAt // the first parking time stays
	same(t, get(t, s, id1), want)
	// Entries without a key never collide.
	put(t, s, sample(2))
	put(t, s, sample(2))
	other := sample(3)
	other.Key = "batch:r1:b"
	put(t, s, other)
	if n := len(list(t, s, dlq.Filter{})); n != 4 {
		t.Errorf("%d entries, want 4", n)
	}
	// Once deleted, the key is free again and gets a new entry.
	if err := s.Delete(context.Background(), id1); err != nil {
		t.Fatal(err)
	}
	if id3 := put(t, s, first); id3 == id1 {
		t.Errorf("a deleted entry's ID %d came back", id1)
	}
}

func filters(t *testing.T, s dlq.Store) {
	var all []*dlq.Entry
	for i := range 9 {
		e := sample(i)
		if i%4 == 0 {
			e.NotBefore = time.Time{}
		}
		e.ID = put(t, s, e)
		all = append(all, e)
	}
	at := func(i int) time.Time { return all[i].CreatedAt }
	tests := []struct {
		name string
		f    dlq.Filter
		want int // expected count, checked besides agreement with Match
	}{
		{"zero filter selects all", dlq.Filter{}, 9},
		{"one code", dlq.Filter{Codes: []string{"ValidationException"}}, 3},
		{"codes ignore case", dlq.Filter{Codes: []string{"throttlingexception", "MPAGREEMENTBEINGCREATED"}}, 6},
		{"unknown code", dlq.Filter{Codes: []string{"Nope"}}, 0},
		{"models", dlq.Filter{Models: []string{"model-0", "model-2"}}, 6},
		{"model is exact", dlq.Filter{Models: []string{"MODEL-0"}}, 0},
		{"created before is strict", dlq.Filter{CreatedBefore: at(3)}, 3},
		{"created after is strict", dlq.Filter{CreatedAfter: at(3)}, 5},
		{"created window", dlq.Filter{CreatedAfter: at(1), CreatedBefore: at(5)}, 3},
		{"due now: only zero not-before", dlq.Filter{DueAt: base}, 3},
		{"due at a not-before exactly", dlq.Filter{DueAt: all[1].NotBefore}, 4},
		{"due far later", dlq.Filter{DueAt: base.Add(24 * time.Hour)}, 9},
		{"ids", dlq.Filter{IDs: []int64{all[2].ID, all[7].ID, 99999}}, 2},
		{"limit keeps lowest ids", dlq.Filter{Limit: 4}, 4},
		{"combined", dlq.Filter{Codes: []string{"ThrottlingException"}, Models: []string{"model-0"}, CreatedAfter: at(0)}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []int64
			for _, e := range all {
				if tt.f.Match(e) {
					want = append(want, e.ID)
				}
			}
			if tt.f.Limit > 0 && len(want) > tt.f.Limit {
				want = want[:tt.f.Limit]
			}
			if want == nil {
				want = []int64{}
			}
			got := idsOf(list(t, s, tt.f))
			if !slices.Equal(got, want) {
				t.Errorf("List = %v; Filter.Match says %v", got, want)
			}
			if len(got) != tt.want {
				t.Errorf("List selected %d entries, want %d", len(got), tt.want)
			}
		})
	}
}

func update(t *testing.T, s dlq.Store) {
	e := sample(4)
	e.ID = put(t, s, e)
	e.Attempts = append(e.Attempts, dlq.Attempt{Model: "m", Region: "us-east-1", Status: 403, Code: "MPAgreementBeingCreated",
		Start: base.Add(time.Hour), Duration: time.Millisecond, Redrive: 1})
	e.Redrives++
	e.Code, e.Status, e.Message = "MPAgreementBeingCreated", 403, "still pending"
	e.FailedAt = base.Add(time.Hour)
	e.NotBefore = time.Time{}
	if err := s.Update(context.Background(), e); err != nil {
		t.Fatalf("Update: %v", err)
	}
	same(t, get(t, s, e.ID), e)
}

func deleteOne(t *testing.T, s dlq.Store) {
	a, b := put(t, s, sample(1)), put(t, s, sample(2))
	if err := s.Delete(context.Background(), a); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := idsOf(list(t, s, dlq.Filter{})); !slices.Equal(got, []int64{b}) {
		t.Errorf("after Delete(%d): %v, want [%d]", a, got, b)
	}
	if err := s.Delete(context.Background(), a); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
}

func purge(t *testing.T, s dlq.Store) {
	ctx := context.Background()
	for i := range 6 {
		put(t, s, sample(i))
	}
	n, err := s.Purge(ctx, dlq.Filter{Codes: []string{"ValidationException"}, Limit: 1})
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if n != 2 {
		t.Errorf("Purge removed %d, want 2 (Limit does not apply to Purge)", n)
	}
	if got := len(list(t, s, dlq.Filter{Codes: []string{"ValidationException"}})); got != 0 {
		t.Errorf("%d ValidationException entries left", got)
	}
	if n, err = s.Purge(ctx, dlq.Filter{Codes: []string{"Nope"}}); err != nil || n != 0 {
		t.Errorf("Purge(nothing) = %d, %v; want 0, nil", n, err)
	}
	if n, err = s.Purge(ctx, dlq.Filter{}); err != nil || n != 4 {
		t.Errorf("Purge(all) = %d, %v; want 4, nil", n, err)
	}
	if got := len(list(t, s, dlq.Filter{})); got != 0 {
		t.Errorf("%d entries left after purging all", got)
	}
}

func copies(t *testing.T, s dlq.Store) {
	e := sample(1)
	id := put(t, s, e)
	want := e.Clone()
	want.ID = id
	e.Body[0] = 'X'
	e.Attempts[0].Code = "changed"
	got := get(t, s, id)
	same(t, got, want)
	got.Body[0] = 'Y'
	got.Attempts[0].Code = "changed again"
	same(t, get(t, s, id), want)
	l := list(t, s, dlq.Filter{})
	l[0].Body[1] = 'Z'
	same(t, get(t, s, id), want)
}

func concurrent(t *testing.T, s dlq.Store) {
	const workers, each = 8, 20
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[int64]int{}
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := sample(i)
				if i%2 == 0 {
					e.Key = fmt.Sprintf("shared-%d", i) // all workers race for these
				} else {
					e.Key = fmt.Sprintf("own-%d-%d", w, i)
				}
				id, err := s.Put(context.Background(), e)
				if err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				mu.Lock()
				got[id]++
				mu.Unlock()
				if _, err := s.List(context.Background(), dlq.Filter{Limit: 3}); err != nil {
					t.Errorf("List: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	wantEntries := each/2 + workers*each/2
	if n := len(list(t, s, dlq.Filter{})); n != wantEntries {
		t.Errorf("%d entries, want %d", n, wantEntries)
	}
	if len(got) != wantEntries {
		t.Errorf("%d distinct IDs returned, want %d", len(got), wantEntries)
	}
}

func empty(t *testing.T, s dlq.Store) {
	e := &dlq.Entry{Op: "invoke", Model: "m", Code: "ValidationException", CreatedAt: base, FailedAt: base}
	id := put(t, s, e)
	got := get(t, s, id)
	if len(got.Body) != 0 || len(got.Attempts) != 0 || !got.NotBefore.IsZero() || got.Key != "" {
		t.Errorf("got body %q, %d attempts, not-before %v, key %q; want all empty", got.Body, len(got.Attempts), got.NotBefore, got.Key)
	}
	// Two entries without keys may coexist (an empty key is no key).
	put(t, s, e)
	if n := len(list(t, s, dlq.Filter{})); n != 2 {
		t.Errorf("%d entries, want 2", n)
	}
}
