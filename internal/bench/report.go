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
	start := "spent"
	if r.FullStart {
		start = "full"
	}
	fmt.Fprintf(w, "%d calls over %s (goodput measured after a %s warm-up), deadline %s per call, quota starting %s, seed %d, model latency x%g, run took %s\n",
		r.Calls, r.Duration, r.Warmup, r.Deadline, start, r.Seed, r.Speed, r.Wall.Round(100*time.Millisecond))
	if line := r.replicasLine(); line != "" {
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "contender\tgoodput\tspent\tcompleted\tfailed\t429s/100 attempts\tattempts\tp50\tp99\treplies p99\tfailed in p50/p99\tlargest 1/4 done, p99\tsmallest 1/4 done, p99\t")
	for _, o := range r.Contenders {
		failedIn := "-"
		if o.Failed > 0 {
			failedIn = latency(o.FailP50, true) + "/" + latency(o.FailP99, true)
		}
		fmt.Fprintf(tw, "%s\t%.1f%%\t%.1f%%\t%d\t%d\t%.1f\t%d\t%s\t%s\t%s\t%s\t%.0f%% %6s\t%.0f%% %6s\t\n", o.Name, 100*o.Goodput, 100*o.Spent, o.Completed, o.Failed,
			o.ThrottlesPer100, o.Attempts, latency(o.P50, o.Completed > 0), latency(o.P99, o.Completed > 0), latency(o.ReplyP99, o.ReplyP99 > 0), failedIn,
			100*o.LargeCompleted, latency(o.LargeP99, o.LargeCompleted > 0), 100*o.SmallCompleted, latency(o.SmallP99, o.SmallCompleted > 0))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nfailed calls by cause:")
	for _, o := range r.Contenders {
		fmt.Fprintf(w, "  %-11s %s\n", o.Name, failures(o.Failures))
	}
	fmt.Fprint(w, "\nthe most a call ran past its deadline:")
	for _, o := range r.Contenders {
		fmt.Fprintf(w, " %s %s", o.Name, pastDeadline(o.PastDeadline))
	}
	fmt.Fprintln(w)
	r.writeShared(w)
	if err := r.writePhases(w); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\ngoodput: completed work, what the calls that completed after the warm-up settled on the quota meter, per minute / quota;\n"+
		"spent: all the meter settled (failed calls' partial replies too) / quota. 429s: counted by the meter.\n"+
		"latency: arrival to reply, completed calls only; replies: the round trip of the request that brought the reply\n"+
		"(the model's time, which no client can shorten); failed in: time from arrival to error of failed calls.\n"+
		"largest/smallest 1/4: calls ranked by the tokens they reserve (input + max tokens); the share that completed, and their p99 latency.")
	return err
}

// latency formats d for the table: "-" when no call was counted (!some),
// seconds from one second up, milliseconds below (a refusal takes about
// one).
func latency(d time.Duration, some bool) string {
	switch {
	case !some:
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
		DurationS float64 `json:"durationSeconds"`
		WarmupS   float64 `json:"warmupSeconds"`
		DeadlineS float64 `json:"deadlineSeconds"`
		WallS     float64 `json:"wallSeconds"`
	}{(*plain)(r), r.Duration.Seconds(), r.Warmup.Seconds(), r.Deadline.Seconds(), r.Wall.Seconds()})
}

// MarshalJSON writes the latencies in milliseconds, null when no call
// completed.
func (o Outcome) MarshalJSON() ([]byte, error) {
	type plain Outcome
	return json.Marshal(struct {
		plain
		P50      *float64 `json:"p50Ms"`
		P99      *float64 `json:"p99Ms"`
		FailP50  *float64 `json:"failedP50Ms"`
		FailP99  *float64 `json:"failedP99Ms"`
		LargeP99 *float64 `json:"largeQuarterP99Ms"`
		SmallP99 *float64 `json:"smallQuarterP99Ms"`
		ReplyP99 *float64 `json:"replyP99Ms"`
		Past     *float64 `json:"pastDeadlineMs"`
	}{plain(o), ms(o.P50, o.Completed > 0), ms(o.P99, o.Completed > 0), ms(o.FailP50, o.Failed > 0), ms(o.FailP99, o.Failed > 0),
		ms(o.LargeP99, o.LargeCompleted > 0), ms(o.SmallP99, o.SmallCompleted > 0), ms(o.ReplyP99, o.ReplyP99 > 0), ms(o.PastDeadline, true)})
}

// MarshalJSON writes the times in milliseconds; latency_ms and reply_ms are
// null when there is none.
func (c CallRecord) MarshalJSON() ([]byte, error) {
	type plain CallRecord
	opt := func(d *time.Duration) *float64 {
		if d == nil {
			return nil
		}
		return ms(*d, true)
	}
	return json.Marshal(struct {
		plain
		At      *float64 `json:"atMs"`
		Latency *float64 `json:"latencyMs"`
		Reply   *float64 `json:"replyMs"`
	}{plain(c), ms(c.At, true), opt(c.Latency), opt(c.Reply)})
}

// WriteCalls writes what happened to every call with every contender, one
// JSON object per line (see CallRecord), contenders in table order and
// calls in arrival order: the data behind the table, for a closer look at
// its tails.
func (r *Result) WriteCalls(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, o := range r.Contenders {
		for _, c := range o.calls {
			if err := enc.Encode(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// ms returns d in milliseconds, or nil (JSON null) when no call was
// counted (!some).
func ms(d time.Duration, some bool) *float64 {
	if !some {
		return nil
	}
	v := float64(d.Microseconds()) / 1000
	return &v
}

// String describes p in one line, as keel bench quota shows it on a
// terminal: time so far, share of the arrivals past, calls ended.
func (p Progress) String() string {
	arrived := 100.0
	if p.Arrivals > 0 {
		arrived = min(100, 100*p.Elapsed.Seconds()/p.Arrivals.Seconds())
	}
	return fmt.Sprintf("%s of at most %s: arrivals %.0f%% done, %s of %s calls ended",
		p.Elapsed.Round(time.Second), p.Limit, arrived, thousands(int64(p.Done)), thousands(int64(p.Calls)))
}
