// Package admin is the emulator's admin API: counters, the scenario in
// force, and resets, served under /_emulator/.
//
//	GET  /_emulator/counters   requests, outcomes by code, tokens reserved and settled, per model and region (JSON)
//	GET  /_emulator/scenario   the scenario file in force (YAML)
//	PUT  /_emulator/scenario   replace the scenario and its quotas; a file that does not parse gets 400 and the reason
//	POST /_emulator/reset      zero the counters and set every quota window back to its start level
//
// Mount the handler New returns on the server's mux at "/_emulator/", without
// stripping the prefix.
//
// The API is open unless Options.Token or Options.Verifier is set: then every
// request must carry "Authorization: Bearer <token>" or a SigV4 signature by
// one of the verifier's access keys, and is otherwise refused with 401 (no
// credentials) or 403 (wrong ones). A request is refused before any of its
// body is read, except that a SigV4 signature which passes every check of
// its headers has the body read, to check the hash it signs.
//
// Request bodies are bounded: MaxScenarioBytes each, and MaxBufferedBytes
// held at once by the requests being served.
package admin

import (
	"bytes"
	"cmp"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/keel-run/keel/internal/emulator/quota"
	"github.com/keel-run/keel/internal/emulator/scenario"
	"github.com/keel-run/keel/internal/sigv4verify"
)

// Prefix is the path the admin API is served under.
const Prefix = "/_emulator/"

const (
	// MaxScenarioBytes bounds the body of PUT /_emulator/scenario, and of
	// any request whose signature is checked. A larger body is answered
	// with 413, without being read when its Content-Length says so.
	MaxScenarioBytes = 1 << 20
	// MaxBufferedBytes bounds the request bodies the admin API holds at
	// once; a request whose body would pass it is answered with 503. A
	// body of known length counts from before it is read, one of unknown
	// length as MaxScenarioBytes. Scenario files are kilobytes, so four of
	// the largest at once is room enough, and a budget of its own, apart
	// from the emulator server's --max-buffered, keeps a load test that
	// fills that one from blocking a scenario change, and admin requests
	// from crowding out model requests.
	MaxBufferedBytes = 4 * MaxScenarioBytes
)

// Options say what the admin API reports on and controls. A nil field turns
// off what depends on it: with no Injector the scenario endpoints answer
// 404; with no Meter or Outcomes the counters leave those parts out.
type Options struct {
	// Injector plans faults; PUT /_emulator/scenario replaces its scenario.
	Injector *scenario.Injector
	// Meter enforces quotas; PUT /_emulator/scenario replaces its limits
	// with the new file's quotas section, and reset sets its windows back
	// to their start level.
	Meter *quota.Meter
	// Outcomes counts responses by code; reset zeroes it.
	Outcomes *Outcomes
	// Token, when not empty, lets a request that carries
	// "Authorization: Bearer <Token>" be served.
	Token string
	// Verifier, when it checks signatures (it has keys), lets a request
	// signed with SigV4 by one of its keys be served. The emulator passes
	// the one that checks the Bedrock API, so the same credentials work.
	Verifier *sigv4verify.Verifier
}

// New returns the admin API's handler.
func New(o Options) http.Handler {
	_, serve := newHandler(o)
	return serve
}

// newHandler returns the handler behind New's, and New's.
func newHandler(o Options) (*handler, http.Handler) {
	h := &handler{o: o}
	if o.Token != "" || o.Verifier.Enabled() {
		return h, guard{h: h, next: h.mux()}
	}
	return h, h.mux()
}

func (h *handler) mux() http.Handler {
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
	// buffered counts the request-body bytes held by requests being
	// served, bounded by MaxBufferedBytes.
	buffered atomic.Int64
}

