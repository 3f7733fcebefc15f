package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/textwrap"
)

func init() {
	register(command{name: "explain", summary: "explain a Bedrock error code or pasted error text: status, retry advice, cause, fix", run: runExplain})
}

// explainStdin is where `keel explain -` reads the text; tests replace it.
var explainStdin io.Reader = os.Stdin

const explainUsage = `Usage: keel explain [--json] <code | pasted error text ...>
       keel explain [--json] -          read the error text from standard input
       keel explain --list [--json]     print the whole catalog

Finds the error code in the text (case-insensitive; a whole SDK error message
is fine) and prints its HTTP status, category, whether and how to retry, the
cause and the steps to fix it.

Exit status: 0 found, 1 nothing matched (suggestions on stderr), 2 usage error.`

// explainJSON is the stable JSON form of a catalog entry (docs/catalog.md).
type explainJSON struct {
	Code           string        `json:"code"`
	Aliases        []string      `json:"aliases"`
	Status         int           `json:"status"`
	Category       string        `json:"category"`
	Retry          string        `json:"retry"`
	Retryable      bool          `json:"retryable"`
	Advice         string        `json:"advice"`
	WaitSeconds    float64       `json:"waitSeconds"`
	Unhealthy      bool          `json:"unhealthy"`
	FallbackOK     bool          `json:"fallbackOk"`
	Summary        string        `json:"summary"`
	Cause          string        `json:"cause"`
	Fix            []string      `json:"fix"`
	Source         string        `json:"source"`
	WireCode       string        `json:"wireCode"`
	StreamName     string        `json:"streamName"`
	DefaultMessage string        `json:"defaultMessage"`
	Match          *explainMatch `json:"match,omitempty"`
}

// explainMatch says what was found in the input.
type explainMatch struct {
	Input             string   `json:"input"`
	Code              string   `json:"code"`
	Status            int      `json:"status"`
	Message           string   `json:"message"`
	RequestID         string   `json:"requestId"`
	RetryAfterSeconds float64  `json:"retryAfterSeconds"`
	SameStatus        []string `json:"sameStatus,omitempty"`
}

// explainNotFound is printed with --json when nothing matched.
type explainNotFound struct {
	Error       string   `json:"error"`
	Input       string   `json:"input"`
	Suggestions []string `json:"suggestions"`
}

func runExplain(args []string, stdout, stderr io.Writer) int {
	var jsonOut, list, fromStdin bool
	var words []string
	for i, a := range args {
		if len(words) > 0 {
			// Everything after the text starts is text, flags included,
			// except the flags themselves at the end of a pasted line.
			if a == "--json" || a == "-json" {
				jsonOut = true
				continue
			}
			words = append(words, a)
			continue
		}
		switch a {
		case "--json", "-json":
			jsonOut = true
		case "--list", "-list":
			list = true
		case "-h", "-help", "--help":
			fmt.Fprintln(stdout, explainUsage)
			return 0
		case "-":
			fromStdin = true
		case "--":
			words = append(words, args[i+1:]...)
			if len(words) == 0 {
				fmt.Fprintln(stderr, "keel explain: nothing after --")
				fmt.Fprintln(stderr, explainUsage)
				return 2
			}
			return explainText(strings.Join(words, " "), jsonOut, stdout, stderr)
		default:
			if strings.HasPrefix(a, "-") && len(a) > 1 {
				fmt.Fprintf(stderr, "keel explain: unknown flag %q\n%s\n", a, explainUsage)
				return 2
			}
			words = append(words, a)
		}
	}
	switch {
	case list && (len(words) > 0 || fromStdin):
		fmt.Fprintln(stderr, "keel explain: --list takes no code or text")
		return 2
	case list:
		return explainList(jsonOut, stdout, stderr)
	case fromStdin && len(words) > 0:
		fmt.Fprintln(stderr, "keel explain: give the text as arguments or on standard input (-), not both")
		return 2
	case fromStdin:
		b, err := io.ReadAll(io.LimitReader(explainStdin, 1<<20))
		if err != nil {
			fmt.Fprintf(stderr, "keel explain: reading standard input: %v\n", err)
			return 2
		}
		words = append(words, string(b))
	}
	text := strings.TrimSpace(strings.Join(words, " "))
	if text == "" {
		fmt.Fprintln(stderr, "keel explain: give an error code or paste the error text")
		fmt.Fprintln(stderr, explainUsage)
		return 2
	}
	return explainText(text, jsonOut, stdout, stderr)
}

// explainText explains the code or text and returns the exit status.
func explainText(text string, jsonOut bool, stdout, stderr io.Writer) int {
	var r classify.Result
	var sameStatus []string
	if e, ok := catalog.Lookup(text); ok {
		// Lookup reads "Code: message" as a code with its wire suffix; the
		// message may still name a refinement.
		e = catalog.Refine(e, text)
		r = classify.Result{Entry: e, Code: text, Status: e.Status}
	} else if status, err := strconv.Atoi(text); err == nil && status >= 100 && status <= 599 {
		// A bare status: explain what an unknown error with it means and
		// list the codes that arrive with it.
		e := catalog.ForStatus(status)
		r = classify.Result{Entry: e, Status: status}
		for _, c := range catalog.All() {
			if c.Status == status && c != e {
				sameStatus = append(sameStatus, c.Code)
			}
		}
	} else if found, ok := classify.FromText(text); ok {
		r = found
	} else {
		var codes []string
		for _, e := range classify.Suggest(text, 3) {
			codes = append(codes, e.Code)
		}
		fmt.Fprintf(stderr, "keel explain: no catalog entry matches %q\n", abbreviate(text, 80))
		if len(codes) > 0 {
			fmt.Fprintf(stderr, "did you mean: %s\n", strings.Join(codes, ", "))
		}
		fmt.Fprintln(stderr, "run `keel explain --list` for every code")
		if jsonOut {
			if codes == nil {
				codes = []string{}
			}
			explainWriteJSON(stdout, explainNotFound{Error: "no catalog entry matches", Input: text, Suggestions: codes})
		}
		return 1
	}
	m := &explainMatch{
		Input: text, Code: r.Code, Status: r.Status, Message: r.Message, RequestID: r.RequestID,
		RetryAfterSeconds: r.RetryAfter.Seconds(), SameStatus: sameStatus,
	}
	if jsonOut {
		j := entryJSON(r.Entry)
		j.Match = m
		return explainWriteJSON(stdout, j)
	}
	printEntry(stdout, r.Entry, m)
	return 0
}

