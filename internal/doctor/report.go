package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/textwrap"
)

// textWidth is the width WriteText wraps to: one screen of a terminal.
const textWidth = 100

// WriteText writes the report for a person: the checks by group, one line
// each (wrapped), the fix under a warning or failure, and a summary line.
func (r *Report) WriteText(w io.Writer, strict bool) error {
	var b strings.Builder
	models := "no model"
	if len(r.Models) > 0 {
		models = strings.Join(r.Models, ", ")
	}
	fmt.Fprintf(&b, "keel doctor: %s via %s; %s\n", r.Region, r.Endpoint, models)
	header := ""
	for _, res := range r.Results {
		if h := strings.TrimSpace(res.Group + " " + res.Subject); h != header {
			header = h
			b.WriteString(header + "\n")
		}
		prefix := fmt.Sprintf("  %-7s %-17s ", res.Status, res.Check)
		b.WriteString(textwrap.Fill(res.Seen, prefix, textWidth) + "\n")
		if res.Fix != "" {
			b.WriteString(textwrap.Fill(res.Fix, strings.Repeat(" ", len(prefix))+"fix: ", textWidth) + "\n")
		}
	}
	fmt.Fprintf(&b, "%d passed, %d warned, %d failed, %d not run in %s: exit %d\n",
		r.Count(Pass), r.Count(Warn), r.Count(Fail), r.Count(NotRun), r.Elapsed.Round(time.Millisecond), r.ExitCode(strict))
	_, err := io.WriteString(w, b.String())
	return err
}

// reportJSON is the report's JSON form (docs/doctor.md).
type reportJSON struct {
	*Report
	Summary  summary `json:"summary"`
	Strict   bool    `json:"strict"`
	ExitCode int     `json:"exitCode"`
	Millis   int64   `json:"elapsedMs"`
}

// summary counts the results by status.
type summary struct {
	Pass   int `json:"pass"`
	Warn   int `json:"warn"`
	Fail   int `json:"fail"`
	NotRun int `json:"notRun"`
}

// WriteJSON writes the report as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer, strict bool) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if r.Models == nil {
		r.Models = []string{}
	}
	return enc.Encode(reportJSON{Report: r, Strict: strict, ExitCode: r.ExitCode(strict), Millis: r.Elapsed.Milliseconds(),
		Summary: summary{Pass: r.Count(Pass), Warn: r.Count(Warn), Fail: r.Count(Fail), NotRun: r.Count(NotRun)}})
}
