package emulator

import (
	"sync"
	"testing"
)

// TestFlights: none is closed once every request that entered has exited,
// including requests that enter while someone waits (the race detector
// checks that this is safe, as it is not with a sync.WaitGroup).
func TestFlights(t *testing.T) {
	var f flights
	select {
	case <-f.none():
	default:
		t.Fatal("none is not closed with no request")
	}
	f.enter()
	idle := f.none()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { f.enter(); f.exit() })
	}
	wg.Wait()
	select {
	case <-idle:
		t.Fatal("none closed while a request is still served")
	default:
	}
	f.exit()
	select {
	case <-idle:
	default:
		t.Fatal("none not closed when the last request exited")
	}
}
