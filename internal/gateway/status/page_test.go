package status

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/engine"
)

const hostile = `<script>alert("x")</script>`

// fixture is a Source with two targets (one breaker open, one governed at
// 25 % of its limit with calls queued) and two callers, one named hostile.
func fixture(t *testing.T) Source {
	t.Helper()
	clk := clock.NewFake(epoch)
	r, err := NewRecorder(Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	r.Observe(ok("team-a", 120, 30))
	r.Observe(ok("team-a", 80, 20))
	r.Observe(refused("team-a", catalog.CodeNoQuotaBeforeDeadline))
	r.Observe(Event{Caller: hostile, Op: "converse", Model: "<img src=x onerror=alert(1)>", Status: 500, Code: catalog.CodeInternalServer})
	quota := &admission.Stats{Limit: 40_000, Learning: true, ReservedPerMinute: 10_000, SettledPerMinute: 6_000, InFlightTokens: 1_500,
		Available: 30_000, Throttles: 2}
	quota.Classes[admission.Interactive].Queued = 3
	quota.Classes[admission.Batch].Queued = 7
	targets := []engine.TargetStatus{
		{Target: attempt.Target{Model: haiku, Region: "us-east-1"},
			Breaker: &breaker.Snapshot{State: breaker.Open, Since: epoch.Add(-90 * time.Second), ProbeAt: epoch.Add(30 * time.Second), Alone: true},
			Errors:  []engine.ErrorCount{{Code: catalog.CodeInternalServer, Recent: 9, Total: 12, Last: epoch}, {Code: catalog.CodeCircuitOpen, Recent: 4, Total: 4, Last: epoch}}},
		{Target: attempt.Target{Model: hostile, Region: "us-west-2", Tier: "flex"},
			Breaker: &breaker.Snapshot{State: breaker.Closed, Since: epoch.Add(-time.Hour), Successes: 40, Failures: 1},
			Quota:   quota},
	}
	return Source{Targets: func() []engine.TargetStatus { return targets }, Callers: r, Version: "v1.2.3", Clock: clk}
}

func get(t *testing.T, h http.Handler, method, target string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Result()
}

func TestHandlerRoutes(t *testing.T) {
	h := Handler(fixture(t))
	tests := []struct {
		name, method, target string
		wantStatus           int
		wantType             string
		wantBody             string // a part of the body
	}{
		{name: "page", method: "GET", target: "/", wantStatus: 200, wantType: "text/html; charset=utf-8", wantBody: `<meta http-equiv="refresh" content="5">`},
		{name: "page asked for by format", method: "GET", target: "/?format=html", wantStatus: 200, wantType: "text/html; charset=utf-8", wantBody: "<h2>Targets</h2>"},
		{name: "JSON by format", method: "GET", target: "/?format=json", wantStatus: 200, wantType: "application/json", wantBody: `"version": "v1.2.3"`},
		{name: "JSON by path", method: "GET", target: "/status.json", wantStatus: 200, wantType: "application/json", wantBody: `"refreshSeconds": 5`},
		{name: "HEAD has no body", method: "HEAD", target: "/", wantStatus: 200, wantType: "text/html; charset=utf-8"},
		{name: "unknown format", method: "GET", target: "/?format=xml", wantStatus: 400, wantBody: `format "xml" is not known`},
		{name: "unknown path", method: "GET", target: "/admin", wantStatus: 404, wantBody: `no page at "/admin"`},
		{name: "POST", method: "POST", target: "/", wantStatus: 405, wantBody: "method POST not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(t, h, tt.method, tt.target)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantType != "" && resp.Header.Get("Content-Type") != tt.wantType {
				t.Fatalf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tt.wantType)
			}
			if tt.method == "HEAD" && len(body) != 0 {
				t.Fatalf("HEAD answered with a body of %d bytes", len(body))
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("body lacks %q:\n%s", tt.wantBody, body)
			}
		})
	}
}

