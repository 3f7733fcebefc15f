package admission

import (
	"cmp"
	"testing"
	"time"
)

func TestFlight(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name  string
		grant []int // grant times, seconds after t0
		end   []int // indexes into grant of the calls that ended
		k     int
		now   int // seconds after t0; 0: 10
		want  int // seconds after t0; -1: none
	}{
		{name: "none in flight", k: 1, want: -1},
		{name: "the oldest", grant: []int{1, 2, 3}, k: 1, want: 1},
		{name: "the second oldest", grant: []int{1, 2, 3}, k: 2, want: 2},
		{name: "fewer than k", grant: []int{1, 2, 3}, k: 4, want: -1},
		{name: "the oldest ended", grant: []int{1, 2, 3}, end: []int{0}, k: 1, want: 2},
		{name: "one in the middle ended", grant: []int{1, 2, 3}, end: []int{1}, k: 2, want: 3},
		{name: "all ended", grant: []int{1, 2, 3}, end: []int{2, 0, 1}, k: 1, want: -1},
		{name: "ended twice", grant: []int{1, 2, 3}, end: []int{0, 0}, k: 2, want: 3},
		{name: "past the horizon: taken for leaked", grant: []int{0, 700}, k: 1, now: 700, want: 700},
		{name: "past the horizon with no call since", grant: []int{0, 50}, k: 1, now: 650, want: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f flight
			var seqs []uint64
			for _, s := range tt.grant {
				seqs = append(seqs, f.push(at(s), 1, 0))
			}
			for _, i := range tt.end {
				f.end(seqs[i])
			}
			now := cmp.Or(tt.now, 10)
			got, ok := f.oldest(tt.k, at(now))
			switch {
			case tt.want < 0 && ok:
				t.Errorf("oldest(%d) = %v, want none", tt.k, got)
			case tt.want >= 0 && (!ok || !got.Equal(at(tt.want))):
				t.Errorf("oldest(%d) = %v, %v; want %v", tt.k, got, ok, at(tt.want))
			}
		})
	}
}

// TestFlightReuses: calls granted and ended in any order keep the flight's
// array to about the calls in flight, and tracking them allocates nothing.
func TestFlightReuses(t *testing.T) {
	var f flight
	var live []uint64
	now := t0
	step := func() {
		now = now.Add(time.Millisecond)
		live = append(live, f.push(now, 1, 0))
		if len(live) > 50 {
			// End one from the middle and the oldest.
			f.end(live[25])
			f.end(live[0])
			live = append(live[1:25], live[26:]...)
		}
	}
	for range 10_000 {
		step()
	}
	if allocs := testing.AllocsPerRun(1000, step); allocs != 0 {
		t.Errorf("%v allocations per call tracked, want 0", allocs)
	}
	if len(f.at) > 4*len(live) {
		t.Errorf("array of %d slots for %d calls in flight", len(f.at), len(live))
	}
	// The call with seq n was granted (n+1) ms after t0.
	for _, k := range []int{1, 2, len(live)} {
		got, ok := f.oldest(k, now)
		if want := t0.Add(time.Duration(live[k-1]+1) * time.Millisecond); !ok || !got.Equal(want) {
			t.Errorf("oldest(%d) = %v, %v; want %v", k, got, ok, want)
		}
	}
}

// TestFlightYoung: young sums the holds of the calls in flight granted
// less than d ago, ended calls left out.
func TestFlightYoung(t *testing.T) {
	var f flight
	t0 := time.Unix(1000, 0)
	seqs := make([]uint64, 4)
	for i, h := range []float64{100, 200, 400, 800} { // granted at 0, 1, 2, 3 s
		seqs[i] = f.push(t0.Add(time.Duration(i)*time.Second), h, 0)
	}
	f.end(seqs[2])
	tests := []struct {
		d    time.Duration
		want float64
	}{
		{d: 500 * time.Millisecond, want: 0},
		{d: 1500 * time.Millisecond, want: 800},
		{d: 2500 * time.Millisecond, want: 800}, // the 400 ended
		{d: 3500 * time.Millisecond, want: 1000},
		{d: time.Hour, want: 1100},
	}
	for _, tt := range tests {
		if got := f.young(t0.Add(3500*time.Millisecond), tt.d); got != tt.want {
			t.Errorf("young(%v) = %v, want %v", tt.d, got, tt.want)
		}
	}
}

// TestFlightPassedBefore: the latest call in flight granted before a given
// one and in flight at least the wait, with the debits at its grant.
func TestFlightPassedBefore(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name   string
		grant  []int // grant times, seconds after t0; call i's debits are 10 × i
		end    []int // indexes into grant of the calls that ended
		before int   // index into grant of the call looked before (len(grant): a call not granted yet)
		want   int   // index into grant; -1: none
	}{
		{name: "none in flight", before: 0, want: -1},
		{name: "the latest old enough", grant: []int{1, 2, 3, 9}, before: 4, want: 2},
		{name: "before the given call", grant: []int{1, 2, 3, 4}, before: 2, want: 1},
		{name: "an ended call is skipped", grant: []int{1, 2, 3}, end: []int{2}, before: 3, want: 1},
		{name: "all too young", grant: []int{8, 9}, before: 2, want: -1},
		{name: "after the oldest ended (head and base moved)", grant: []int{1, 2, 3, 4, 5}, end: []int{0, 1}, before: 4, want: 3},
		{name: "the given call ended before", grant: []int{1, 2, 3}, end: []int{0, 1}, before: 1, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f flight
			var seqs []uint64
			for i, s := range tt.grant {
				seqs = append(seqs, f.push(at(s), 1, float64(10*i)))
			}
			for _, i := range tt.end {
				f.end(seqs[i])
			}
			before := f.next
			if tt.before < len(seqs) {
				before = seqs[tt.before]
			}
			seq, debits, ok := f.passedBefore(before, at(10), 5*time.Second)
			switch {
			case tt.want < 0 && ok:
				t.Errorf("passedBefore = %d, %v; want none", seq, debits)
			case tt.want >= 0 && (!ok || seq != seqs[tt.want] || debits != float64(10*tt.want)):
				t.Errorf("passedBefore = %d, %v, %v; want %d, %d", seq, debits, ok, seqs[tt.want], 10*tt.want)
			}
		})
	}
}
