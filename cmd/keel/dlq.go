package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keel-run/keel/internal/batch"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/fsutil"
	"github.com/keel-run/keel/internal/keelx"
	"github.com/keel-run/keel/internal/lockfile"
)

func init() {
	register(command{name: "dlq", summary: "look at, redrive, purge or export the dead-letter queue", run: runDLQ})
}

const dlqUsage = `Usage:
  keel dlq list    [--db FILE] [filters] [--due] [--limit N] [--json]
  keel dlq show    [--db FILE] [--json] ID...
  keel dlq redrive [--db FILE] [filters] [--force] [--out FILE] [--endpoint URL | --emulator [--scenario FILE]] [flags]
  keel dlq purge   [--db FILE] (filters | --all) [--json]
  keel dlq export  [--db FILE] [filters] [--out FILE]

The dead-letter queue holds calls that failed for good (keel batch run parks
its failed records there): the request, the error, every attempt, and for
failures that need a long wait (an AWS Marketplace agreement being set up) a
time before which a redrive is pointless.

Filters: --id N, --code CODE, --model ID (each repeatable; codes in any
spelling keel explain knows), --older-than AGE, --newer-than AGE (AGE such as
90m, 24h, 7d; measured from the first failure).

redrive sends each selected entry again through keel's engine (retries,
breakers, fallbacks), writes each reply as a JSON line to --out (default
standard output), and removes the entry only once its reply is written;
entries that fail again stay, with their attempt history extended. One
redrive runs at a time per database (it locks DB.redrive.lock); a second is
refused, naming the first. Entries
whose not-before time has not come are skipped unless --force. Streaming
calls are redriven as their non-streaming twin (the body is the same).

Request bodies can hold sensitive data: export writes them as they are.`

func runDLQ(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, dlqUsage)
		return 0
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "list":
		return dlqList(rest, stdout, stderr)
	case "show":
		return dlqShow(rest, stdout, stderr)
	case "redrive":
		ctx, stop, cancel := interrupts(stderr)
		defer cancel()
		return dlqRedrive(ctx, stop, rest, stdout, stderr)
	case "purge":
		return dlqPurge(rest, stdout, stderr)
	case "export":
		return dlqExport(rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "keel dlq: unknown subcommand %q; want list, show, redrive, purge or export\n", sub)
	return 2
}

// dlqFlags are the flags every dlq subcommand shares.
type dlqFlags struct {
	db       string
	jsonOut  bool
	ids      []int64
	codes    []string
	models   multiFlag
	older    time.Duration
	newer    time.Duration
	limit    int
	filtered bool // a filter flag was given
}

func newDLQFlagSet(name string, f *dlqFlags, filters bool, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("keel dlq "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), dlqUsage+"\n\nFlags of keel dlq "+name+":")
		fs.PrintDefaults()
	}
	fs.StringVar(&f.db, "db", "keel-dlq.db", "the dead-letter database")
	if !filters {
		return fs
	}
	fs.Func("id", "an entry `ID` (repeatable)", func(v string) error {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("want a positive entry ID, got %q", v)
		}
		f.ids = append(f.ids, id)
		f.filtered = true
		return nil
	})
	fs.Func("code", "a catalog `CODE`, any spelling (repeatable)", func(v string) error {
		e, ok := catalog.Lookup(v)
		if !ok {
			return fmt.Errorf("%q is not a code in keel's catalog (see keel explain --list)", v)
		}
		f.codes = append(f.codes, e.Code)
		f.filtered = true
		return nil
	})
	fs.Func("model", "a model `ID` exactly as called (repeatable)", func(v string) error {
		if v == "" {
			return errors.New("empty model id")
		}
		f.models = append(f.models, v)
		f.filtered = true
		return nil
	})
	fs.Func("older-than", "entries first parked more than `AGE` ago (90m, 24h, 7d)", func(v string) error {
		d, err := parseAge(v)
		f.older, f.filtered = d, true
		return err
	})
	fs.Func("newer-than", "entries first parked less than `AGE` ago", func(v string) error {
		d, err := parseAge(v)
		f.newer, f.filtered = d, true
		return err
	})
	return fs
}

