package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints the result as a table, one row per contender, under a
// line that says what was run.
func (r *Result) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "keel bench quota: %s in %s (burndown %g), quota %s tokens/min, offered %.2fx (asked %gx)\n",
		r.Model, r.Region, r.Burndown, thousands(r.Quota), r.Offered, r.Load)
	fmt.Fprintf(w, "%d calls over %s (goodput measured after a %s warm-up), deadline %s per call, seed %d, model latency x%g, run took %s\n\n",
		r.Calls, r.Duration, r.Warmup, r.Deadline, r.Seed, r.Speed, r.Wall.Round(100*time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "contender\tgoodput\tspent\tcompleted\tfailed\t429s/100 attempts\tattempts\tp50\tp99\tfailed in\tlargest 1/4 done\tsmallest 1/4 done\t")
	for _, o := range r.Contenders {
		fmt.Fprintf(tw, "%s\t%.1f%%\t%.1f%%\t%d\t%d\t%.1f\t%d\t%s\t%s\t%s\t%.0f%%\t%.0f%%\t\n", o.Name, 100*o.Goodput, 100*o.Spent, o.Completed, o.Failed,
			o.ThrottlesPer100, o.Attempts, latency(o.P50, o.Completed), latency(o.P99, o.Completed), latency(o.FailP50, o.Failed),
			100*o.LargeCompleted, 100*o.SmallCompleted)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nfailed calls by cause:")
	for _, o := range r.Contenders {
		fmt.Fprintf(w, "  %-11s %s\n", o.Name, failures(o.Failures))
	}
	_, err := fmt.Fprintln(w, "\ngoodput: completed work, what the calls that completed after the warm-up settled on the quota meter, per minute / quota;\n"+
		"spent: all the meter settled (failed calls' partial replies too) / quota. 429s: counted by the meter.\n"+
		"latency: arrival to reply, completed calls only; failed in: median time from arrival to error of failed calls. largest/smallest 1/4: calls ranked by the tokens they reserve (input + max tokens).")
	return err
}

// latency formats d for the table: "-" when no call was counted, seconds
// from one second up, milliseconds below (a refusal takes about one).
func latency(d time.Duration, n int) string {
	switch {
	case n == 0:
		return "-"
	case d >= time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Millisecond:
		return "<1ms"
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

func failures(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Most frequent first; ties by name, so output is stable.
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// MarshalJSON writes durations as seconds and milliseconds.
func (r *Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		*plain
		DurationS float64 `json:"duration_s"`
		WarmupS   float64 `json:"warmup_s"`
		DeadlineS float64 `json:"deadline_s"`
		WallS     float64 `json:"wall_s"`
	}{(*plain)(r), r.Duration.Seconds(), r.Warmup.Seconds(), r.Deadline.Seconds(), r.Wall.Seconds()})
}

// MarshalJSON writes the latencies in milliseconds, null when no call
// completed.
func (o Outcome) MarshalJSON() ([]byte, error) {
	type plain Outcome
	var p50, p99, fail *float64
	if o.Completed > 0 {
		a, b := ms(o.P50), ms(o.P99)
		p50, p99 = &a, &b
	}
	if o.Failed > 0 {
		f := ms(o.FailP50)
		fail = &f
	}
	return json.Marshal(struct {
		plain
		P50  *float64 `json:"p50_ms"`
		P99  *float64 `json:"p99_ms"`
		Fail *float64 `json:"failed_p50_ms"`
	}{plain(o), p50, p99, fail})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
