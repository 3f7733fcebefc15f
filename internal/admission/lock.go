package admission

import (
	"context"
	"sync"
)

// ctxLock is a mutex whose Lock can give up when a context ends: a
// limiter's lock is held across its Store's round trips (to Redis, when
// shared), so a call waiting for it must still leave at its deadline. Its
// zero value is unlocked; it must not be copied after first use.
type ctxLock struct {
	once sync.Once
	ch   chan struct{} // holds one token while locked
}

func (m *ctxLock) c() chan struct{} {
	m.once.Do(func() { m.ch = make(chan struct{}, 1) })
	return m.ch
}

// Lock waits for the lock.
func (m *ctxLock) Lock() { m.c() <- struct{}{} }

// LockContext waits for the lock until ctx ends, and then returns its
// error without the lock.
func (m *ctxLock) LockContext(ctx context.Context) error {
	c := m.c()
	select {
	case c <- struct{}{}:
		return nil
	default:
	}
	select {
	case c <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unlock releases the lock; it panics when the lock is not held.
func (m *ctxLock) Unlock() {
	select {
	case <-m.c():
	default:
		panic("admission: unlock of an unlocked limiter")
	}
}
