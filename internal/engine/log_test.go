package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/telemetry"
)

// TestLogsAndMetrics checks one JSON log line per attempt and per outcome,
// with the documented fields, no prompt text and no credentials, and the
// matching Prometheus counters.
func TestLogsAndMetrics(t *testing.T) {
	var buf bytes.Buffer
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := telemetry.NewMetrics(reg); err == nil {
		t.Fatal("registering the metrics twice succeeded")
	}
	h := newHarness(t, map[string][]reply{m1 + "@us-east-1": {{code: catalog.CodeServiceUnavailable}, {}}}, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
		o.Metrics = m
	})
	const secretPrompt = "the launch codes are 0000"
	resp, _, err := h.eng.Do(context.Background(), &Call{Op: attempt.Converse, Model: m1,
		Body: []byte(`{"messages":[{"role":"user","content":[{"text":"` + secretPrompt + `"}]}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if strings.Contains(buf.String(), secretPrompt) || strings.Contains(buf.String(), "SECRET") || strings.Contains(buf.String(), "AKID") {
		t.Fatalf("logs leak prompt text or credentials:\n%s", buf.String())
	}
	var lines []map[string]any
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		lines = append(lines, l)
	}
	if len(lines) != 3 || lines[0]["msg"] != "attempt" || lines[1]["msg"] != "attempt" || lines[2]["msg"] != "outcome" {
		t.Fatalf("want attempt, attempt, outcome; got %v", lines)
	}
	for _, k := range []string{"op", "model", "region", "attempt", "status", "requestId", "delayMs", "durationMs", "code", "category", "retry"} {
		if _, ok := lines[0][k]; !ok {
			t.Errorf("failed-attempt line lacks %q: %v", k, lines[0])
		}
	}
	if lines[0]["code"] != catalog.CodeServiceUnavailable || lines[1]["status"] != float64(200) || lines[2]["outcome"] != "ok" || lines[2]["attempts"] != float64(2) {
		t.Fatalf("lines %v", lines)
	}
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"attempts 503", testutil.ToFloat64(m.Attempts.WithLabelValues(m1, "us-east-1", catalog.CodeServiceUnavailable)), 1},
		{"attempts ok", testutil.ToFloat64(m.Attempts.WithLabelValues(m1, "us-east-1", "ok")), 1},
		{"retries", testutil.ToFloat64(m.Retries.WithLabelValues(m1, "us-east-1", string(catalog.Backoff))), 1},
		{"calls", testutil.ToFloat64(m.Calls.WithLabelValues("converse", m1, "ok", "")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}
