package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteTable prints the result as a table, one row per contender, and
// keel's cost over the bare proxy against the goals.
func (r *GatewayResult) WriteTable(w io.Writer) error {
	workers := "workers"
	if r.Concurrency == 1 {
		workers = "worker"
	}
	fmt.Fprintf(w, "keel bench gateway: %s to %s, %d %s in a closed loop, %s measured per contender in %d turns (after a %s warm-up each),\n",
		r.Op, r.Model, r.Concurrency, workers, r.Duration, r.Rounds, r.Warmup)
	fmt.Fprintf(w, "emulators with no latency and no faults, %d-token replies, %d CPUs, run took %s\n\n",
		gatewayReply, r.CPUs, r.Wall.Round(100*time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "contender\tcalls/s\tp50\tp99\tp99.9\tcalls\terrors\tallocs/call\tKB alloc/call\treply bytes\t")
	for _, o := range r.Contenders {
		some := o.Calls > 0
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%d\t%d\t%.0f\t%.1f\t%.0f\t\n", o.Name, o.PerSecond, micros(o.P50, some),
			micros(o.P99, some), micros(o.P999, some), o.Calls, o.Errors, o.AllocsPerCall, o.BytesPerCall/1024, o.ReplyBytes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, o := range r.Contenders {
		if o.FirstError != "" {
			fmt.Fprintf(w, "%s: first error: %s\n", o.Name, o.FirstError)
		}
	}
	if r.Compared {
		fmt.Fprintf(w, "\nkeel over the bare proxy: %+.0f µs at p50 (goal at most %.0f µs: %s), %.0f %% of its calls/s (goal at least %.0f %%: %s)\n",
			float64(r.AddedP50.Nanoseconds())/1e3, float64(GatewayMaxAddedP50.Nanoseconds())/1e3, met(r.AddedP50 <= GatewayMaxAddedP50),
			100*r.Throughput, 100*GatewayMinThroughput, met(r.Throughput >= GatewayMinThroughput))
	}
	_, err := fmt.Fprintln(w, "\nlatency: request sent to reply read to its end, completed calls; allocs: the whole process's (load, middle and emulator)\n"+
		"during the contender's turns, per call: the emulator row is what the load and the emulator cost.")
	return err
}

// met says whether a goal was met.
func met(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// micros formats d in microseconds below 10 ms and milliseconds from
// there, or "-" when no call was counted (!some).
func micros(d time.Duration, some bool) string {
	switch {
	case !some:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
}

// MarshalJSON writes the durations as seconds and the latencies as
// milliseconds.
func (r *GatewayResult) MarshalJSON() ([]byte, error) {
	type plain GatewayResult
	var added *float64
	if r.Compared {
		added = ms(r.AddedP50, true)
	}
	return json.Marshal(struct {
		*plain
		DurationS float64  `json:"durationSeconds"`
		WarmupS   float64  `json:"warmupSeconds"`
		WallS     float64  `json:"wallSeconds"`
		AddedP50  *float64 `json:"addedP50Ms"`
	}{(*plain)(r), r.Duration.Seconds(), r.Warmup.Seconds(), r.Wall.Seconds(), added})
}

// MarshalJSON writes the latencies in milliseconds, null when no call
// completed.
func (o GatewayOutcome) MarshalJSON() ([]byte, error) {
	type plain GatewayOutcome
	some := o.Calls > 0
	return json.Marshal(struct {
		plain
		P50  *float64 `json:"p50Ms"`
		P99  *float64 `json:"p99Ms"`
		P999 *float64 `json:"p999Ms"`
	}{plain(o), ms(o.P50, some), ms(o.P99, some), ms(o.P999, some)})
}
