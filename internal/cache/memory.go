package cache

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// Memory is a Store in this process's memory, bounded by bytes: when a new
// value would pass the bound, the least recently used values are evicted
// first (expired ones are dropped when met). It is safe for concurrent use.
//
// It is a small LRU written for keel rather than a library: the
// libraries that bound by bytes (ristretto, otter) admit values by
// frequency (TinyLFU) and apply writes asynchronously, so a value just
// stored may not be there on the next Get, which would make a rerun miss
// and the tests guess; hashicorp/golang-lru bounds by count, not bytes.
type Memory struct {
	max int64
	clk clock.Clock

	mu        sync.Mutex
	items     map[string]*list.Element
	lru       list.List // front: most recently used
	bytes     int64
	evictions int64
}

type memItem struct {
	key     string
	value   []byte
	expires time.Time
}

// NewMemory returns a Memory store holding at most maxBytes of values; clk
// decides expiry (nil: the wall clock).
func NewMemory(maxBytes int64, clk clock.Clock) *Memory {
	if clk == nil {
		clk = clock.Real{}
	}
	return &Memory{max: maxBytes, clk: clk, items: map[string]*list.Element{}}
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) ([]byte, bool, error) {
	now := m.clk.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[key]
	if !ok {
		return nil, false, nil
	}
	it := el.Value.(*memItem)
	if !now.Before(it.expires) {
		m.remove(el)
		return nil, false, nil
	}
	m.lru.MoveToFront(el)
	return it.value, true, nil
}

// Set implements Store. The value is kept as it is: the caller must not
// change it afterwards.
func (m *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	size := int64(len(value))
	expires := m.clk.Now().Add(ttl)
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		m.remove(el)
	}
	if size > m.max || ttl <= 0 {
		return nil
	}
	for m.bytes+size > m.max {
		m.remove(m.lru.Back())
		m.evictions++
	}
	m.items[key] = m.lru.PushFront(&memItem{key: key, value: value, expires: expires})
	m.bytes += size
	return nil
}

func (m *Memory) remove(el *list.Element) {
	it := m.lru.Remove(el).(*memItem)
	delete(m.items, it.key)
	m.bytes -= int64(len(it.value))
}

// Purge implements Store.
func (m *Memory) Purge(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items = map[string]*list.Element{}
	m.lru.Init()
	m.bytes = 0
	return nil
}

// Stats implements Store.
func (m *Memory) Stats(context.Context) (StoreStats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return StoreStats{Entries: int64(len(m.items)), Bytes: m.bytes, Evictions: m.evictions}, nil
}

// Close implements Store; the values are dropped.
func (m *Memory) Close() error { return m.Purge(context.Background()) }
