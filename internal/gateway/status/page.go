package status

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/engine"
)

// RefreshSeconds is how often the page reloads itself: fresh enough to
// watch a throttle storm or a breaker open, rare enough that an open tab
// costs the gateway nothing worth measuring.
const RefreshSeconds = 5

// JSONPath is where Handler serves the figures as JSON (as "/?format=json"
// does).
const JSONPath = "/status.json"

// Source is what the status page shows.
type Source struct {
	// Targets returns the engine's view of its targets (Engine.Snapshot).
	// Nil: the page shows none.
	Targets func() []engine.TargetStatus
	// Callers keeps the per-caller figures. Nil: the page shows none.
	Callers *Recorder
	// Shared returns the health of the state shared through Redis; ok
	// false: none is configured. Nil: the page shows none.
	Shared func() (s SharedStatus, ok bool)
	// Cache returns the response cache's figures; ok false: the cache is
	// off. ctx is the page request's. Nil: the page shows none.
	Cache func(ctx context.Context) (s CacheStatus, ok bool)
	// Version is the gateway's version, shown in the page's header.
	Version string
	// Clock gives the page's time. Nil: the wall clock.
	Clock clock.Clock
}

// Handler serves the status page at "/" and its figures as JSON at
// JSONPath or "/?format=json", for GET and HEAD; other paths get 404, other
// methods 405. Every value is escaped (html/template): a model id or caller
// name is shown as text whatever it holds.
func Handler(src Source) http.Handler {
	if src.Clock == nil {
		src.Clock = clock.Real{}
	}
	return &handler{src: src}
}

type handler struct{ src Source }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	asJSON := false
	switch r.URL.Path {
	case "/":
		switch f := r.URL.Query().Get("format"); f {
		case "", "html":
		case "json":
			asJSON = true
		default:
			http.Error(w, fmt.Sprintf("status: format %q is not known; want html or json", f), http.StatusBadRequest)
			return
		}
	case JSONPath:
		asJSON = true
	default:
		http.Error(w, fmt.Sprintf("status: no page at %q; the status page is at / and its figures at %s", r.URL.Path, JSONPath), http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, fmt.Sprintf("status: method %s not allowed; want GET or HEAD", r.Method), http.StatusMethodNotAllowed)
		return
	}
	v := h.src.view(r.Context())
	var buf bytes.Buffer
	hdr := w.Header()
	if asJSON {
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		hdr.Set("Content-Type", "application/json")
	} else {
		if err := page.Execute(&buf, v); err != nil {
			http.Error(w, "status: render the page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		// No script runs on the page, none may: a value that got past the
		// escaping still could not run.
		hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	}
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		return
	}
	w.Write(buf.Bytes())
}

// The page's figures, as the template and the JSON view take them.

type pageView struct {
	Time    time.Time `json:"time"`
	Version string    `json:"version"`
	// RefreshSeconds and RecentErrorSeconds say how the page refreshes and
	// how far back a target's recent errors count.
	RefreshSeconds     int          `json:"refreshSeconds"`
	RecentErrorSeconds int          `json:"recentErrorSeconds"`
	Targets            []targetView `json:"targets"`
	Callers            []callerView `json:"callers"`
	// Shared is the Redis connection's health; absent without Redis.
	Shared *sharedView `json:"shared,omitempty"`
	// Cache is the response cache's figures; absent when it is off.
	Cache *cacheView `json:"cache,omitempty"`
}

// CacheStatus is the response cache's figures (keel's CacheStats, with the
// store named).
type CacheStatus struct {
	// Mode is "deterministic" or "all"; Store "memory", "sqlite:PATH" or
	// "redis".
	Mode, Store string
	// Calls by how the cache served them.
	Hits, Misses, Coalesced, Bypassed int64
	// Stored and StoredBytes are the replies this process stored and
	// their size; Failures the store operations that failed.
	Stored, StoredBytes, Failures int64
	// Entries and Bytes are what the store holds, -1 when it cannot count
	// them (Redis); Evictions what it evicted to stay within its bound.
	Entries, Bytes, Evictions int64
	// Waiting is the calls waiting now for an identical call in flight.
	Waiting int
}

type cacheView struct {
	Mode      string `json:"mode"`
	Store     string `json:"store"`
	Hits      int64  `json:"hits"`
	Misses    int64  `json:"misses"`
	Coalesced int64  `json:"coalesced"`
	Bypassed  int64  `json:"bypassed"`
	// HitPercent is the calls served from the cache (hits and coalesced)
	// against the calls it could serve (those and misses); 0 before any.
	HitPercent    float64 `json:"hitPercent"`
	Stored        int64   `json:"stored"`
	StoredBytes   int64   `json:"storedBytes"`
	StoreFailures int64   `json:"storeFailures"`
	// Entries and Bytes are -1 when the store cannot count them (Redis).
	Entries   int64 `json:"entries"`
	Bytes     int64 `json:"bytes"`
	Evictions int64 `json:"evictions"`
	Waiting   int   `json:"waiting"`
}

