//go:build unix

package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/cache"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/retry"
)

// chromiumTimeout bounds one chromium run: a cold start on a busy two-core
// machine takes a few seconds, a hung one is cut here.
const chromiumTimeout = 90 * time.Second

// The emulated targets of TestPageInChromium, one per outcome.
const (
	okModel       = "anthropic.claude-3-haiku-20240307-v1:0"
	throttleModel = "anthropic.claude-3-sonnet-20240229-v1:0"
	brokenModel   = "anthropic.claude-3-opus-20240229-v1:0"
)

// TestPageInChromium serves the status page of an engine that has sent real
// traffic to the emulator (successes, a throttle, a breaker opened by
// server errors and a call it then refused) and loads it in headless
// Chromium: the screenshot must be a styled page, and the DOM Chromium
// rendered must hold the live figures. It skips when chromium is not on
// PATH, unless KEEL_REQUIRE_CHROMIUM=1.
func TestPageInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("KEEL_REQUIRE_CHROMIUM") == "1" {
			t.Fatalf("KEEL_REQUIRE_CHROMIUM=1 but chromium is not on PATH: %v (apt-get install -y chromium)", err)
		}
		t.Skip("chromium is not on PATH; KEEL_REQUIRE_CHROMIUM=1 makes this a failure")
	}
	eng, rec, rc := liveTraffic(t)
	if c := rec.Callers(); len(c) != 1 || c[0].InputTokens == 0 || c[0].OutputTokens == 0 {
		t.Fatalf("the traffic's usage was not recorded: %+v", c)
	}
	srv := httptest.NewServer(Handler(Source{Targets: eng.Snapshot, Callers: rec, Version: "test", Cache: cacheSource(rc, "memory")}))
	defer srv.Close()

	dom := string(runChromium(t, bin, "--dump-dom", srv.URL+"/"))
	for _, want := range []string{
		`<span class="model">` + okModel + `</span>`,
		`<span class="model">` + brokenModel + `</span>`,
		`<span class="state state-open">open</span>`,
		`<span class="code">` + catalog.CodeThrottling + `</span> 1 (1)`,
		`<span class="code">` + catalog.CodeInternalServer + `</span> 3 (3)`,
		`<span class="code">` + catalog.CodeCircuitOpen + `</span> 1 (1)`,
		`reserved (`, `configured`, // the governed target's bar
		`<td class="name">team-a</td>`, `<td class="num requests">8</td>`, `CircuitOpen 1`,
		fmt.Sprintf(`<td class="num">%d / %d</td>`, rec.Callers()[0].InputTokens, rec.Callers()[0].OutputTokens),
		// the cache: the second and third identical calls to okModel were hits
		`<h2>Response cache</h2>`, `<td class="num hits">2</td>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM Chromium rendered lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	shot := filepath.Join(t.TempDir(), "status.png")
	if d := os.Getenv("KEEL_STATUS_SCREENSHOT_DIR"); d != "" {
		shot = filepath.Join(d, "status.png") // to look at it
	}
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,900", srv.URL+"/")
	checkScreenshot(t, shot)
}

// liveTraffic runs calls through an engine with a response cache against
// the emulator and records them as the gateway would, for caller team-a: 3
// successes (on a target with a configured quota; the first goes upstream,
// the others are cache hits), a throttle, 3 server errors that open the
// target's breaker and a call the open breaker refuses.
func liveTraffic(t *testing.T) (*engine.Engine, *Recorder, *cache.Cache) {
	t.Helper()
	emu, err := emulator.Start(emulator.Options{Planner: func(r fault.Request) fault.Plan {
		switch r.Model {
		case throttleModel:
			return fault.Plan{Error: catalog.CodeThrottling}
		case brokenModel:
			return fault.Plan{Error: catalog.CodeInternalServer}
		}
		return fault.Plan{}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	u, _ := url.Parse(emu.URL)
	gov, err := admission.New(admission.Options{Targets: map[admission.Target]admission.Quota{
		{Model: okModel, Region: "us-east-1"}: {TokensPerMinute: 1_000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cache.New(cache.Options{Mode: cache.ModeAll, Store: cache.NewMemory(cache.DefaultMaxBytes, nil)})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{
		Endpoints:   attempt.FixedEndpoint{URL: u},
		Cache:       rc,
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		Region:      "us-east-1", Governor: gov, DisableBudget: true,
		Retry:   retry.Policy{MaxAttempts: 1},
		Breaker: breaker.Options{MinCalls: 3, FailureRate: 0.5, Cooldown: time.Hour, Window: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.HTTPClient().CloseIdleConnections)
	rec, err := NewRecorder(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{okModel, okModel, okModel, throttleModel, brokenModel, brokenModel, brokenModel, brokenModel} {
		rec.Observe(call(t, eng, "team-a", model))
	}
	return eng, rec, rc
}

// cacheSource gives a status page c's figures, as keel serve gives
// Keel.Cache's.
func cacheSource(c *cache.Cache, store string) func(context.Context) (CacheStatus, bool) {
	return func(ctx context.Context) (CacheStatus, bool) {
		st := c.Stats(ctx)
		return CacheStatus{Mode: st.Mode.String(), Store: store, Hits: st.Hits, Misses: st.Misses, Coalesced: st.Coalesced,
			Bypassed: st.Bypassed, Stored: st.Stored, StoredBytes: st.StoredBytes, Failures: st.Failures,
			Entries: st.Store.Entries, Bytes: st.Store.Bytes, Evictions: st.Store.Evictions}, true
	}
}

// call sends one Converse and returns the gateway's Event for it.
func call(t *testing.T, eng *engine.Engine, caller, model string) Event {
	t.Helper()
	start := time.Now()
	resp, rep, err := eng.Do(context.Background(), &engine.Call{Op: attempt.Converse, Model: model,
		Body: []byte(`{"messages":[{"role":"user","content":[{"text":"hello"}]}],"inferenceConfig":{"maxTokens":50}}`)})
	ev := Event{Caller: caller, Op: string(attempt.Converse), Model: model, Attempts: rep.Sent()}
	if resp != nil {
		var reply struct {
			Usage struct{ InputTokens, OutputTokens int }
		}
		err := json.NewDecoder(resp.Body).Decode(&reply)
		resp.Body.Close()
		if err != nil && resp.StatusCode == http.StatusOK {
			t.Fatalf("%s: reply: %v", model, err)
		}
		ev.InputTokens, ev.OutputTokens = reply.Usage.InputTokens, reply.Usage.OutputTokens
	}
	ev.Duration = time.Since(start)
	var ke *engine.Error
	switch {
	case err == nil:
		ev.Status = resp.StatusCode
	case errors.As(err, &ke) && rep.Sent() == 0:
		// Refused by keel: the gateway answers with the Bedrock error a
		// caller handles, 503 ServiceUnavailableException.
		ev.Status, ev.Code, ev.Refused = http.StatusServiceUnavailable, ke.Entry.Code, true
	case errors.As(err, &ke):
		ev.Status, ev.Code = ke.Status, ke.Entry.Code
	default:
		t.Fatalf("%s: %v", model, err)
	}
	return ev
}

// runChromium runs headless chromium with args, its profile in a temporary
// directory, bounded by chromiumTimeout, and returns its standard output.
// Chromium starts helper processes; it runs in a process group of its own,
// killed whole when the run times out and once it has ended, so none
// outlives the test.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--hide-scrollbars", "--force-color-profile=srgb", "--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // helpers left behind, if any; ESRCH when none
	}
	if err != nil {
		t.Fatalf("chromium %s: %v (after %v)\nstderr:\n%s", strings.Join(args, " "), err, chromiumTimeout, tail(stderr.String(), 4000))
	}
	return stdout.Bytes()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// checkScreenshot checks that path holds a 1280×900 PNG of a styled page:
// many colours, a fair share of pixels that are not background, and the
// colours of the open breaker's badge and the quota bar's fill.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("screenshot (%d bytes) is not a PNG: %v", len(data), err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 900 {
		t.Fatalf("screenshot is %v, want 1280×900", b.Size())
	}
	colors, inked := map[[3]uint8]int{}, 0
	for y := 0; y < 900; y++ {
		for x := 0; x < 1280; x++ {
			c := rgb(img, x, y)
			colors[c]++
			if c != [3]uint8{255, 255, 255} {
				inked++
			}
		}
	}
	near := func(want [3]uint8) bool {
		for c, n := range colors {
			if n >= 20 && diff(c, want) <= 6 {
				return true
			}
		}
		return false
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{fmt.Sprintf("many colours (%d)", len(colors)), len(colors) >= 32},
		{fmt.Sprintf("more than 2%% of the pixels drawn (%d)", inked), inked > 1280*900/50},
		{"the open breaker's badge (#ffdce0)", near([3]uint8{0xff, 0xdc, 0xe0})},
		{"the quota bar's fill (#2188ff)", near([3]uint8{0x21, 0x88, 0xff})},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("screenshot: want %s", c.name)
		}
	}
	t.Logf("screenshot: %d bytes, %d colours, %d of %d pixels drawn", len(data), len(colors), inked, 1280*900)
}

func rgb(img image.Image, x, y int) [3]uint8 {
	r, g, b, _ := img.At(x, y).RGBA()
	return [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
}

func diff(a, b [3]uint8) int {
	d := 0
	for i := range a {
		d = max(d, max(int(a[i])-int(b[i]), int(b[i])-int(a[i])))
	}
	return d
}

var _ http.Handler = Handler(Source{})