// TestPageShowsFigures checks the page's text: each figure in the row it
// belongs to.
func TestPageShowsFigures(t *testing.T) {
	body := read(t, Handler(fixture(t)), "/")
	for _, want := range []string{
		`2026-12-03 17:00:00 UTC`, `version <span id="version">v1.2.3</span>`,
		// the open breaker, since when and its probe
		`<span class="state state-open">open</span><br><span class="small">for 1m30s · probe at 17:00:30 · this replica only`,
		// its errors, recent and total
		`<span class="code">InternalServerException</span> 9 (12)`, `<span class="code">CircuitOpen</span> 4 (4)`,
		// the governed target: the bar at 25 %, the figures, the queues
		`style="width: 25%"`, `10000 / 40000 reserved (25%), learned`, `6000 settled · 1500 held in flight · 2 throttles`,
		`interactive 3<br>batch 7`, `us-west-2 · flex`, `40 ok / 1 failed in window`,
		// the callers
		`<td class="name">team-a</td>`, `<td class="num requests">3</td>`, `200 / 50`, `NoQuotaBeforeDeadline 1`,
		// a target never governed
		`not governed`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// TestPageEscapes checks that a model id and a caller name holding markup
// are shown as text, in the page and in the JSON view.
func TestPageEscapes(t *testing.T) {
	h := Handler(fixture(t))
	page := read(t, h, "/")
	for _, bad := range []string{"<script", "<img"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q unescaped", bad)
		}
	}
	for _, want := range []string{
		`<span class="model">&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</span>`, // the model id
		`<td class="name">&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</td>`,      // the caller name
		`&lt;img src=x onerror=alert(1)&gt;`,                                         // a failed request's model id
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks the escaped %q", want)
		}
	}
	js := read(t, h, "/status.json")
	if strings.Contains(js, "<script") || !strings.Contains(js, `\u003cscript\u003ealert(\"x\")\u003c/script\u003e`) {
		t.Errorf("JSON view does not escape the markup:\n%s", js)
	}
}

func TestJSONView(t *testing.T) {
	var v struct {
		Time    time.Time `json:"time"`
		Version string    `json:"version"`
		Targets []struct {
			Model, Region, Tier string
			Breaker             *struct {
				State   string     `json:"state"`
				Since   time.Time  `json:"since"`
				ProbeAt *time.Time `json:"probeAt"`
				Alone   bool       `json:"alone"`
			} `json:"breaker"`
			Quota *struct {
				Limit       int64          `json:"limitTokensPerMinute"`
				LimitSource string         `json:"limitSource"`
				UsePercent  int64          `json:"usePercent"`
				Queued      map[string]int `json:"queued"`
			} `json:"quota"`
			Errors []struct {
				Code   string `json:"code"`
				Recent int64  `json:"recent"`
			} `json:"errors"`
		} `json:"targets"`
		Callers []struct {
			Name     string      `json:"name"`
			Requests int64       `json:"requests"`
			Refused  int64       `json:"refused"`
			Refusals []CodeCount `json:"refusals"`
			Recent   []struct {
				Code string `json:"code"`
			} `json:"recent"`
		} `json:"callers"`
	}
	if err := json.Unmarshal([]byte(read(t, Handler(fixture(t)), "/?format=json")), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Time.Equal(epoch) || v.Version != "v1.2.3" || len(v.Targets) != 2 || len(v.Callers) != 2 {
		t.Fatalf("view %+v", v)
	}
	open, gov := v.Targets[0], v.Targets[1]
	checks := []struct {
		name string
		ok   bool
	}{
		{"open breaker with its probe time", open.Breaker != nil && open.Breaker.State == "open" && open.Breaker.ProbeAt != nil && open.Breaker.ProbeAt.Equal(epoch.Add(30*time.Second))},
		{"open breaker since", open.Breaker != nil && open.Breaker.Since.Equal(epoch.Add(-90*time.Second))},
		{"open in this replica only", open.Breaker != nil && open.Breaker.Alone && !gov.Breaker.Alone},
		{"ungoverned target has no quota", open.Quota == nil && open.Tier == "default"},
		{"errors by code, recent", len(open.Errors) == 2 && open.Errors[0].Code == catalog.CodeInternalServer && open.Errors[0].Recent == 9},
		{"quota use and source", gov.Quota != nil && gov.Quota.Limit == 40_000 && gov.Quota.UsePercent == 25 && gov.Quota.LimitSource == "learned"},
		{"queues per class", gov.Quota != nil && gov.Quota.Queued["interactive"] == 3 && gov.Quota.Queued["batch"] == 7},
		{"closed breaker has no probe time", gov.Breaker != nil && gov.Breaker.State == "closed" && gov.Breaker.ProbeAt == nil},
		{"callers sorted by name", v.Callers[0].Name == hostile && v.Callers[1].Name == "team-a"},
		{"a caller's requests and refusals", v.Callers[1].Requests == 3 && v.Callers[1].Refused == 1 &&
			len(v.Callers[1].Refusals) == 1 && v.Callers[1].Refusals[0] == CodeCount{Code: catalog.CodeNoQuotaBeforeDeadline, Count: 1}},
		{"a caller's recent failures", len(v.Callers[0].Recent) == 1 && v.Callers[0].Recent[0].Code == catalog.CodeInternalServer},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: view %+v", c.name, v)
		}
	}
}