func cacheOf(c CacheStatus) *cacheView {
	cv := &cacheView{Mode: c.Mode, Store: c.Store, Hits: c.Hits, Misses: c.Misses, Coalesced: c.Coalesced, Bypassed: c.Bypassed,
		Stored: c.Stored, StoredBytes: c.StoredBytes, StoreFailures: c.Failures, Entries: c.Entries, Bytes: c.Bytes,
		Evictions: c.Evictions, Waiting: c.Waiting}
	if n := c.Hits + c.Coalesced + c.Misses; n > 0 {
		cv.HitPercent = math.Round(float64(c.Hits+c.Coalesced)*1000/float64(n)) / 10
	}
	return cv
}

// SharedStatus is the health of the state replicas share through Redis.
type SharedStatus struct {
	Degraded           bool
	DownSince          time.Time
	LastError          string
	Failures, Episodes uint64
	Replicas           int
	Share              float64
	// ShareGuessed: Share is 1 because no count backs it (redis.share
	// unset, no heartbeat got through).
	ShareGuessed bool
	// ReplyErrors counts error replies that were no outage.
	ReplyErrors uint64
	// AccountConflict names another AWS account whose processes share
	// the Redis and prefix; empty when none does.
	AccountConflict string
}

type sharedView struct {
	// State is "shared" while Redis answers, "local" while this process
	// falls back to its share of each limit.
	State        string  `json:"state"`
	DownSeconds  float64 `json:"downSeconds,omitempty"`
	LastError    string  `json:"lastError,omitempty"`
	Failures     uint64  `json:"failures"`
	Episodes     uint64  `json:"episodes"`
	Replicas     int     `json:"replicas"`
	SharePercent float64 `json:"sharePercent"`
	// ShareGuessed: SharePercent is 100 because no replica was ever
	// counted and redis.share is unset.
	ShareGuessed bool   `json:"shareGuessed,omitempty"`
	ReplyErrors  uint64 `json:"replyErrors"`
	// AccountConflict names another AWS account sharing the prefix.
	AccountConflict string `json:"accountConflict,omitempty"`
}

type targetView struct {
	Model   string       `json:"model"`
	Region  string       `json:"region"`
	Tier    string       `json:"tier"`
	Breaker *breakerView `json:"breaker,omitempty"`
	Quota   *quotaView   `json:"quota,omitempty"`
	Errors  []errorView  `json:"errors"`
}

type breakerView struct {
	State string    `json:"state"` // closed, open, half-open
	Since time.Time `json:"since"`
	// For reads how long it has been in State, rounded to the second.
	For string `json:"-"`
	// ProbeAt is when an open breaker probes next.
	ProbeAt *time.Time `json:"probeAt,omitempty"`
	// Alone: open or half-open in this replica only, the fleet's shared
	// breaker closed (no quorum).
	Alone bool `json:"alone,omitempty"`
	// Successes and Failures are the outcomes in a closed breaker's window.
	Successes int64 `json:"successes"`
	Failures  int64 `json:"failures"`
}

type quotaView struct {
	// Limit is the tokens-per-minute limit in force; zero when unknown.
	Limit int64 `json:"limitTokensPerMinute"`
	// LimitSource is "configured", "discovered", "learned" or "" (unknown).
	LimitSource string `json:"limitSource"`
	// Reserved is what the governor granted over the last minute;
	// UsePercent is Reserved against Limit (0 when Limit is unknown), Bar
	// the same capped at 100 for the bar's width.
	Reserved   int64 `json:"reservedTokensPerMinute"`
	UsePercent int64 `json:"usePercent"`
	Bar        int64 `json:"-"`
	Settled    int64 `json:"settledTokensPerMinute"`
	InFlight   int64 `json:"inFlightTokens"`
	Available  int64 `json:"availableTokens"`
	// Queued is the calls waiting per priority class.
	Queued    map[string]int `json:"queued"`
	Paused    float64        `json:"pausedSeconds"`
	Throttles int64          `json:"throttles"`
}

type errorView struct {
	Code   string    `json:"code"`
	Recent int64     `json:"recent"`
	Total  int64     `json:"total"`
	Last   time.Time `json:"last"`
}

type callerView struct {
	Name           string       `json:"name"`
	Requests       int64        `json:"requests"`
	Failures       int64        `json:"failures"`
	Refused        int64        `json:"refused"`
	InputTokens    int64        `json:"inputTokens"`
	OutputTokens   int64        `json:"outputTokens"`
	MeanDurationMs float64      `json:"meanDurationMs"`
	Refusals       []CodeCount  `json:"refusals"`
	Recent         []recentView `json:"recent"`
	LastSeen       *time.Time   `json:"lastSeen,omitempty"`
}

