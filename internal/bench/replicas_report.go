package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// replicasLine says which contenders ran several instances and where their
// Redis was; "" when none did and none used Redis.
func (r *Result) replicasLine() string {
	var names []string
	for _, o := range r.Contenders {
		if i := slices.IndexFunc(contenders, func(c Contender) bool { return c.Name == o.Name }); i >= 0 && contenders[i].replica != nil {
			names = append(names, o.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	instances := "instances"
	if r.Replicas == 1 {
		instances = "instance"
	}
	line := fmt.Sprintf("%s: %d keel %s each, calls dealt to them in turn, one quota", strings.Join(names, " and "), r.Replicas, instances)
	switch r.Redis {
	case "":
	case LocalRedis:
		line += "; keel-redis's instances share a Redis (a redis-server started for the run)"
	default:
		line += "; keel-redis's instances share the Redis at " + r.Redis
	}
	return line
}

// writeShared writes what the contenders' connections to Redis went
// through; nothing when no contender had one.
func (r *Result) writeShared(w io.Writer) {
	for _, o := range r.Contenders {
		if h := o.Shared; h != nil {
			fmt.Fprintf(w, "%s's connections to Redis: %d failed round trips, %d episodes without Redis (all instances together), %d replicas seen alive, %d without Redis at the end\n",
				o.Name, h.Failures, h.Episodes, h.Replicas, h.Degraded)
		}
	}
}

// writePhases writes each contender's measures before, during and after
// the Redis outage; nothing without one.
func (r *Result) writePhases(w io.Writer) error {
	if r.RedisOutage == nil {
		return nil
	}
	fmt.Fprintf(w, "\nRedis killed at %s, started again (empty) at %s; calls by arrival, goodput by when calls ended, 429s by the meter:\n",
		r.RedisOutage.Killed.Round(100*time.Millisecond), r.RedisOutage.Restarted.Round(100*time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  contender\tphase\tarrivals\tcalls\tcompleted\tfailed\tgoodput\t429s/100 attempts\tattempts\tmost past deadline\tfailed calls by cause")
	for _, o := range r.Contenders {
		for _, p := range o.Phases {
			fmt.Fprintf(tw, "  %s\t%s\t%s-%s\t%d\t%d\t%d\t%.1f%%\t%.1f\t%d\t%s\t%s\n", o.Name, p.Name,
				p.From.Round(100*time.Millisecond), p.To.Round(100*time.Millisecond), p.Calls, p.Completed, p.Failed,
				100*p.Goodput, p.ThrottlesPer100, p.Attempts, pastDeadline(p.PastDeadline), failures(p.Failures))
		}
	}
	return tw.Flush()
}

// pastDeadline formats how long a call ran past its deadline: "0" for
// none.
func pastDeadline(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return latency(d, true)
}