// parseAge reads a Go duration, or a number of days such as 7d.
func parseAge(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days <= 0 {
			return 0, fmt.Errorf("want an age such as 90m, 24h or 7d, got %q", v)
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want an age such as 90m, 24h or 7d, got %q", v)
	}
	return d, nil
}

func (f *dlqFlags) filter(now time.Time) dlq.Filter {
	flt := dlq.Filter{IDs: f.ids, Codes: f.codes, Models: f.models, Limit: f.limit}
	if f.older > 0 {
		flt.CreatedBefore = now.Add(-f.older)
	}
	if f.newer > 0 {
		flt.CreatedAfter = now.Add(-f.newer)
	}
	return flt
}

// parseDLQ parses the flags; code is -1 when the caller should go on.
func parseDLQ(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	return -1
}

// openDLQ opens an existing dead-letter database; it never creates one.
func openDLQ(path string, stderr io.Writer, sub string) (*dlq.SQLite, int) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "keel dlq %s: no dead-letter database at %s (keel batch run creates it; pass --db FILE)\n", sub, path)
		} else {
			fmt.Fprintf(stderr, "keel dlq %s: %v\n", sub, err)
		}
		return nil, 1
	}
	s, err := dlq.OpenSQLite(path)
	if err != nil {
		fmt.Fprintf(stderr, "keel dlq %s: %v\n", sub, err)
		return nil, 1
	}
	return s, 0
}

func noArgs(fs *flag.FlagSet, stderr io.Writer) bool {
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return false
	}
	return true
}

// entryView is an entry as the CLI shows and exports it: the body as JSON
// when it is JSON, base64 otherwise, and times as RFC 3339.
type entryView struct {
	ID         int64           `json:"id"`
	Key        string          `json:"key,omitempty"`
	Source     string          `json:"source,omitempty"`
	Op         string          `json:"op"`
	Model      string          `json:"model"`
	Region     string          `json:"region,omitempty"`
	Code       string          `json:"code"`
	Status     int             `json:"status,omitempty"`
	Message    string          `json:"message,omitempty"`
	RequestID  string          `json:"requestId,omitempty"`
	Retry      string          `json:"retry,omitempty"`
	CreatedAt  time.Time       `json:"createdAt"`
	FailedAt   time.Time       `json:"failedAt"`
	NotBefore  *time.Time      `json:"notBefore,omitempty"`
	Redrives   int             `json:"redrives"`
	Redacted   bool            `json:"redacted,omitempty"`
	Attempts   []attemptView   `json:"attempts"`
	Body       json.RawMessage `json:"body,omitempty"`
	BodyBase64 []byte          `json:"bodyBase64,omitempty"`
}

type attemptView struct {
	Target     string    `json:"target"`
	Status     int       `json:"status,omitempty"`
	Code       string    `json:"code,omitempty"`
	RequestID  string    `json:"requestId,omitempty"`
	Start      time.Time `json:"start"`
	DelayMs    int64     `json:"delayMs"`
	DurationMs int64     `json:"durationMs"`
	Skipped    bool      `json:"skipped,omitempty"`
	Redrive    int       `json:"redrive,omitempty"`
}

func viewOf(e *dlq.Entry, withBody bool) entryView {
	v := entryView{ID: e.ID, Key: e.Key, Source: e.Source, Op: e.Op, Model: e.Model, Region: e.Region, Code: e.Code, Status: e.Status,
		Message: e.Message, RequestID: e.RequestID, Retry: e.Retry, CreatedAt: e.CreatedAt, FailedAt: e.FailedAt,
		Redrives: e.Redrives, Redacted: e.Redacted, Attempts: []attemptView{}}
	if !e.NotBefore.IsZero() {
		nb := e.NotBefore
		v.NotBefore = &nb
	}
	for _, a := range e.Attempts {
		v.Attempts = append(v.Attempts, attemptView{Target: a.Model + "@" + a.Region, Status: a.Status, Code: a.Code, RequestID: a.RequestID,
			Start: a.Start, DelayMs: a.Delay.Milliseconds(), DurationMs: a.Duration.Milliseconds(), Skipped: a.Skipped, Redrive: a.Redrive})
	}
	if withBody {
		if json.Valid(e.Body) {
			v.Body = e.Body
		} else {
			v.BodyBase64 = e.Body
		}
	}
	return v
}

