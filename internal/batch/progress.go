package batch

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

// Progress shows a run's progress: on a terminal, one line redrawn in place
// (a bar, done/total, rate, ETA, tokens per minute, failures by code); on
// anything else (a log file, CI), a plain line every Every. Counts are of
// checkpointed records only. It is safe for concurrent use.
type Progress struct {
	w     io.Writer
	tty   bool
	every time.Duration
	clk   clock.Clock

	mu         sync.Mutex
	total      int
	before     int // finished before this process started
	start      time.Time
	succeeded  int // in this process
	failedNow  int // in this process
	failed     int // in all, failures before this process included
	requeued   int
	tokens     int64
	took       time.Duration // the time records finished in this process took, summed
	byCode     map[string]int
	lastLen    int
	samples    []sample // at each update, for rates over the last minute
	started    bool
	stop, done chan struct{}
}

// sample is the progress at one moment.
type sample struct {
	at     time.Time
	done   int // finished in this process
	tokens int64
	took   time.Duration
}

// rateWindow is how far back rates and the ETA look: long enough to smooth
// the throttling's stop-and-go, short enough to follow a change.
const rateWindow = time.Minute

// ProgressOptions configure a Progress.
type ProgressOptions struct {
	// TTY draws a bar redrawn in place; otherwise plain lines.
	TTY bool
	// Every is the time between plain lines; zero means 10 s. A terminal
	// is redrawn every second.
	Every time.Duration
	// Clock paces the updates; nil is the wall clock.
	Clock clock.Clock
}

// NewProgress returns a Progress writing to w. Nil w shows nothing.
func NewProgress(w io.Writer, o ProgressOptions) *Progress {
	if o.Every <= 0 {
		o.Every = 10 * time.Second
	}
	if o.TTY {
		o.Every = time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	return &Progress{w: w, tty: o.TTY, every: o.Every, clk: o.Clock, byCode: map[string]int{}}
}

// begin starts the display for a run of total records of which before are
// already finished, failedBefore of them failed, by code.
func (p *Progress) begin(total, before int, failedBefore map[string]int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.total, p.before, p.start = total, before, p.clk.Now()
	for c, n := range failedBefore {
		p.byCode[c] += n
		p.failed += n
	}
	p.started = true
	p.samples = []sample{{at: p.start}}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	p.mu.Unlock()
	if p.w == nil {
		close(p.done)
		return
	}
	go p.loop()
}

func (p *Progress) loop() {
	defer close(p.done)
	for {
		t := p.clk.NewTimer(p.every)
		select {
		case <-p.stop:
			t.Stop()
			return
		case <-t.C():
			p.print()
		}
	}
}

// end stops the updates and prints the last state (and, on a terminal, ends the line).
func (p *Progress) end() {
	if p == nil {
		return
	}
	p.mu.Lock()
	started := p.started
	p.started = false
	p.mu.Unlock()
	if !started {
		return
	}
	close(p.stop)
	<-p.done
	if p.w != nil {
		p.print()
		if p.tty {
			fmt.Fprintln(p.w)
		}
	}
}

// finished counts a checkpointed record; took is the time from its first
// send to its checkpoint, requeue waits included.
func (p *Progress) finished(ok bool, code string, tokens int, took time.Duration) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok {
		p.succeeded++
	} else {
		p.failed++
		p.failedNow++
		p.byCode[code]++
	}
	p.tokens += int64(tokens)
	p.took += took
}

func (p *Progress) requeue() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.requeued++
	p.mu.Unlock()
}

func (p *Progress) print() {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := p.line(p.clk.Now())
	if p.tty {
		pad := ""
		if n := p.lastLen - len(line); n > 0 {
			pad = strings.Repeat(" ", n)
		}
		fmt.Fprintf(p.w, "\r%s%s", line, pad)
		p.lastLen = len(line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// Line renders the progress at now.
func (p *Progress) Line(now time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.line(now)
}

func (p *Progress) line(now time.Time) string {
	done := p.before + p.succeeded + p.failedNow
	// Rates over the last minute (since the start, for the first minute).
	cur := sample{at: now, done: p.succeeded + p.failedNow, tokens: p.tokens, took: p.took}
	for len(p.samples) > 1 && now.Sub(p.samples[1].at) >= rateWindow {
		p.samples = p.samples[1:]
	}
	from := p.samples[0]
	var rate, tpm float64
	if span := now.Sub(from.at); span > 0 {
		rate = float64(cur.done-from.done) / span.Seconds()
		tpm = float64(cur.tokens-from.tokens) / span.Minutes()
	}
	if now.After(p.samples[len(p.samples)-1].at) {
		p.samples = append(p.samples, cur)
	}
	// The ETA is the records left over the rate, but never less than the
	// time a record takes: the last records are in flight or waiting to be
	// requeued, and the rate alone said 0 s for the last seconds of a run.
	// It is rounded up: "0s" only when nothing is left.
	eta := "--"
	if left := p.total - done; left == 0 {
		eta = "0s"
	} else if rate > 0 {
		d := time.Duration(float64(left) / rate * float64(time.Second))
		if n := cur.done - from.done; n > 0 {
			d = max(d, (cur.took-from.took)/time.Duration(n))
		}
		eta = (d + time.Second - 1).Truncate(time.Second).String()
	}
	pct := 0.0
	if p.total > 0 {
		pct = 100 * float64(done) / float64(p.total)
	}
	codes := make([]string, 0, len(p.byCode))
	for c := range p.byCode {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool {
		if p.byCode[codes[i]] != p.byCode[codes[j]] {
			return p.byCode[codes[i]] > p.byCode[codes[j]]
		}
		return codes[i] < codes[j]
	})
	var errs strings.Builder
	for i, c := range codes {
		if i > 0 {
			errs.WriteString(" ")
		}
		fmt.Fprintf(&errs, "%s=%d", c, p.byCode[c])
	}
	if p.tty {
		const width = 24
		filled := 0
		if p.total > 0 {
			filled = width * done / p.total
		}
		s := fmt.Sprintf("[%s%s] %d/%d %3.0f%%  %.1f/s  ETA %s  %s tok/min", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
			done, p.total, pct, rate, eta, human(tpm))
		if p.failed > 0 {
			s += fmt.Sprintf("  failed %d: %s", p.failed, errs.String())
		}
		if p.requeued > 0 {
			s += fmt.Sprintf("  requeued %d", p.requeued)
		}
		return s
	}
	s := fmt.Sprintf("batch: %d/%d done (%.1f%%), %d failed, %.1f records/s, ETA %s, %s tokens/min", done, p.total, pct,
		p.failed, rate, eta, human(tpm))
	if p.requeued > 0 {
		s += fmt.Sprintf(", %d requeued", p.requeued)
	}
	if errs.Len() > 0 {
		s += ", failed by code: " + errs.String()
	}
	return s
}

// human renders a count with k/M suffixes.
func human(v float64) string {
	switch {
	case v >= 10e6:
		return fmt.Sprintf("%.0fM", v/1e6)
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 10e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