func entryJSON(e *catalog.Entry) explainJSON {
	aliases, fix := e.Aliases, e.Fix
	if aliases == nil {
		aliases = []string{}
	}
	if fix == nil {
		fix = []string{}
	}
	return explainJSON{
		Code: e.Code, Aliases: aliases, Status: e.Status, Category: string(e.Category), Retry: string(e.Retry),
		Retryable: e.Retryable(), Advice: e.Advice(), WaitSeconds: e.Wait.Seconds(), Unhealthy: e.Unhealthy,
		FallbackOK: e.FallbackOK, Summary: e.Summary, Cause: e.Cause, Fix: fix, Source: e.Source,
		WireCode: e.WireCode(), StreamName: e.StreamName(), DefaultMessage: e.DefaultMessage,
	}
}

func explainWriteJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return 1
	}
	return 0
}

// writeExplanation writes the human explanation of e, as `keel explain
// CODE` prints it; other subcommands use it to explain a failure.
func writeExplanation(w io.Writer, e *catalog.Entry) {
	printEntry(w, e, &explainMatch{Input: e.Code, Code: e.Code, Status: e.Status})
}

// printEntry writes the human explanation of e and of what the input showed.
func printEntry(w io.Writer, e *catalog.Entry, m *explainMatch) {
	const width = 100
	status := "no HTTP response"
	if e.Status != 0 {
		status = "HTTP " + strconv.Itoa(e.Status)
	}
	fmt.Fprintf(w, "%s  (%s, %s)\n", e.Code, status, e.Category)
	fmt.Fprintln(w, textwrap.Fill(e.Summary, "", width))
	fmt.Fprintln(w)
	fmt.Fprintln(w, textwrap.Fill(e.Advice(), "retry:   ", width))
	if e.Unhealthy {
		fmt.Fprintln(w, "health:  counts against the target's circuit breaker")
	} else {
		fmt.Fprintln(w, "health:  does not count against the target's circuit breaker")
	}
	fmt.Fprintln(w, textwrap.Fill(e.Cause, "cause:   ", width))
	fmt.Fprintln(w, "fix:")
	for i, f := range e.Fix {
		fmt.Fprintln(w, textwrap.Fill(f, fmt.Sprintf("  %d. ", i+1), width))
	}
	fmt.Fprintln(w)
	if seen := seenLine(e, m); seen != "" {
		fmt.Fprintln(w, textwrap.Fill(seen, "seen:    ", width))
	}
	if len(m.SameStatus) > 0 {
		fmt.Fprintln(w, textwrap.Fill(strings.Join(m.SameStatus, ", "), fmt.Sprintf("codes with HTTP %d: ", m.Status), width))
	}
	switch wire := e.WireCode(); {
	case wire == "":
		fmt.Fprintln(w, "wire:    none; keel's own name for a failure without an AWS code")
	case wire != e.Code:
		fmt.Fprintf(w, "wire:    arrives as %s (stream: %s), told apart by its message\n", wire, e.StreamName())
	case e.Streamable:
		fmt.Fprintf(w, "wire:    %s; inside an event stream :exception-type %s\n", wire, e.StreamName())
	default:
		fmt.Fprintf(w, "wire:    %s\n", wire)
	}
	if len(e.Aliases) > 0 {
		fmt.Fprintln(w, textwrap.Fill(strings.Join(e.Aliases, ", "), "aliases: ", width))
	}
	fmt.Fprintf(w, "source:  %s\n", e.Source)
}

// seenLine describes what the input showed beyond the code itself, or "".
func seenLine(e *catalog.Entry, m *explainMatch) string {
	var parts []string
	pasted := !strings.EqualFold(m.Code, m.Input)
	if m.Code != "" && pasted {
		parts = append(parts, m.Code)
	}
	if m.Status != 0 && (pasted || m.Status != e.Status) {
		parts = append(parts, "HTTP "+strconv.Itoa(m.Status))
	}
	if m.RequestID != "" {
		parts = append(parts, "request "+m.RequestID)
	}
	if m.RetryAfterSeconds > 0 {
		parts = append(parts, fmt.Sprintf("retry after %gs", m.RetryAfterSeconds))
	}
	if m.Message != "" {
		parts = append(parts, strconv.Quote(m.Message))
	}
	return strings.Join(parts, ", ")
}

// explainList prints the whole catalog.
func explainList(jsonOut bool, stdout, stderr io.Writer) int {
	all := catalog.All()
	if jsonOut {
		out := make([]explainJSON, len(all))
		for i, e := range all {
			out[i] = entryJSON(e)
		}
		return explainWriteJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CODE\tSTATUS\tCATEGORY\tRETRY\tSUMMARY")
	for _, e := range all {
		status := "-"
		if e.Status != 0 {
			status = strconv.Itoa(e.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Code, status, e.Category, e.Retry, e.Summary)
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "keel explain: %v\n", err)
		return 1
	}
	return 0
}

// abbreviate shortens s to at most n runes for an error message.
func abbreviate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
