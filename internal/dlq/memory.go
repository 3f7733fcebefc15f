package dlq

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Memory is a Store held in memory: nothing survives the process. It is for
// tests and for processes that export their dead letters themselves. The
// zero value is an empty store ready to use; it is safe for concurrent use.
type Memory struct {
	mu      sync.Mutex
	next    int64
	entries map[int64]*Entry
	keys    map[string]int64
	closed  bool
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory { return &Memory{} }

// enter starts an operation: it checks ctx, locks m and makes its maps.
// On success the caller unlocks m.mu.
func (m *Memory) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("dlq: memory store is closed")
	}
	if m.entries == nil {
		m.entries = map[int64]*Entry{}
		m.keys = map[string]int64{}
	}
	return nil
}

// Put implements Store.
func (m *Memory) Put(ctx context.Context, e *Entry) (int64, error) {
	if err := m.enter(ctx); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	c := e.Clone()
	c.normalize()
	if e.Key != "" {
		if id, ok := m.keys[e.Key]; ok {
			c.ID = id
			c.CreatedAt = m.entries[id].CreatedAt
			m.entries[id] = c
			return id, nil
		}
	}
	m.next++
	c.ID = m.next
	m.entries[c.ID] = c
	if c.Key != "" {
		m.keys[c.Key] = c.ID
	}
	return c.ID, nil
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, id int64) (*Entry, error) {
	if err := m.enter(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	e, ok := m.entries[id]
	if !ok {
		return nil, fmt.Errorf("%w: id %d", ErrNotFound, id)
	}
	return e.Clone(), nil
}

// List implements Store.
func (m *Memory) List(ctx context.Context, f Filter) ([]*Entry, error) {
	if err := m.enter(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := []*Entry{}
	for _, e := range m.entries {
		if f.Match(e) {
			out = append(out, e.Clone())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// Update implements Store.
func (m *Memory) Update(ctx context.Context, e *Entry) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	old, ok := m.entries[e.ID]
	if !ok {
		return fmt.Errorf("%w: id %d", ErrNotFound, e.ID)
	}
	if e.Key != old.Key {
		if other, taken := m.keys[e.Key]; taken && e.Key != "" && other != e.ID {
			return fmt.Errorf("dlq: key %q already belongs to entry %d", e.Key, other)
		}
		delete(m.keys, old.Key)
		if e.Key != "" {
			m.keys[e.Key] = e.ID
		}
	}
	c := e.Clone()
	c.normalize()
	m.entries[e.ID] = c
	return nil
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, id int64) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	e, ok := m.entries[id]
	if !ok {
		return fmt.Errorf("%w: id %d", ErrNotFound, id)
	}
	m.remove(e)
	return nil
}

func (m *Memory) remove(e *Entry) {
	delete(m.entries, e.ID)
	if e.Key != "" {
		delete(m.keys, e.Key)
	}
}

// Purge implements Store.
func (m *Memory) Purge(ctx context.Context, f Filter) (int, error) {
	if err := m.enter(ctx); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	n := 0
	for _, e := range m.entries {
		if f.Match(e) {
			m.remove(e)
			n++
		}
	}
	return n, nil
}

// Close implements Store; the entries are dropped.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.entries, m.keys = nil, nil
	return nil
}
