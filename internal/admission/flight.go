package admission

import (
	"time"

	"github.com/keel-run/keel/internal/window"
)

// newWindow returns a window of the last minute in twelve slots of slotLen,
// aligned to the Unix epoch.
func newWindow() window.Ring[float64] {
	return window.New[float64](windowSlots, slotLen, time.Unix(0, 0))
}

// flight holds the grant times of a target's calls in flight, oldest first,
// so that the age of its slow calls can be read. Calls are granted in time
// order and end in any order: an ended call's slot is cleared, and cleared
// slots at the front are dropped. It reuses its array, so tracking a call
// allocates nothing once the array has grown to the calls in flight.
type flight struct {
	at   []time.Time // from the call with seq base; zero: ended
	head int         // at[head] is the oldest slot kept
	base uint64      // seq of at[head]
	next uint64      // seq of the next call
}

// push adds a call granted at t (not before the last one) and returns its
// seq.
func (f *flight) push(t time.Time) uint64 {
	for f.head < len(f.at) && (f.at[f.head].IsZero() || t.Sub(f.at[f.head]) > flightHorizon) {
		f.head++
		f.base++
	}
	if f.head > 0 && f.head >= len(f.at)/2 {
		n := copy(f.at, f.at[f.head:])
		f.at = f.at[:n]
		f.head = 0
	}
	f.at = append(f.at, t)
	seq := f.next
	f.next++
	return seq
}

// end clears the slot of the call seq.
func (f *flight) end(seq uint64) {
	if seq < f.base || seq >= f.next {
		return
	}
	f.at[f.head+int(seq-f.base)] = time.Time{}
	for f.head < len(f.at) && f.at[f.head].IsZero() {
		f.head++
		f.base++
	}
}

// oldest returns the grant time of the k-th oldest call in flight at now
// (k ≥ 1), false when fewer than k are. Calls past flightHorizon do not
// count.
func (f *flight) oldest(k int, now time.Time) (time.Time, bool) {
	for _, t := range f.at[f.head:] {
		if t.IsZero() || now.Sub(t) > flightHorizon {
			continue
		}
		if k--; k == 0 {
			return t, true
		}
	}
	return time.Time{}, false
}