// TestEmptySource checks the page and the JSON view with nothing to show:
// empty lists, not null, and the page says so.
func TestEmptySource(t *testing.T) {
	h := Handler(Source{})
	if page := read(t, h, "/"); !strings.Contains(page, "No target seen yet.") || !strings.Contains(page, "No request yet.") {
		t.Fatalf("empty page:\n%s", page)
	}
	if js := read(t, h, "/status.json"); !strings.Contains(js, `"targets": []`) || !strings.Contains(js, `"callers": []`) {
		t.Fatalf("empty JSON view:\n%s", js)
	}
}

func read(t *testing.T, h http.Handler, target string) string {
	t.Helper()
	resp := get(t, h, "GET", target)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", target, resp.StatusCode, body)
	}
	return string(body)
}

func TestSharedState(t *testing.T) {
	tests := []struct {
		name     string
		shared   func() (SharedStatus, bool)
		wantJSON string // "" : no shared key
		wantHTML []string
	}{
		{"no redis", nil, "", nil},
		{"configured off", func() (SharedStatus, bool) { return SharedStatus{}, false }, "", nil},
		{"shared", func() (SharedStatus, bool) {
			return SharedStatus{Replicas: 3, Share: 1.0 / 3, Failures: 2, Episodes: 1}, true
		},
			`"state":"shared"`, []string{"shared by 3 replicas", "1 outage ", "2 failed round trips"}},
		{"local", func() (SharedStatus, bool) {
			return SharedStatus{Degraded: true, DownSince: epoch.Add(-12 * time.Second), LastError: hostile, Replicas: 4, Share: 0.25, Failures: 9, Episodes: 2}, true
		}, `"state":"local"`, []string{"Redis unreachable for 12.0 s", "25% of each limit", "&lt;script&gt;"}},
		{"local with a guessed share", func() (SharedStatus, bool) {
			return SharedStatus{Degraded: true, DownSince: epoch.Add(-3 * time.Second), LastError: "refused", Replicas: 1, Share: 1,
				ShareGuessed: true, ReplyErrors: 7}, true
		}, `"shareGuessed":true`, []string{"100% of each limit", "redis.share is unset", "7 error replies"}},
		{"another account on the prefix", func() (SharedStatus, bool) {
			return SharedStatus{Replicas: 2, Share: 0.5, AccountConflict: "…1111:0123456789abcdef"}, true
		}, `"accountConflict":"…1111:0123456789abcdef"`, []string{"another AWS account (…1111:0123456789abcdef)", "own redis.prefix"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := fixture(t)
			src.Shared = tt.shared
			h := Handler(src)
			body, _ := io.ReadAll(get(t, h, "GET", JSONPath).Body)
			var compact strings.Builder
			for _, line := range strings.Split(string(body), "\n") {
				compact.WriteString(strings.ReplaceAll(strings.TrimSpace(line), `": `, `":`))
			}
			js := compact.String()
			if tt.wantJSON == "" && strings.Contains(js, `"shared"`) {
				t.Errorf("JSON has a shared key without Redis: %s", js)
			}
			if tt.wantJSON != "" && !strings.Contains(js, tt.wantJSON) {
				t.Errorf("JSON lacks %s: %s", tt.wantJSON, js)
			}
			page, _ := io.ReadAll(get(t, h, "GET", "/").Body)
			if tt.wantHTML == nil && strings.Contains(string(page), "Shared state") {
				t.Error("page shows a shared state section without Redis")
			}
			for _, w := range tt.wantHTML {
				if !strings.Contains(string(page), w) {
					t.Errorf("page lacks %q", w)
				}
			}
			if strings.Contains(string(page), hostile) {
				t.Error("page shows the last error unescaped")
			}
		})
	}
}