type recentView struct {
	Time     time.Time `json:"time"`
	Op       string    `json:"op"`
	Model    string    `json:"model"`
	Status   int       `json:"status"`
	Code     string    `json:"code"`
	Attempts int       `json:"attempts"`
	Refused  bool      `json:"refused"`
}

func (src *Source) view(ctx context.Context) pageView {
	now := src.Clock.Now()
	v := pageView{Time: now.UTC(), Version: src.Version, RefreshSeconds: RefreshSeconds,
		RecentErrorSeconds: int(engine.RecentErrorWindow / time.Second), Targets: []targetView{}, Callers: []callerView{}}
	if src.Targets != nil {
		for _, t := range src.Targets() {
			v.Targets = append(v.Targets, targetOf(t, now))
		}
	}
	for _, c := range src.Callers.Callers() {
		v.Callers = append(v.Callers, callerOf(c))
	}
	if src.Shared != nil {
		if s, ok := src.Shared(); ok {
			sv := &sharedView{State: "shared", Failures: s.Failures, Episodes: s.Episodes, Replicas: s.Replicas,
				SharePercent: math.Round(s.Share*1000) / 10, ShareGuessed: s.ShareGuessed, ReplyErrors: s.ReplyErrors,
				AccountConflict: s.AccountConflict}
			if s.Degraded {
				sv.State, sv.LastError = "local", s.LastError
				sv.DownSeconds = math.Round(now.Sub(s.DownSince).Seconds()*10) / 10
			}
			v.Shared = sv
		}
	}
	if src.Cache != nil {
		if c, ok := src.Cache(ctx); ok {
			v.Cache = cacheOf(c)
		}
	}
	return v
}

func targetOf(t engine.TargetStatus, now time.Time) targetView {
	tv := targetView{Model: t.Target.Model, Region: t.Target.Region, Tier: t.Target.Tier, Errors: []errorView{}}
	if tv.Tier == "" {
		tv.Tier = bedrock.TierDefault
	}
	if b := t.Breaker; b != nil {
		bv := &breakerView{State: b.State.String(), Since: b.Since.UTC(), For: now.Sub(b.Since).Round(time.Second).String(),
			Successes: b.Successes, Failures: b.Failures, Alone: b.Alone}
		if b.State == breaker.Open {
			p := b.ProbeAt.UTC()
			bv.ProbeAt = &p
		}
		tv.Breaker = bv
	}
	if q := t.Quota; q != nil {
		qv := &quotaView{Limit: q.Limit, LimitSource: t.LimitSource(), Reserved: q.ReservedPerMinute, Settled: q.SettledPerMinute,
			InFlight: q.InFlightTokens, Available: q.Available, Paused: q.PausedFor.Seconds(), Throttles: q.Throttles,
			Queued: map[string]int{}}
		if q.Limit > 0 {
			qv.UsePercent = q.ReservedPerMinute * 100 / q.Limit
			qv.Bar = min(max(qv.UsePercent, 0), 100)
		}
		for c := admission.Interactive; c <= admission.Batch; c++ {
			qv.Queued[c.String()] = q.Classes[c].Queued
		}
		tv.Quota = qv
	}
	for _, e := range t.Errors {
		tv.Errors = append(tv.Errors, errorView{Code: e.Code, Recent: e.Recent, Total: e.Total, Last: e.Last.UTC()})
	}
	return tv
}

func callerOf(c CallerStatus) callerView {
	cv := callerView{Name: c.Name, Requests: c.Requests, Failures: c.Failures, Refused: c.Refused,
		InputTokens: c.InputTokens, OutputTokens: c.OutputTokens,
		MeanDurationMs: float64(c.MeanDuration.Microseconds()) / 1000, Refusals: c.Refusals, Recent: []recentView{}}
	if cv.Refusals == nil {
		cv.Refusals = []CodeCount{}
	}
	if !c.LastSeen.IsZero() {
		t := c.LastSeen.UTC()
		cv.LastSeen = &t
	}
	for _, r := range c.Recent {
		cv.Recent = append(cv.Recent, recentView{Time: r.Time.UTC(), Op: r.Op, Model: r.Model, Status: r.Status, Code: r.Code,
			Attempts: r.Attempts, Refused: r.Refused})
	}
	return cv
}

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("status").Funcs(template.FuncMap{
	"clock": func(t time.Time) string { return t.Format("15:04:05") },
	"bytes": byteSize,
}).Parse(pageHTML))

// byteSize writes n bytes for a person: "512 B", "14.5 KiB", "256.0 MiB".
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[i])
}
