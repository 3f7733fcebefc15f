// Package admin is the emulator's admin API: counters, the scenario in
// force, and resets, served under /_emulator/.
//
//	GET  /_emulator/counters   requests, outcomes by code, tokens reserved and settled, per model and region (JSON)
//	GET  /_emulator/scenario   the scenario file in force (YAML)
//	PUT  /_emulator/scenario   replace the scenario and its quotas; a file that does not parse gets 400 and the reason
//	POST /_emulator/reset      zero the counters and refill every quota window
//
// Mount the handler New returns on the server's mux at "/_emulator/", without
// stripping the prefix.
package admin

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/keel-run/keel/internal/emulator/quota"
	"github.com/keel-run/keel/internal/emulator/scenario"
)

// Prefix is the path the admin API is served under.
const Prefix = "/_emulator/"

// MaxScenarioBytes bounds the body of PUT /_emulator/scenario.
const MaxScenarioBytes = 1 << 20

// Options say what the admin API reports on and controls. A nil field turns
// off what depends on it: with no Injector the scenario endpoints answer
// 404; with no Meter or Outcomes the counters leave those parts out.
type Options struct {
	// Injector plans faults; PUT /_emulator/scenario replaces its scenario.
	Injector *scenario.Injector
	// Meter enforces quotas; PUT /_emulator/scenario replaces its limits
	// with the new file's quotas section, and reset refills its windows.
	Meter *quota.Meter
	// Outcomes counts responses by code; reset zeroes it.
	Outcomes *Outcomes
}

// New returns the admin API's handler.
func New(o Options) http.Handler {
	h := &handler{o: o}
	mux := http.NewServeMux()
	mux.Handle(Prefix+"counters", methods{http.MethodGet: h.counters})
	mux.Handle(Prefix+"scenario", methods{http.MethodGet: h.getScenario, http.MethodPut: h.putScenario})
	mux.Handle(Prefix+"reset", methods{http.MethodPost: h.reset})
	mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no admin endpoint %s; there are GET %[2]scounters, "+
			"GET and PUT %[2]sscenario, and POST %[2]sreset", r.URL.Path, Prefix))
	})
	return mux
}

// methods routes one path by request method, answering 405 to the others.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if fn, ok := m[r.Method]; ok {
		fn(w, r)
		return
	}
	allowed := make([]string, 0, len(m))
	for k := range m {
		allowed = append(allowed, k)
	}
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s is not allowed; use %s", r.Method, r.URL.Path, allow))
}

type handler struct {
	o Options
}

// Counters is the body of GET /_emulator/counters.
type Counters struct {
	// Requests counts requests that reached the quota meter.
	Requests int64 `json:"requests"`
	// Outcomes counts responses by code ("OK" for normal replies).
	Outcomes map[string]int64 `json:"outcomes"`
	// Targets break both down per model and region, sorted.
	Targets []Target `json:"targets"`
}

// Target is one model in one region in Counters.
type Target struct {
	quota.Usage
	Outcomes map[string]int64 `json:"outcomes"`
}

func (h *handler) counters(w http.ResponseWriter, r *http.Request) {
	c := Counters{Outcomes: map[string]int64{}, Targets: []Target{}}
	type pair struct{ model, region string }
	byPair := map[pair]*Target{}
	if h.o.Meter != nil {
		for _, u := range h.o.Meter.Snapshot() {
			c.Requests += u.Requests
			byPair[pair{u.Model, u.Region}] = &Target{Usage: u, Outcomes: map[string]int64{}}
		}
	}
	if h.o.Outcomes != nil {
		for _, o := range h.o.Outcomes.Snapshot() {
			c.Outcomes[o.Code] += o.Count
			t := byPair[pair{o.Model, o.Region}]
			if t == nil {
				t = &Target{Usage: quota.Usage{Model: o.Model, Region: o.Region}, Outcomes: map[string]int64{}}
				byPair[pair{o.Model, o.Region}] = t
			}
			t.Outcomes[o.Code] += o.Count
		}
	}
	for _, t := range byPair {
		c.Targets = append(c.Targets, *t)
	}
	slices.SortFunc(c.Targets, func(a, b Target) int {
		return cmp.Or(cmp.Compare(a.Model, b.Model), cmp.Compare(a.Region, b.Region))
	})
	writeJSON(w, http.StatusOK, c)
}

func (h *handler) getScenario(w http.ResponseWriter, r *http.Request) {
	if h.o.Injector == nil {
		writeError(w, http.StatusNotFound, "this emulator has no scenario engine")
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	src := h.o.Injector.Scenario().Source()
	if src == nil && len(h.o.Injector.Scenario().Rules) > 0 {
		src = []byte("# this scenario was built in Go and has no source text\n")
	}
	_, _ = w.Write(src)
}

func (h *handler) putScenario(w http.ResponseWriter, r *http.Request) {
	if h.o.Injector == nil {
		writeError(w, http.StatusNotFound, "this emulator has no scenario engine")
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxScenarioBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("scenario is larger than %d bytes", MaxScenarioBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "reading scenario: "+err.Error())
		return
	}
	s, err := scenario.Parse(b)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Quotas first: a request that sees the new rules should not run
	// against the old limits for long.
	if h.o.Meter != nil {
		h.o.Meter.SetTable(s.Quotas)
	}
	h.o.Injector.Replace(s)
	writeJSON(w, http.StatusOK, map[string]int{"rules": len(s.Rules), "quotas": len(s.Quotas)})
}

func (h *handler) reset(w http.ResponseWriter, r *http.Request) {
	if h.o.Meter != nil {
		h.o.Meter.Reset()
	}
	if h.o.Outcomes != nil {
		h.o.Outcomes.Reset()
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}
