package admission

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// TestLargeCallsJudgeTheQueue: when calls of its class already wait, a call
// entering the queue is judged as if it held what the target's large calls
// hold, so a small call is refused when a large one would be; into an empty
// queue (or one of Batch calls only, for an Interactive call), or with
// SmallFirst, it is judged by its own size.
func TestLargeCallsJudgeTheQueue(t *testing.T) {
	tests := []struct {
		name       string
		smallFirst bool
		queued     bool
		firstBatch bool // the call already queued is a Batch call
		refused    bool
	}{
		{name: "behind a queue: judged as large", queued: true, refused: true},
		{name: "behind a queue, SmallFirst", queued: true, smallFirst: true},
		{name: "empty queue: its own size"},
		{name: "Interactive with only Batch calls queued: its own size", queued: true, firstBatch: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			g, clk := newBubbleGov(t, Options{Default: Quota{TokensPerMinute: 60000}, SmallFirst: tt.smallFirst})
			// The target's calls: mostly small, one in ten holding 20,000.
			for i := range 100 {
				m := 100
				if i%10 == 0 {
					m = 20000
				}
				tk := mustTry(t, g, haiku, Estimate{MaxTokens: m})
				tk.Cancel()
			}
			mustTry(t, g, haiku, Estimate{MaxTokens: 60000}) // empty the bucket: 1,000 tokens a second
			ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
			defer cancel()
			ch := make(chan result, 2)
			if tt.queued {
				if tt.firstBatch {
					admitAsync(ctx, g, haiku, Estimate{MaxTokens: 2000}, Batch, "first", ch)
					waitQueued(t, g, haiku, 0, 1)
				} else {
					admitAsync(ctx, g, haiku, Estimate{MaxTokens: 2000}, Interactive, "first", ch)
					waitQueued(t, g, haiku, 1, 0)
				}
			}
			// 2,000 + 100 tokens fit in 2.1 s; as a large call (about 20,000
			// tokens) behind the first, in 22 s: past the 12 s deadline.
			admitAsync(ctx, g, haiku, Estimate{MaxTokens: 100}, Interactive, "small", ch)
			if tt.refused {
				r := recv(t, ch)
				if r.name != "small" || !errors.Is(r.err, ErrWouldExceedDeadline) {
					t.Fatalf("%s: Admit = %v, want small refused", r.name, r.err)
				}
				return
			}
			n := 1
			if tt.queued {
				n = 2
			}
			if tt.firstBatch {
				waitQueued(t, g, haiku, 1, 1)
			} else {
				waitQueued(t, g, haiku, n, 0)
			}
			clk.Advance(3 * time.Second)
			for range n {
				if r := recv(t, ch); r.err != nil {
					t.Fatalf("%s: Admit = %v, want admitted", r.name, r.err)
				}
			}
		}))
	}
}

// TestSlowRepliesJudgeTheQueue: when calls already wait, a call entering
// the queue keeps the time the target's slow replies take before its
// deadline, even if its max tokens would cut its own reply short; once
// queued, or with SmallFirst, its own reply time counts.
func TestSlowRepliesJudgeTheQueue(t *testing.T) {
	for _, smallFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("SmallFirst=%v", smallFirst), bubble(func(t *testing.T) {
			// QueueTarget out of the way: the calls taught below count as
			// an overload.
			g, clk := newBubbleGov(t, Options{Default: Quota{TokensPerMinute: 60000}, SmallFirst: smallFirst, QueueTarget: time.Hour})
			// Replies of 1 s + ~10 ms per token, each settling what it
			// held: 100 tokens in 2 s, 800 in 9 s.
			for range 100 {
				teach(t, g, clk, 1, 101, 100, 2*time.Second)
				teach(t, g, clk, 1, 801, 800, 9*time.Second)
			}
			spend(t, g, haiku, 60000) // empty the bucket: 1,000 tokens a second
			ctx, cancel := context.WithTimeout(context.Background(), 10500*time.Millisecond)
			defer cancel()
			ch := make(chan result, 2)
			// 1,000 tokens fit in 1 s; a reply may take 9 s: queued.
			admitAsync(ctx, g, haiku, Estimate{MaxTokens: 1000}, Interactive, "first", ch)
			waitQueued(t, g, haiku, 1, 0)
			// 100 max tokens: its own reply takes about 3 s, but judged as
			// the large calls (about 800 tokens, 9 s replies) behind the
			// first, it would fit in 1.8 s and leave 8.7 s for the reply.
			admitAsync(ctx, g, haiku, Estimate{MaxTokens: 100}, Interactive, "small", ch)
			if !smallFirst {
				r := recv(t, ch)
				var e *Error
				if r.name != "small" || !errors.As(r.err, &e) || e.Reply < 8*time.Second {
					t.Fatalf("%s: Admit = %v, want small refused for a 9 s reply", r.name, r.err)
				}
				return
			}
			waitQueued(t, g, haiku, 2, 0)
			// The first fits after 1 s, by when it must be granted to keep
			// 9.35 s for its reply; the small one 0.1 s later.
			for _, d := range []time.Duration{time.Second, 100 * time.Millisecond} {
				clk.Advance(d)
				if r := recv(t, ch); r.err != nil {
					t.Fatalf("%s: Admit = %v, want admitted", r.name, r.err)
				}
			}
		}))
	}
}

// sharedStore is a MemStore that Governors in several "processes" share,
// each of which may expect share of each limit while all of them ask for
// more than it (see Sharer).
type sharedStore struct {
	*MemStore
	share float64
}

