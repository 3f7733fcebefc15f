package batch

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/scenario"
	"github.com/keel-run/keel/internal/engine"
)

// outcomes counts the emulator's answers by code ("OK" for a reply).
type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) add(code string) {
	if code == "" {
		code = "OK"
	}
	o.mu.Lock()
	o.n[code]++
	o.mu.Unlock()
}

// startEmulator serves the emulator on 127.0.0.1 with the scenario text.
func startEmulator(t *testing.T, scenarioYAML string) (*url.URL, *outcomes) {
	t.Helper()
	sc, err := scenario.Parse([]byte(scenarioYAML))
	if err != nil {
		t.Fatal(err)
	}
	oc := &outcomes{n: map[string]int{}}
	s, err := emulator.New(emulator.Options{Seed: 7, Planner: scenario.NewInjector(sc, 7, nil).Plan,
		Observe: func(o emulator.Outcome) { oc.add(o.Code) }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u, oc
}

// TestRunAgainstEmulator runs both input formats through the real engine to
// the emulator, which fails some requests for good and some transiently:
// every record gets one line, terminal failures are parked, and the
// emulator served exactly one reply per successful record.
func TestRunAgainstEmulator(t *testing.T) {
	u, oc := startEmulator(t, `
rules:
  - errors:
      - code: ValidationException
        probability: 0.1
      - code: ServiceUnavailableException
        probability: 0.15
`)
	clk := clock.NewAuto(t0)
	eng, err := engine.New(engine.Options{Endpoints: attempt.FixedEndpoint{URL: u}, Clock: clk, DisableBudget: true, DisableBreaker: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, model string
		line        func(i int) string
	}{
		{name: "bedrock format, anthropic bodies", model: "anthropic.claude-3-haiku-20240307-v1:0", line: func(i int) string {
			return fmt.Sprintf(`{"recordId":"CALL%07d","modelInput":{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":[{"type":"text","text":"Question %d: why is the sky blue?"}]}]}}`, i, i)
		}},
		{name: "simple format", model: "amazon.nova-lite-v1:0", line: func(i int) string {
			return fmt.Sprintf(`{"id":%d,"prompt":"Question %d: %s","maxTokens":64}`, i, i, strings.Repeat("more words ", i%7))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oc.mu.Lock()
			oc.n = map[string]int{}
			oc.mu.Unlock()
			var b strings.Builder
			const n = 120
			for i := range n {
				b.WriteString(tt.line(i) + "\n")
			}
			store := dlq.NewMemory()
			o := baseOptions(t, writeFile(t, "in.jsonl", b.String()), eng, clk)
			o.Model = tt.model
			o.DLQ = &dlq.Recorder{Store: store, Clock: clk, Source: "batch"}
			sum, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			res := readResults(t, o.Out)
			parked, _ := store.List(context.Background(), dlq.Filter{})
			if len(res) != n || sum.Succeeded+sum.Failed != n || len(parked) != sum.Failed {
				t.Fatalf("%d results, %d parked; summary %+v", len(res), len(parked), sum)
			}
			if sum.Failed == 0 || sum.FailedByCode[catalog.CodeValidation] != sum.Failed {
				t.Errorf("want some ValidationException failures and nothing else: %v", sum.FailedByCode)
			}
			oc.mu.Lock()
			served := oc.n["OK"]
			oc.mu.Unlock()
			if served != sum.Succeeded {
				t.Errorf("the emulator served %d replies for %d successful records", served, sum.Succeeded)
			}
			for id, l := range res {
				if l.Error != nil {
					continue
				}
				if l.Reply == nil || *l.Reply == "" || l.Usage == nil || l.Usage.InputTokens == 0 || l.Usage.OutputTokens == 0 {
					t.Fatalf("record %s: %+v", id, l)
				}
				if o.Model == "anthropic.claude-3-haiku-20240307-v1:0" && len(l.ModelOutput) == 0 {
					t.Fatalf("record %s: no modelOutput", id)
				}
			}
		})
	}
}
