package bedrock

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite docs/emulator.md's model table from models.json")

const (
	docPath     = "../../docs/emulator.md"
	tableStart  = "<!-- model table: generated from internal/bedrock/models.json by `go test ./internal/bedrock -run TestDocTable -update` -->\n"
	tableEnd    = "<!-- end of model table -->\n"
	tableHeader = "| model id | name | format | max output | context | burndown | profiles | on demand | prefill | anthropic_version | service tiers | first token | tokens/s | prompt cache |\n" +
		"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)

// docTable renders the model table as docs/emulator.md shows it.
func docTable(ms []ModelInfo) string {
	var b strings.Builder
	b.WriteString(tableHeader)
	dash := func(s string) string {
		if s == "" {
			return "—"
		}
		return s
	}
	yes := func(v bool, y, n string) string {
		if v {
			return y
		}
		return n
	}
	for _, m := range ms {
		cache := "—"
		if m.PromptCacheMin > 0 {
			cache = fmt.Sprint(m.PromptCacheMin)
		}
		prefill := yes(m.Prefill, "yes", "no")
		if m.Format == "llama" || m.Format == "titan" {
			prefill = "—"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %d | %d | %v | %s | %s | %s | %s | %s | %s | %v | %s |\n",
			m.ID, m.Name, m.Format, m.MaxOutput, m.ContextWindow, m.Burndown, dash(strings.Join(m.Profiles, ", ")),
			yes(m.ProfileOnly, "profile only", "yes"), prefill, dash(strings.Join(m.AnthropicVersions, ", ")),
			strings.Join(m.ServiceTiers, ", "), time.Duration(m.TTFTMillis)*time.Millisecond, m.TokensPerSecond, cache)
	}
	return b.String()
}

// TestDocTable checks that docs/emulator.md shows the model table as
// models.json has it.
func TestDocTable(t *testing.T) {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, tableStart), strings.Index(s, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no model table between %q and %q", docPath, tableStart, tableEnd)
	}
	want := docTable(Models())
	if got := s[i+len(tableStart) : j]; got != want {
		if *update {
			if err := os.WriteFile(docPath, []byte(s[:i+len(tableStart)]+want+s[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("%s's model table differs from models.json; run go test ./internal/bedrock -run TestDocTable -update\ngot:\n%s\nwant:\n%s", docPath, got, want)
	}
}
