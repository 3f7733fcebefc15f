package bench

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keel-run/keel/internal/redisx/redisproc"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

// hungBound is how far past its deadline a call may end and still count as
// given back in time: the SDK returns once the context ends, and a loaded
// machine may take some scheduling to see it; a call held by a dead Redis
// would be held for its round trips' timeouts over and over, or for good.
const hungBound = time.Second

// TestRunReplicasShort runs keel-redis and keel-local with two replicas
// each for 6 s (model latency at 1/20), the local Redis killed for 2 s in
// the middle, and checks the result's shape: every call counted once,
// in the whole and in the phases; the meter's attempts split across the
// phases; no call held past its deadline; the table and JSON show it.
func TestRunReplicasShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 10 s")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := Config{Quota: 3_000_000, Duration: 6 * time.Second, Speed: 0.05, Deadline: 3 * time.Second, Seed: 1,
		Replicas: 2, RedisOutage: 2 * time.Second}
	res, err := Run(context.Background(), cfg)
	switch {
	case errors.Is(err, redisproc.ErrNotInstalled) && !redisproc.InCI():
		t.Skip("redis-server not found: install Debian's package redis-server (apt-get install redis-server) to run this test")
	case err != nil:
		t.Fatal(err)
	}
	if res.Replicas != 2 || res.Redis != LocalRedis || res.RedisOutage == nil || len(res.Contenders) != 2 ||
		res.Contenders[0].Name != "keel-redis" || res.Contenders[1].Name != "keel-local" {
		t.Fatalf("result %+v", res)
	}
	// Killed at (6 s − 2 s) / 2, back 2 s later: a restart takes some
	// milliseconds.
	if w := *res.RedisOutage; w.Killed < 2*time.Second || w.Killed > 2500*time.Millisecond ||
		w.Restarted-w.Killed < 2*time.Second || w.Restarted-w.Killed > 3*time.Second {
		t.Errorf("Redis away from %s to %s; want from 2s for 2s", w.Killed, w.Restarted)
	}
	// keel-redis's instances each lost Redis for 2 s (every Redis round
	// trip failing, the heartbeat's every 2 s too) and had it back by the
	// end; keel-local's have none.
	if h := res.Contenders[0].Shared; h == nil || h.Episodes < 1 || h.Failures < h.Episodes || h.Replicas < 1 || h.Replicas > 2 || h.Degraded != 0 {
		t.Errorf("keel-redis's connections to Redis: %+v; want an episode or more, one or two replicas seen, none degraded at the end", h)
	}
	if h := res.Contenders[1].Shared; h != nil {
		t.Errorf("keel-local has connections to Redis: %+v", h)
	}
	for _, o := range res.Contenders {
		failures := 0
		for _, n := range o.Failures {
			failures += n
		}
		if o.Replicas != 2 || o.Offered != res.Calls || o.Completed+o.Failed != o.Offered || failures != o.Failed || o.Completed == 0 ||
			o.Throttled > o.Attempts || o.Goodput <= 0 {
			t.Errorf("%s: %d replicas, offered %d of %d calls, completed %d + failed %d (%d by cause), %d throttled of %d attempts, goodput %.2f",
				o.Name, o.Replicas, o.Offered, res.Calls, o.Completed, o.Failed, failures, o.Throttled, o.Attempts, o.Goodput)
		}
		if o.PastDeadline > hungBound {
			t.Errorf("%s: a call ended %s past its deadline", o.Name, o.PastDeadline)
		}
		if len(o.Phases) != 3 {
			t.Fatalf("%s: phases %+v", o.Name, o.Phases)
		}
		var calls, completed int
		var attempts, throttled int64
		for i, p := range o.Phases {
			t.Logf("%s %s %s-%s: %d calls, %d completed, goodput %.2f, %d of %d attempts throttled, %s past a deadline, failed %v",
				o.Name, p.Name, p.From, p.To, p.Calls, p.Completed, p.Goodput, p.Throttled, p.Attempts, p.PastDeadline, p.Failures)
			failures := 0
			for _, n := range p.Failures {
				failures += n
			}
			if p.Name != []string{"before", "during", "after"}[i] || p.Completed+p.Failed != p.Calls || failures != p.Failed ||
				p.Goodput < 0 || p.Throttled > p.Attempts || p.PastDeadline > o.PastDeadline || (i > 0 && p.From != o.Phases[i-1].To) {
				t.Errorf("%s: phase %d %+v", o.Name, i, p)
			}
			calls, completed, attempts, throttled = calls+p.Calls, completed+p.Completed, attempts+p.Attempts, throttled+p.Throttled
		}
		if calls != o.Offered || completed != o.Completed || attempts != o.Attempts || throttled != o.Throttled {
			t.Errorf("%s: the phases hold %d calls (%d completed), %d attempts (%d throttled); the whole run %d (%d), %d (%d)",
				o.Name, calls, completed, attempts, throttled, o.Offered, o.Completed, o.Attempts, o.Throttled)
		}
	}

	checkTable(t, res, "keel-redis and keel-local: 2 keel instances each", "Redis killed at 2", "keel-redis  before",
		"keel-local  after", "the most a call ran past its deadline: keel-redis ", "keel-redis's connections to Redis: ")
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Replicas int    `json:"replicas"`
		Redis    string `json:"redis"`
		Outage   *struct {
			Killed    float64 `json:"killedSeconds"`
			Restarted float64 `json:"restartedSeconds"`
		} `json:"redisOutage"`
		Contenders []struct {
			Replicas int `json:"replicas"`
			Shared   *struct {
				Episodes *uint64 `json:"episodes"`
			} `json:"shared"`
			Past   *float64 `json:"pastDeadlineMs"`
			Phases []struct {
				Phase string   `json:"phase"`
				From  *float64 `json:"fromSeconds"`
				Past  *float64 `json:"pastDeadlineMs"`
			} `json:"redisOutagePhases"`
		} `json:"contenders"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Replicas != 2 || back.Redis != "local" || back.Outage == nil || back.Outage.Killed < 2 || len(back.Contenders) != 2 ||
		back.Contenders[0].Replicas != 2 || back.Contenders[0].Shared == nil || back.Contenders[0].Shared.Episodes == nil ||
		back.Contenders[1].Shared != nil || back.Contenders[0].Past == nil || len(back.Contenders[0].Phases) != 3 ||
		back.Contenders[0].Phases[2].Phase != "after" || back.Contenders[0].Phases[2].From == nil || back.Contenders[0].Phases[2].Past == nil {
		t.Errorf("JSON %s", b)
	}
}

// TestOpenRedis: a Redis named by URL must answer before the run starts,
// and each contender that shares it gets keys of its own run and name.
func TestOpenRedis(t *testing.T) {
	srv := redistest.Start(t)
	rs, err := openRedis(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.stop()
	cs, err := lookupContenders([]string{"keel-redis", "keel-local"})
	if err != nil {
		t.Fatal(err)
	}
	redisC, localC := cs[0], cs[1]
	o := rs.options(redisC)
	if o.URL != srv.URL || !strings.HasPrefix(o.Prefix, "keel-bench:") ||
		!strings.HasSuffix(o.Prefix, ":keel-redis:") || rs.options(localC).URL != "" || rs.String() != srv.Addr {
		t.Fatalf("options %+v, keel-local's %+v, shown as %q", o, rs.options(localC), rs.String())
	}
	again, err := openRedis(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if again.options(redisC).Prefix == o.Prefix {
		t.Errorf("two runs share the prefix %q", o.Prefix)
	}

	srv.Kill()
	start := time.Now()
	if _, err := openRedis(context.Background(), srv.URL); err == nil || !strings.Contains(err.Error(), "no PONG within") {
		t.Errorf("a Redis that is not there: %v", err)
	}
	if d := time.Since(start); d > redisAnswerWithin+time.Second {
		t.Errorf("a Redis that is not there took %s to fail", d)
	}
	var none *sharedRedis
	if none.options(redisC).URL != "" || none.String() != "" {
		t.Error("no Redis gives options")
	}
	none.stop()
}
