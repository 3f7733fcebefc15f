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

// flight holds the grant times and holds of a target's calls in flight,
// oldest first, so that the age of its slow calls, and what its youngest
// calls hold, can be read. Calls are granted in time
// order and end in any order: an ended call's slot is cleared, and cleared
// slots at the front are dropped. It reuses its array, so tracking a call
// allocates nothing once the array has grown to the calls in flight.
type flight struct {
	at   []time.Time // from the call with seq base; zero: ended
	hold []float64   // the calls' holds, alongside at
	deb  []float64   // the target's debits when each call was granted (see limiter.debits), alongside at
	head int         // at[head] is the oldest slot kept
	base uint64      // seq of at[head]
	next uint64      // seq of the next call
}

// push adds a call granted at t (not before the last one) holding hold
// tokens, when the target's debits stood at debits, and returns its seq.
func (f *flight) push(t time.Time, hold, debits float64) uint64 {
	for f.head < len(f.at) && (f.at[f.head].IsZero() || t.Sub(f.at[f.head]) > flightHorizon) {
		f.head++
		f.base++
	}
	if f.head > 0 && f.head >= len(f.at)/2 {
		n := copy(f.at, f.at[f.head:])
		copy(f.hold, f.hold[f.head:])
		copy(f.deb, f.deb[f.head:])
		f.at, f.hold, f.deb = f.at[:n], f.hold[:n], f.deb[:n]
		f.head = 0
	}
	f.at = append(f.at, t)
	f.hold = append(f.hold, hold)
	f.deb = append(f.deb, debits)
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

// young returns what the calls in flight granted less than d before now
// hold.
func (f *flight) young(now time.Time, d time.Duration) float64 {
	_, hold, _ := f.youngest(now, d, len(f.at))
	return hold
}

// youngest returns how many calls in flight were granted less than d before
// now, what they hold, and when the oldest of them was granted, looking at
// no more than the latest scan slots (ended calls' included).
func (f *flight) youngest(now time.Time, d time.Duration, scan int) (n int, hold float64, oldest time.Time) {
	for i := len(f.at) - 1; i >= max(f.head, len(f.at)-scan); i-- {
		t := f.at[i]
		if t.IsZero() {
			continue
		}
		if now.Sub(t) >= d {
			break // granted in time order: the older ones are older
		}
		n++
		hold += f.hold[i]
		oldest = t
	}
	return n, hold, oldest
}

// busy reports whether a call is in flight at now, leaked ones (past
// flightHorizon) left out.
func (f *flight) busy(now time.Time) bool {
	for _, t := range f.at[f.head:] {
		if !t.IsZero() && now.Sub(t) <= flightHorizon {
			return true
		}
	}
	return false
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

// oldestFrom returns the grant time and the hold of the oldest call in
// flight granted at or after the call seq, false when none is.
func (f *flight) oldestFrom(seq uint64) (time.Time, float64, bool) {
	i := f.head
	if seq > f.base {
		i += int(seq - f.base)
	}
	for ; i < len(f.at); i++ {
		if at := f.at[i]; !at.IsZero() {
			return at, f.hold[i], true
		}
	}
	return time.Time{}, 0, false
}

// grantedWith returns the first call granted at the instant at among the
// calls in flight before the call seq, looking at no more than startScan
// of them, or seq + 1 when none was: calls that one dispatch grants share
// their grant time.
func (f *flight) grantedWith(seq uint64, at time.Time) uint64 {
	first := seq + 1
	for s := min(seq, f.next); s > f.base && seq-s < startScan; s-- {
		t := f.at[f.head+int(s-1-f.base)]
		if t.IsZero() {
			continue // ended: the calls around it tell
		}
		if !t.Equal(at) {
			break
		}
		first = s - 1
	}
	return first
}

// passedBefore returns the seq of the latest call in flight granted before
// the call seq that has been in flight at least wait (it got past Bedrock's
// quota check), and the debits when it was granted; false when none has.
func (f *flight) passedBefore(seq uint64, now time.Time, wait time.Duration) (uint64, float64, bool) {
	end := len(f.at)
	if seq < f.next {
		end = f.head + int(max(seq, f.base)-f.base)
	}
	for i := end - 1; i >= f.head; i-- {
		if at := f.at[i]; !at.IsZero() && now.Sub(at) >= wait {
			return f.base + uint64(i-f.head), f.deb[i], true
		}
	}
	return 0, 0, false
}
