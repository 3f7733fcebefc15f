package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteTable prints the result as a table, a row per contender and phase,
// under a line that says what was run.
func (r *OutageResult) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "keel bench outage: %s, %s routed %s -> %s\n", r.Scenario, r.Model, r.Primary, r.Fallback)
	fmt.Fprintf(w, "%d calls over %s (Poisson, %g a second), max tokens %d, deadline %s per call, seed %d, model latency x%g, run took %s\n\n",
		r.Calls, r.Duration, r.Rate, r.MaxTokens, r.Deadline, r.Seed, r.Speed, r.Wall.Round(100*time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "contender\tphase\tarrived\tcalls\tcompleted\tfailed\tvia %s\tp50\tp99\tmax\tadded\t%s attempts/call\tskipped %s (breaker)\tattempt timeouts\ttimed out after\t\n",
		r.Fallback, r.Primary, r.Primary)
	for _, c := range r.Contenders {
		for i, o := range c.Phases {
			p := r.Phases[i]
			some := o.Completed > 0
			via := "-"
			if some {
				via = fmt.Sprintf("%.0f%%", 100*o.ViaFallback)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s-%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%.2f\t%d\t%d\t%s\t\n", c.Name, o.Phase,
				seconds(p.From), seconds(p.To), o.Calls, o.Completed, o.Failed, via,
				latency(o.P50, some), latency(o.P99, some), latency(o.Max, some), latency(o.Added, o.HasAdded),
				o.PrimaryPerCall, o.BreakerSkips, o.AttemptTimeouts, latency(o.LongestTimeout, o.AttemptTimeouts > 0))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nfailed calls by cause:")
	for _, c := range r.Contenders {
		for _, o := range c.Phases {
			if o.Failed > 0 {
				fmt.Fprintf(w, "  %-19s %-10s %s\n", c.Name, o.Phase, failures(o.Failures))
			}
		}
	}
	_, err := fmt.Fprintf(w, "\nphases: by arrival time, from the scenario's outage windows for %s. latency: arrival to reply, completed calls only;\n"+
		"added: max - the healthy phase's p50. attempts/call: attempts sent to %s per call; skipped: calls that did not try %s,\n"+
		"or did not try it again, because its circuit breaker was open. attempt timeouts: attempts keel ended with AttemptTimeout;\n"+
		"timed out after: the longest of them.\n",
		r.Primary, r.Primary, r.Primary)
	return err
}

// seconds formats an offset in the run as whole seconds when it is one.
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%gs", d.Seconds())
}

// MarshalJSON writes durations in seconds and the phases' bounds.
func (r *OutageResult) MarshalJSON() ([]byte, error) {
	type plain OutageResult
	type phase struct {
		Name  string  `json:"name"`
		FromS float64 `json:"fromSeconds"`
		ToS   float64 `json:"toSeconds"`
	}
	phases := make([]phase, len(r.Phases))
	for i, p := range r.Phases {
		phases[i] = phase{p.Name, p.From.Seconds(), p.To.Seconds()}
	}
	return json.Marshal(struct {
		*plain
		DurationS float64 `json:"durationSeconds"`
		DeadlineS float64 `json:"deadlineSeconds"`
		WallS     float64 `json:"wallSeconds"`
		Phases    []phase `json:"phases"`
	}{(*plain)(r), r.Duration.Seconds(), r.Deadline.Seconds(), r.Wall.Seconds(), phases})
}

// MarshalJSON writes the latencies in milliseconds, null when there is none.
func (o PhaseOutcome) MarshalJSON() ([]byte, error) {
	type plain PhaseOutcome
	some := o.Completed > 0
	return json.Marshal(struct {
		plain
		P50     *float64 `json:"p50Ms"`
		P99     *float64 `json:"p99Ms"`
		Max     *float64 `json:"maxMs"`
		Added   *float64 `json:"maxAddedMs"`
		Longest *float64 `json:"longestTimedOutAttemptMs"`
	}{plain(o), ms(o.P50, some), ms(o.P99, some), ms(o.Max, some), ms(o.Added, o.HasAdded), ms(o.LongestTimeout, o.AttemptTimeouts > 0)})
}