func (s sharedStore) Share() float64 { return s.share }

// TestQueueTargetShared: Governors sharing one Store judge overload by
// their own offered load against their share of the limit (Sharer), as
// their calls get about that share of the refill while the others ask for
// more than theirs. A replica asked for 0.7x the quota while another
// replica empties the bucket is overloaded when it is one of two, and
// sheds a call that would wait past QueueTarget; alone, it is not.
func TestQueueTargetShared(t *testing.T) {
	tests := []struct {
		name  string
		share float64
		shed  bool
	}{
		{name: "one of two: 1.4x its share, refused", share: 0.5, shed: true},
		{name: "alone: 0.7x the quota, queued", share: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			store := sharedStore{MemStore: &MemStore{}, share: tt.share}
			o := Options{Default: Quota{TokensPerMinute: 60000}, Store: store}
			g, clk := newBubbleGov(t, o)
			other, _ := newBubbleGov(t, o)
			spend(t, g, haiku, 1) // first seen now
			clk.Advance(10 * time.Second)
			spend(t, other, haiku, 60000) // the other replica empties the shared bucket
			ch := make(chan result, 2)
			// 1,000 tokens a second: the first fits in 3.5 s, the second in
			// 7 s. This replica was asked for 7,001 tokens in 10 s: 42,000 a
			// minute, 0.7x the quota.
			admitAsync(context.Background(), g, haiku, Estimate{MaxTokens: 3500}, Interactive, "first", ch)
			waitQueued(t, g, haiku, 1, 0)
			admitAsync(context.Background(), g, haiku, Estimate{MaxTokens: 3500}, Interactive, "second", ch)
			if tt.shed {
				r := recv(t, ch)
				var e *Error
				if r.name != "second" || !errors.Is(r.err, ErrOverloaded) || !errors.As(r.err, &e) {
					t.Fatalf("%s: Admit = %v, want the second refused with ErrOverloaded", r.name, r.err)
				}
				if want := "this process's calls asked for 1.4x its share (0.5) of the quota"; e.Share != 0.5 || !strings.Contains(e.Error(), want) {
					t.Errorf("error %v (Share %v); want Share 0.5 and %q", e, e.Share, want)
				}
				clk.Advance(4 * time.Second)
				if r := recv(t, ch); r.err != nil {
					t.Fatalf("%s: Admit = %v, want admitted", r.name, r.err)
				}
				return
			}
			waitQueued(t, g, haiku, 2, 0)
			for range 2 {
				clk.Advance(4 * time.Second)
				if r := recv(t, ch); r.err != nil {
					t.Fatalf("%s: Admit = %v, want admitted", r.name, r.err)
				}
			}
		}))
	}
}

// raceStore is a MemStore where another process takes tokens right after
// this one reads the levels, once: between a Governor's read and its take.
type raceStore struct {
	*MemStore
	other float64 // what the other process takes; 0 once it has
}

func (s *raceStore) Level(ctx context.Context, key Target, now time.Time) (Buckets, error) {
	b, err := s.MemStore.Level(ctx, key, now)
	if s.other > 0 {
		_, _ = s.MemStore.Take(ctx, key, now, s.other, Lease{})
		s.other = 0
	}
	return b, err
}

// TestSharedRoomTakenFirst: a call granted on room the Governor read is
// taken only if the Store still has it; when another process sharing the
// Store took it in between, the call waits for the refill instead of
// leaving a debt Bedrock would meet with a throttle, and a Governor still
// warming up stops lending on a full start's bucket (another process is
// spending it).
func TestSharedRoomTakenFirst(t *testing.T) {
	tests := []struct {
		name    string
		warming bool    // the Governor starts with a second of quota and lends on a full start's
		other   float64 // what another process takes between the read and the take
	}{
		{name: "nobody else: granted at once"},
		{name: "room taken: waits", other: 1000},
		{name: "room taken while warming up: waits, lends no more", warming: true, other: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			store := &raceStore{MemStore: &MemStore{}}
			o := Options{Default: Quota{TokensPerMinute: 60000}, Store: store, Rand: func() float64 { return 0.5 }}
			var g *Governor
			if tt.warming {
				o.Clock = clock.Real{}
				var err error
				if g, err = New(o); err != nil { // a second of quota: 1,000 tokens
					t.Fatal(err)
				}
				spend(t, g, haiku, 1) // seen; what it cost comes back as the warm-up's credit
			} else {
				g, _ = newBubbleGov(t, o)
				spend(t, g, haiku, 59000) // 1,000 tokens left
			}
			left := stats(t, g, haiku).Available
			if left < 999 || left > 1000 {
				t.Fatalf("the bucket holds %d; want 1,000", left)
			}
			store.other = tt.other
			ch := make(chan result, 1)
			admitAsync(context.Background(), g, haiku, Estimate{MaxTokens: int(left)}, Interactive, "call", ch)
			if tt.other == 0 {
				if r := recv(t, ch); r.err != nil {
					t.Fatalf("Admit = %v; want granted at once", r.err)
				}
				return
			}
			waitQueued(t, g, haiku, 1, 0)
			if s := stats(t, g, haiku); s.Available < -1 {
				t.Fatalf("the bucket holds %d; the call was taken without room", s.Available)
			}
			time.Sleep(time.Second) // 1,000 tokens a second
			if r := recv(t, ch); r.err != nil || r.tk.Waited() < 999*time.Millisecond {
				t.Fatalf("Admit = %v after %v; want granted after 1s", r.err, r.tk.Waited())
			}
		}))
	}
}
