package emulator

import "sync"

// flights counts the requests being served, and tells when none is. Unlike
// a sync.WaitGroup, a request may start while another goroutine waits for
// the count to reach zero (Running.Close, while clients still send).
type flights struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n reaches zero; nil when nobody waits
}

func (f *flights) enter() {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
}

func (f *flights) exit() {
	f.mu.Lock()
	if f.n--; f.n == 0 && f.idle != nil {
		close(f.idle)
		f.idle = nil
	}
	f.mu.Unlock()
}

// none returns a channel closed once no request is being served: at once
// if none is now.
func (f *flights) none() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	if f.idle == nil {
		f.idle = make(chan struct{})
	}
	return f.idle
}