func TestCacheSection(t *testing.T) {
	figures := CacheStatus{Mode: "deterministic", Store: "memory", Hits: 30, Coalesced: 10, Misses: 10, Bypassed: 4,
		Stored: 10, StoredBytes: 15 << 10, Failures: 1, Entries: 9, Bytes: 3 << 20, Evictions: 1, Waiting: 2}
	redis := figures
	redis.Store, redis.Entries, redis.Bytes = "redis", -1, -1
	hostileStore := figures
	hostileStore.Store = "sqlite:" + hostile
	tests := []struct {
		name     string
		cache    func(context.Context) (CacheStatus, bool)
		wantJSON []string // nil: no cache key
		wantHTML []string
	}{
		{"no cache source", nil, nil, nil},
		{"cache off", func(context.Context) (CacheStatus, bool) { return CacheStatus{}, false }, nil, nil},
		{"memory", func(context.Context) (CacheStatus, bool) { return figures, true },
			[]string{`"cache":{"mode":"deterministic","store":"memory","hits":30,"misses":10,"coalesced":10,"bypassed":4,"hitPercent":80,` +
				`"stored":10,"storedBytes":15360,"storeFailures":1,"entries":9,"bytes":3145728,"evictions":1,"waiting":2}`},
			[]string{`<td class="num hits">30</td>`, `80.0%`, `10 (15.0 KiB)`, `9 (3.0 MiB)`}},
		{"redis counts no entries", func(context.Context) (CacheStatus, bool) { return redis, true },
			[]string{`"store":"redis"`, `"entries":-1`, `"bytes":-1`},
			[]string{`<td class="name store">redis</td>`, `<span class="none">not counted</span>`}},
		{"no call yet", func(context.Context) (CacheStatus, bool) { return CacheStatus{Mode: "all", Store: "memory"}, true },
			[]string{`"hitPercent":0,`}, []string{`0.0%`, `0 (0 B)`}},
		{"store path escaped", func(context.Context) (CacheStatus, bool) { return hostileStore, true },
			[]string{`"store":"sqlite:\u003cscript\u003e`}, []string{`sqlite:&lt;script&gt;`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := fixture(t)
			src.Cache = tt.cache
			h := Handler(src)
			var compact strings.Builder
			for _, line := range strings.Split(read(t, h, JSONPath), "\n") {
				compact.WriteString(strings.ReplaceAll(strings.TrimSpace(line), `": `, `":`))
			}
			js := compact.String()
			if tt.wantJSON == nil && strings.Contains(js, `"cache"`) {
				t.Errorf("JSON has a cache key without a cache: %s", js)
			}
			for _, w := range tt.wantJSON {
				if !strings.Contains(js, w) {
					t.Errorf("JSON lacks %s: %s", w, js)
				}
			}
			page := read(t, h, "/")
			if tt.wantHTML == nil && strings.Contains(page, "Response cache") {
				t.Error("page shows a cache section without a cache")
			}
			for _, w := range tt.wantHTML {
				if !strings.Contains(page, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			if strings.Contains(page, "<script") {
				t.Error("page shows the store unescaped")
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {15 << 10, "15.0 KiB"}, {1536 << 10, "1.5 MiB"},
		{256 << 20, "256.0 MiB"}, {3 << 30, "3.0 GiB"}, {5 << 40, "5.0 TiB"}, {5 << 50, "5120.0 TiB"},
	}
	for _, tt := range tests {
		if got := byteSize(tt.n); got != tt.want {
			t.Errorf("byteSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
