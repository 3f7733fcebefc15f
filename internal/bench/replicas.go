package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/emulator/quota"
	"github.com/keel-run/keel/internal/redisx/redisproc"
)

// LocalRedis is the Config.Redis that starts a redis-server for the run.
const LocalRedis = "local"

// redisAnswerWithin bounds the first PING of a Redis named by URL: a
// Redis that does not answer fails the run before it starts rather than
// measuring keel-redis without its Redis.
const redisAnswerWithin = 2 * time.Second

// checkRedis checks cfg's Redis settings against the contenders cs and
// returns the Redis to use: "" when no contender shares one, LocalRedis
// when cfg names none.
func checkRedis(cfg Config, cs []Contender) (string, error) {
	shares := slices.ContainsFunc(cs, func(c Contender) bool { return c.sharesRedis })
	r, d := cfg.Redis, cfg.RedisOutage
	switch {
	case d < 0:
		return "", fmt.Errorf("bench: redis outage %s: want 0 (none) or more", d)
	case !shares && r != "":
		// Not quoted: a URL may hold a password.
		return "", errors.New("bench: redis: set, but contender keel-redis, the one that shares state through it, does not run")
	case !shares && d > 0:
		return "", fmt.Errorf("bench: redis outage %s: needs contender keel-redis", d)
	case !shares:
		return "", nil
	case r == "":
		r = LocalRedis
	case r != LocalRedis:
		if _, err := redis.ParseURL(r); err != nil {
			return "", errors.New("bench: redis: want local or a Redis URL such as redis://127.0.0.1:6379 (rediss:// for TLS)")
		}
	}
	switch {
	case d > 0 && r != LocalRedis:
		return "", fmt.Errorf("bench: redis outage %s: needs the local Redis: the bench kills and restarts only a redis-server it started", d)
	case d > cfg.Duration/2:
		return "", fmt.Errorf("bench: redis outage %s: want at most half the duration %s, so that calls arrive before and after it", d, cfg.Duration)
	}
	return r, nil
}

// sharedRedis is the Redis of a run's keel-redis replicas. A nil
// *sharedRedis is no Redis: its methods do nothing.
type sharedRedis struct {
	url  string
	addr string // host:port, what the result shows (never the password)
	run  string // in every key prefix of the run
	// proc is the redis-server the run started (Config.Redis local), in
	// dir; nil for a Redis named by URL.
	proc *redisproc.Proc
	dir  string
}

// openRedis starts the local redis-server or checks that the Redis at r's
// URL answers; nil for r empty.
func openRedis(ctx context.Context, r string) (*sharedRedis, error) {
	if r == "" {
		return nil, nil
	}
	rs := &sharedRedis{run: strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.Itoa(os.Getpid())}
	if r == LocalRedis {
		dir, err := os.MkdirTemp("", "keel-bench-redis-")
		if err != nil {
			return nil, fmt.Errorf("bench: a directory for redis-server: %w", err)
		}
		p, err := redisproc.Start(dir, "")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: keel-redis needs a Redis: %w", err)
		}
		rs.proc, rs.dir, rs.url, rs.addr = p, dir, p.URL, p.Addr
		return rs, nil
	}
	o, err := redis.ParseURL(r)
	if err != nil { // checkRedis parsed it
		return nil, errors.New("bench: redis: not a Redis URL")
	}
	rs.url, rs.addr = r, o.Addr
	o.MaxRetries = -1
	rdb := redis.NewClient(o)
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, redisAnswerWithin)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		return nil, fmt.Errorf("bench: the Redis at %s: no PONG within %s: %v", rs.addr, redisAnswerWithin, err)
	}
	return rs, nil
}

// options returns the Redis options of c's replicas: a key prefix of the
// run and the contender's own, so that no two runs or contenders share a
// key; zero for a contender that shares nothing.
func (rs *sharedRedis) options(c Contender) keel.RedisOptions {
	if rs == nil || !c.sharesRedis {
		return keel.RedisOptions{}
	}
	return keel.RedisOptions{URL: rs.url, Prefix: "keel-bench:" + rs.run + ":" + c.Name + ":"}
}

// String is where the Redis is, for the result: "local" or host:port.
func (rs *sharedRedis) String() string {
	switch {
	case rs == nil:
		return ""
	case rs.proc != nil:
		return LocalRedis
	}
	return rs.addr
}

// stop stops the local redis-server and removes its directory. A Redis
// named by URL keeps the run's keys, which expire when idle
// (redisx.IdleTTL).
func (rs *sharedRedis) stop() {
	if rs == nil || rs.proc == nil {
		return
	}
	rs.proc.Kill()
	os.RemoveAll(rs.dir)
}

// OutageWindow is when the local Redis was away, after the run's start.
type OutageWindow struct {
	Killed, Restarted time.Duration
}

// MarshalJSON writes the times in seconds.
func (w OutageWindow) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Killed    float64 `json:"killedSeconds"`
		Restarted float64 `json:"restartedSeconds"`
	}{w.Killed.Seconds(), w.Restarted.Seconds()})
}