func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func dueText(e *dlq.Entry, now time.Time) string {
	if e.Due(now) {
		return "now"
	}
	d := e.NotBefore.Sub(now)
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("in %dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("in %dm", int(d.Minutes()))
	}
	return fmt.Sprintf("in %ds", int(d.Seconds()))
}

func dlqList(args []string, stdout, stderr io.Writer) int {
	var (
		f   dlqFlags
		due bool
	)
	fs := newDLQFlagSet("list", &f, true, stderr)
	fs.BoolVar(&f.jsonOut, "json", false, "print the entries as JSON (bodies left out; see show and export)")
	fs.BoolVar(&due, "due", false, "only entries that may be redriven now")
	fs.IntVar(&f.limit, "limit", 0, "at most N entries, oldest first (0: all)")
	if code := parseDLQ(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	if !noArgs(fs, stderr) {
		return 2
	}
	if f.limit < 0 {
		fmt.Fprintf(stderr, "keel dlq list: --limit must be zero or more, got %d\n", f.limit)
		return 2
	}
	s, code := openDLQ(f.db, stderr, "list")
	if s == nil {
		return code
	}
	defer s.Close()
	now := time.Now()
	flt := f.filter(now)
	if due {
		flt.DueAt = now
	}
	es, err := s.List(context.Background(), flt)
	if err != nil {
		fmt.Fprintf(stderr, "keel dlq list: %v\n", err)
		return 1
	}
	if f.jsonOut {
		vs := make([]entryView, 0, len(es))
		for _, e := range es {
			vs = append(vs, viewOf(e, false))
		}
		return writeJSON(stdout, stderr, vs, 0)
	}
	if len(es) == 0 {
		fmt.Fprintln(stdout, "no entries")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGE\tCODE\tSTATUS\tOP\tMODEL\tATTEMPTS\tREDRIVES\tDUE\tKEY")
	for _, e := range es {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n", e.ID, age(now, e.CreatedAt), e.Code, e.Status, e.Op, e.Model,
			len(e.Attempts), e.Redrives, dueText(e, now), e.Key)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d entries\n", len(es))
	return 0
}

func dlqShow(args []string, stdout, stderr io.Writer) int {
	var f dlqFlags
	fs := newDLQFlagSet("show", &f, false, stderr)
	fs.BoolVar(&f.jsonOut, "json", false, "print as JSON, body included")
	// IDs and flags may come in any order.
	var args2 []string
	for rest := args; ; {
		if code := parseDLQ(fs, rest, stdout, stderr); code >= 0 {
			return code
		}
		if fs.NArg() == 0 {
			break
		}
		args2 = append(args2, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(args2) == 0 {
		fmt.Fprintln(stderr, "keel dlq show: name the entry IDs to show (see keel dlq list)")
		return 2
	}
	var ids []int64
	for _, a := range args2 {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			fmt.Fprintf(stderr, "keel dlq show: %q is not an entry ID\n", a)
			return 2
		}
		ids = append(ids, id)
	}
	s, code := openDLQ(f.db, stderr, "show")
	if s == nil {
		return code
	}
	defer s.Close()
	now := time.Now()
	var views []entryView
	exit := 0
	for i, id := range ids {
		e, err := s.Get(context.Background(), id)
		if err != nil {
			fmt.Fprintf(stderr, "keel dlq show: %v\n", err)
			exit = 1
			continue
		}
		if f.jsonOut {
			views = append(views, viewOf(e, true))
			continue
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		showEntry(stdout, e, now)
	}
	if f.jsonOut {
		if views == nil {
			views = []entryView{}
		}
		writeJSON(stdout, stderr, views, 0)
	}
	return exit
}

func showEntry(w io.Writer, e *dlq.Entry, now time.Time) {
	fmt.Fprintf(w, "entry %d: %s %s", e.ID, e.Op, e.Model)
	if e.Region != "" {
		fmt.Fprintf(w, " in %s", e.Region)
	}
	fmt.Fprintln(w)
	if e.Key != "" || e.Source != "" {
		fmt.Fprintf(w, "  from:      %s %s\n", e.Source, e.Key)
	}
	fmt.Fprintf(w, "  error:     %s (HTTP %d) %s\n", e.Code, e.Status, e.Message)
	if e.RequestID != "" {
		fmt.Fprintf(w, "  request:   %s\n", e.RequestID)
	}
	fmt.Fprintf(w, "  parked:    %s (%s ago), last failure %s\n", e.CreatedAt.Local().Format(time.DateTime), age(now, e.CreatedAt),
		e.FailedAt.Local().Format(time.DateTime))
	fmt.Fprintf(w, "  redrive:   %s; %d redrive(s) so far\n", dueText(e, now), e.Redrives)
	fmt.Fprintf(w, "  attempts:  %d\n", len(e.Attempts))
	for i, a := range e.Attempts {
		state := fmt.Sprintf("HTTP %d", a.Status)
		if a.Skipped {
			state = "skipped: breaker open"
		} else if a.Status == 0 {
			state = "no response"
		}
		tag := ""
		if a.Redrive > 0 {
			tag = fmt.Sprintf("  [redrive %d]", a.Redrive)
		}
		fmt.Fprintf(w, "    %d. %s@%s  %s %s  after %s, took %s%s\n", i+1, a.Model, a.Region, state, a.Code,
			a.Delay.Round(time.Millisecond), a.Duration.Round(time.Millisecond), tag)
	}
	body := e.Body
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "    ", "  ") == nil {
		body = pretty.Bytes()
	}
	const maxShow = 4000
	note := ""
	if len(body) > maxShow {
		note = fmt.Sprintf("\n    ... %d more bytes (keel dlq show --json %d for all)", len(body)-maxShow, e.ID)
		body = body[:maxShow]
	}
	redacted := ""
	if e.Redacted {
		redacted = " (redacted: cannot be redriven)"
	}
	fmt.Fprintf(w, "  body%s:\n    %s%s\n", redacted, body, note)
	if entry, ok := catalog.Lookup(e.Code); ok {
		fmt.Fprintln(w)
		writeExplanation(w, entry)
	}
}

func dlqPurge(args []string, stdout, stderr io.Writer) int {
	var (
		f   dlqFlags
		all bool
	)
	fs := newDLQFlagSet("purge", &f, true, stderr)
	fs.BoolVar(&all, "all", false, "remove every entry")
	fs.BoolVar(&f.jsonOut, "json", false, "print the count as JSON")
	if code := parseDLQ(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	if !noArgs(fs, stderr) {
		return 2
	}
	if !f.filtered && !all {
		fmt.Fprintln(stderr, "keel dlq purge: name what to remove with --id, --code, --model, --older-than or --newer-than, or pass --all")
		return 2
	}
	if f.filtered && all {
		fmt.Fprintln(stderr, "keel dlq purge: --all removes everything; leave out the filters, or --all")
		return 2
	}
	s, code := openDLQ(f.db, stderr, "purge")
	if s == nil {
		return code
	}
	defer s.Close()
	n, err := s.Purge(context.Background(), f.filter(time.Now()))
	if err != nil {
		fmt.Fprintf(stderr, "keel dlq purge: %v\n", err)
		return 1
	}
	if f.jsonOut {
		return writeJSON(stdout, stderr, map[string]int{"removed": n}, 0)
	}
	fmt.Fprintf(stdout, "removed %d entries\n", n)
	return 0
}

// openOut opens --out: "" or "-" is w; a file is appended to, readable by
// its owner only (it holds prompts or replies): created 0600, and an
// existing regular file made 0600 (a device, /dev/null, is left alone).
func openOut(path string, w io.Writer) (io.Writer, func() error, func() error, error) {
	if path == "" || path == "-" {
		return w, func() error { return nil }, func() error { return nil }, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := fsutil.MakePrivate(f); err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("making %s readable by its owner only: %w", path, err)
	}
	return f, f.Sync, f.Close, nil
}

func dlqExport(args []string, stdout, stderr io.Writer) int {
	var (
		f   dlqFlags
		out string
	)
	fs := newDLQFlagSet("export", &f, true, stderr)
	fs.StringVar(&out, "out", "-", "JSONL file to append to (- is standard output)")
	fs.IntVar(&f.limit, "limit", 0, "at most N entries, oldest first (0: all)")
	if code := parseDLQ(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	if !noArgs(fs, stderr) {
		return 2
	}
	s, code := openDLQ(f.db, stderr, "export")
	if s == nil {
		return code
	}
	defer s.Close()
	es, err := s.List(context.Background(), f.filter(time.Now()))
	if err != nil {
		fmt.Fprintf(stderr, "keel dlq export: %v\n", err)
		return 1
	}
	w, sync, closeOut, err := openOut(out, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "keel dlq export: %v\n", err)
		return 1
	}
	defer closeOut()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, e := range es {
		if err := enc.Encode(viewOf(e, true)); err != nil {
			fmt.Fprintf(stderr, "keel dlq export: %v\n", err)
			return 1
		}
	}
	if err := sync(); err != nil {
		fmt.Fprintf(stderr, "keel dlq export: %v\n", err)
		return 1
	}
	if out != "-" && out != "" {
		fmt.Fprintf(stderr, "exported %d entries to %s\n", len(es), out)
	}
	return 0
}

// redriveLine is one redriven entry's reply, as written to --out.
type redriveLine struct {
	DLQID      int64           `json:"dlqId"`
	Key        string          `json:"key,omitempty"`
	Op         string          `json:"op"`
	Model      string          `json:"model"`
	Reply      string          `json:"reply"`
	StopReason string          `json:"stopReason,omitempty"`
	Usage      batch.Usage     `json:"usage"`
	Target     string          `json:"target,omitempty"`
	Attempts   int             `json:"attempts"`
	Response   json.RawMessage `json:"response"`
}

func dlqRedrive(ctx context.Context, stop <-chan struct{}, args []string, stdout, stderr io.Writer) int {
	var (
		f     dlqFlags
		tf    targetFlags
		force bool
		out   string
	)
	fs := newDLQFlagSet("redrive", &f, true, stderr)
	fs.BoolVar(&force, "force", false, "also redrive entries whose not-before time has not come")
	fs.StringVar(&out, "out", "-", "JSONL file the replies are appended to (- is standard output)")
	fs.IntVar(&f.limit, "limit", 0, "at most N entries, oldest first (0: all)")
	tf.register(fs)
	if code := parseDLQ(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	if !noArgs(fs, stderr) {
		return 2
	}
	if err := tf.check(); err != nil {
		fmt.Fprintf(stderr, "keel dlq redrive: %v\n", err)
		return 2
	}
	s, code := openDLQ(f.db, stderr, "redrive")
	if s == nil {
		return code
	}
	defer s.Close()
	// One redrive at a time per queue (the plan holds the lock until
	// closed). The lock goes with the process, kill -9 included.
	warnNoLocks(stderr, "keel dlq redrive", "a second redrive of the same database is not refused, and would send its entries again: run one at a time")
	var (
		enc  *json.Encoder
		sync func() error
	)
	now := time.Now()
	p, err := dlq.PlanRedrive(ctx, s, dlq.RedriveOptions{Filter: f.filter(now), Force: force, Region: tf.region,
		Lock: f.db + ".redrive.lock", LockOwner: "keel dlq redrive", Stop: stop,
		Save: func(r dlq.Result) error {
			if err := enc.Encode(newRedriveLine(r)); err != nil {
				return err
			}
			return sync()
		},
		Done: func(r dlq.Result) {
			e := r.Entry
			if r.Err == nil {
				fmt.Fprintf(stderr, "entry %d: ok after %d attempt(s); removed\n", e.ID, sent(r.Report))
				return
			}
			fmt.Fprintf(stderr, "entry %d: failed again: %s (HTTP %d); kept, %d redrive(s), redrive %s\n", e.ID, e.Code, e.Status, e.Redrives,
				dueText(e, time.Now()))
		}})
	if err != nil {
		if errors.Is(err, lockfile.ErrLocked) {
			fmt.Fprintf(stderr, "keel dlq redrive: another keel dlq redrive is using %s: %v; wait for it to end, or stop it\n", f.db, err)
		} else {
			fmt.Fprintf(stderr, "keel dlq redrive: %v\n", err)
		}
		return 1
	}
	defer p.Close()
	for _, sk := range p.Skipped {
		e := sk.Entry
		if sk.Redacted {
			fmt.Fprintf(stderr, "entry %d: skipped: its body was redacted when parked, so it cannot be sent again\n", e.ID)
			continue
		}
		fmt.Fprintf(stderr, "entry %d: skipped: %s asks to wait until %s (%s); --force sends it anyway\n", e.ID, e.Code,
			e.NotBefore.Local().Format(time.DateTime), dueText(e, now))
	}
	if len(p.Send) == 0 {
		sum := p.Summary()
		fmt.Fprintf(stderr, "nothing to redrive (%d selected, %d not due, %d redacted)\n", sum.Selected, sum.NotDue, sum.Redacted)
		return 0
	}
	k, closeTarget, err := tf.open(ctx, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "keel dlq redrive: %v\n", err)
		return 2
	}
	defer closeTarget()
	w, syncOut, closeOut, err := openOut(out, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "keel dlq redrive: %v\n", err)
		return 1
	}
	defer closeOut()
	enc, sync = json.NewEncoder(w), syncOut
	enc.SetEscapeHTML(false)
	sum, err := p.Run(ctx, keelx.Engine(k))
	if err != nil {
		fmt.Fprintf(stderr, "keel dlq redrive: %s\n", redriveErrorText(err))
		return 1
	}
	fmt.Fprintf(stderr, "redrive: %d succeeded and removed, %d failed again and kept, %d not due, %d redacted", sum.Succeeded, sum.Failed,
		sum.NotDue, sum.Redacted)
	if sum.NotTried > 0 {
		fmt.Fprintf(stderr, ", %d not tried (interrupted)", sum.NotTried)
	}
	fmt.Fprintln(stderr)
	switch {
	case sum.NotTried > 0:
		return 130
	case sum.Failed > 0:
		return 1
	}
	return 0
}

// newRedriveLine is the line --out gets for an entry whose redrive succeeded.
func newRedriveLine(r dlq.Result) redriveLine {
	e := r.Entry
	line := redriveLine{DLQID: e.ID, Key: e.Key, Op: string(r.Op), Model: e.Model, Response: r.Body, Attempts: sent(r.Report)}
	if !json.Valid(r.Body) {
		line.Response, _ = json.Marshal(string(r.Body))
	}
	if rp, err := batch.ParseReply(r.Op, r.Header, r.Body); err == nil {
		line.Reply, line.StopReason, line.Usage = rp.Text, rp.StopReason, rp.Usage
	}
	if r.Report != nil {
		line.Target = r.Report.Target.String()
	}
	return line
}

// redriveErrorText says what err, which ended a redrive, means.
func redriveErrorText(err error) string {
	var re *dlq.RedriveError
	if !errors.As(err, &re) {
		return err.Error()
	}
	switch re.Step {
	case dlq.StepSave:
		return fmt.Sprintf("writing the reply of entry %d: %v (entry kept)", re.ID, re.Err)
	case dlq.StepRemove:
		return fmt.Sprintf("entry %d succeeded but could not be removed: %v", re.ID, re.Err)
	}
	return fmt.Sprintf("entry %d failed again and its history could not be saved: %v", re.ID, re.Err)
}

// sent is the number of attempts rep says were sent; 0 without a report.
func sent(rep *engine.Report) int {
	if rep == nil {
		return 0
	}
	return rep.Sent()
}