// guard lets through the requests that carry the admin token or a valid
// SigV4 signature. It reads a body only to check a signature that passes
// every check of the headers: a request with no credentials, malformed ones
// or a wrong token is refused first, so it cannot make the API hold a body.
// A refusal never repeats the admin token, nor a token sent in its place.
type guard struct {
	h    *handler
	next http.Handler
}

func (g guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o := &g.h.o
	auth := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	switch {
	case auth == "":
		if o.Token != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="keel emulator admin API"`)
		}
		writeError(w, http.StatusUnauthorized, "the admin API "+g.wants())
		return
	case strings.EqualFold(scheme, "Bearer"): // schemes are case-insensitive (RFC 9110)
		switch {
		case o.Token == "":
			writeError(w, http.StatusForbidden, "this emulator has no admin token; the admin API "+g.wants())
			return
		case subtle.ConstantTimeCompare([]byte(tok), []byte(o.Token)) != 1:
			writeError(w, http.StatusForbidden, "the admin token does not match")
			return
		}
	case strings.HasPrefix(auth, "AWS4-"):
		if !o.Verifier.Enabled() {
			writeError(w, http.StatusForbidden, "this emulator has no access keys to check a signature with; the admin API "+g.wants())
			return
		}
		if rej := o.Verifier.CheckHeaders(r); rej != nil {
			writeError(w, http.StatusForbidden, rej.Code+": "+rej.Message)
			return
		}
		body, release, ok := g.h.readBody(w, r, "the body")
		if !ok {
			return
		}
		defer release()
		if rej := o.Verifier.Verify(r, body); rej != nil {
			writeError(w, http.StatusForbidden, rej.Code+": "+rej.Message)
			return
		}
		r.Body = &checkedBody{Reader: bytes.NewReader(body), b: body}
	default:
		writeError(w, http.StatusForbidden, "the Authorization scheme is not one the admin API takes; it "+g.wants())
		return
	}
	g.next.ServeHTTP(w, r)
}

// wants says what the admin API takes.
func (g guard) wants() string {
	switch {
	case g.h.o.Token != "" && g.h.o.Verifier.Enabled():
		return "needs Authorization: Bearer with the admin token, or a SigV4 signature by one of the emulator's access keys"
	case g.h.o.Token != "":
		return "needs Authorization: Bearer with the admin token"
	}
	return "needs a SigV4 signature by one of the emulator's access keys (service bedrock, any region)"
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
	b, release, ok := h.readBody(w, r, "scenario")
	if !ok {
		return
	}
	defer release()
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

// readBody reads r's body, of at most MaxScenarioBytes, holding its size
// against MaxBufferedBytes until the caller calls release. It reports false,
// having answered, when it could not. what names the body in the answer.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request, what string) (b []byte, release func(), ok bool) {
	if pre, ok := r.Body.(*checkedBody); ok {
		return pre.b, func() {}, true // read, and held, by the guard
	}
	n := r.ContentLength
	if n > MaxScenarioBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s is larger than %d bytes", what, MaxScenarioBytes))
		return nil, nil, false
	}
	hold := n
	if n < 0 {
		hold = MaxScenarioBytes
	}
	if h.buffered.Add(hold) > MaxBufferedBytes {
		h.buffered.Add(-hold)
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the admin API is holding its limit of %d bytes of request bodies; try again later", MaxBufferedBytes))
		return nil, nil, false
	}
	release = func() { h.buffered.Add(-hold) }
	buf := bytes.NewBuffer(make([]byte, 0, max(n, 0)+bytes.MinRead))
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxScenarioBytes)); err != nil {
		release()
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s is larger than %d bytes", what, MaxScenarioBytes))
			return nil, nil, false
		}
		writeError(w, http.StatusBadRequest, "reading "+what+": "+err.Error())
		return nil, nil, false
	}
	return buf.Bytes(), release, true
}

// checkedBody is a request body the guard has read to check its signature.
type checkedBody struct {
	*bytes.Reader
	b []byte
}

func (*checkedBody) Close() error { return nil }

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