// outage kills the local redis-server for d in the middle of the arrivals
// (which last duration from start), noting each arena's meter at the kill
// and at the restart, then starts it again, empty. It returns when Redis is
// back, or with a nil window when ctx ends first.
func (rs *sharedRedis) outage(ctx context.Context, start time.Time, duration, d time.Duration, arenas []*arena) (*OutageWindow, error) {
	note := func(i int) error {
		for _, a := range arenas {
			u, err := a.usage()
			if err != nil {
				return err
			}
			a.outageMarks[i] = u
		}
		return nil
	}
	killAt := (duration - d) / 2
	if !sleepUntil(ctx, start.Add(killAt)) {
		return nil, nil
	}
	if err := note(0); err != nil {
		return nil, err
	}
	rs.proc.Kill()
	w := &OutageWindow{Killed: time.Since(start)}
	if !sleepUntil(ctx, start.Add(killAt+d)) {
		return nil, nil
	}
	if err := note(1); err != nil {
		return nil, err
	}
	err := rs.proc.Restart()
	w.Restarted = time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("bench: starting redis-server again after the outage: %w", err)
	}
	return w, nil
}

// sleepUntil waits for t; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// RedisPhase is one contender's measures in one phase of a Redis outage:
// before it, during it, after it.
type RedisPhase struct {
	Name string `json:"phase"`
	// From and To bound the phase, after the run's start: the calls that
	// arrived in it, and the quota meter's attempts and throttles in it
	// (after's ends with the run).
	From, To time.Duration `json:"-"`
	// Calls arrived in the phase; Completed and Failed split them, and
	// Failures counts the failed by cause, as Outcome's do.
	Calls     int            `json:"calls"`
	Completed int            `json:"completed"`
	Failed    int            `json:"failed"`
	Failures  map[string]int `json:"failures"`
	// Goodput is the completed work of the calls that ended in the
	// phase, per minute, ÷ the quota. Before's is counted from the end of
	// the warm-up when the warm-up ends before the outage.
	Goodput float64 `json:"goodput"`
	// Attempts and Throttled are the quota meter's, in the phase.
	Attempts        int64   `json:"attempts"`
	Throttled       int64   `json:"throttled"`
	ThrottlesPer100 float64 `json:"throttlesPer100Attempts"`
	// PastDeadline is the most a call of the phase ran past its
	// deadline, as Outcome's.
	PastDeadline time.Duration `json:"-"`
}

// MarshalJSON writes the bounds in seconds and PastDeadline in
// milliseconds.
func (p RedisPhase) MarshalJSON() ([]byte, error) {
	type plain RedisPhase
	return json.Marshal(struct {
		plain
		From         float64  `json:"fromSeconds"`
		To           float64  `json:"toSeconds"`
		PastDeadline *float64 `json:"pastDeadlineMs"`
	}{plain(p), p.From.Seconds(), p.To.Seconds(), ms(p.PastDeadline, true)})
}

// phases splits what the arena's calls did at the outage w: the calls by
// arrival, the meter's counts at the kill and restart, the completed work
// by when it ended.
func (a *arena) phases(cfg Config, calls []Call, start time.Time, w OutageWindow) []RedisPhase {
	final, _ := a.usage()
	counts := []quota.Usage{a.base, a.outageMarks[0], a.outageMarks[1], final}
	ps := []RedisPhase{{Name: "before", To: w.Killed}, {Name: "during", From: w.Killed, To: w.Restarted},
		{Name: "after", From: w.Restarted, To: cfg.Duration}}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range ps {
		p := &ps[i]
		p.Failures = map[string]int{}
		p.Attempts = counts[i+1].Requests - counts[i].Requests
		p.Throttled = counts[i+1].Throttled - counts[i].Throttled
		if p.Attempts > 0 {
			p.ThrottlesPer100 = 100 * float64(p.Throttled) / float64(p.Attempts)
		}
		from := p.From
		if i == 0 && cfg.Warmup < p.To {
			from = cfg.Warmup
		}
		var work int64
		for j, r := range a.results {
			if end := r.end.Sub(start); r.ok && end >= from && end < p.To {
				work += int64(calls[j].Cost)
			}
			if at := calls[j].At; at < p.From || at >= p.To {
				continue
			}
			p.Calls++
			switch {
			case r.ok:
				p.Completed++
			case r.done:
				p.Failed++
				p.Failures[r.failure]++
			default:
				p.Failed++
				p.Failures["not sent"]++
			}
			if r.done {
				p.PastDeadline = max(p.PastDeadline, r.latency-cfg.Deadline)
			}
		}
		if span := p.To - from; span > 0 {
			p.Goodput = float64(work) / span.Minutes() / float64(cfg.Quota)
		}
	}
	return ps
}

// SharedHealth sums what a contender's instances' connections to Redis
// went through (keel.SharedStats).
type SharedHealth struct {
	// Failures are the round trips to Redis that failed, Episodes the
	// times an instance found Redis unreachable: all instances together.
	Failures uint64 `json:"failedRoundTrips"`
	Episodes uint64 `json:"episodes"`
	// Replicas is the most processes an instance saw alive at its last
	// heartbeat; Degraded the instances that were still without Redis at
	// the end.
	Replicas int `json:"replicasSeen"`
	Degraded int `json:"degradedAtEnd"`
}

// shared sums the arena's Keels' health of their Redis connection; nil when
// none has one.
func (a *arena) shared() *SharedHealth {
	var h *SharedHealth
	for _, k := range a.keels {
		s, ok := k.Shared()
		if !ok {
			continue
		}
		if h == nil {
			h = &SharedHealth{}
		}
		h.Failures += s.Failures
		h.Episodes += s.Episodes
		h.Replicas = max(h.Replicas, s.Replicas)
		if s.Degraded {
			h.Degraded++
		}
	}
	return h
}
