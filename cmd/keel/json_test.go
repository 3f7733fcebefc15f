package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/bench"
)

// camelKey is a key of keel's JSON: camelCase, as in Bedrock's own JSON
// (stopReason, inputTokens, requestId).
var camelKey = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)

// dataKeyed are the objects whose keys are data, not names of fields: a
// bench contender's failures by error code.
var dataKeyed = map[string]bool{"failures": true}

// nonCamelKeys returns every key of the JSON documents in b (one, or one
// per line) that is not camelCase, as paths such as error.explanation.wire_code.
func nonCamelKeys(t *testing.T, b []byte) []string {
	t.Helper()
	var bad []string
	seen := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				p := strings.TrimPrefix(path+"."+k, ".")
				if !camelKey.MatchString(k) && !seen[p] {
					seen[p] = true
					bad = append(bad, p)
				}
				if !dataKeyed[k] {
					walk(p, e)
				}
			}
		case []any:
			for _, e := range v {
				walk(path+"[]", e)
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	docs := 0
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, b)
		}
		docs++
		walk("", v)
	}
	if docs == 0 {
		t.Fatalf("no JSON document in %q", b)
	}
	sort.Strings(bad)
	return bad
}

// TestJSONCamelCase (issue 15, item 13): every key of every --json output
// of converse, explain and bench is camelCase (docs/json.md).
func TestJSONCamelCase(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the emulator")
	}
	cacheFile := filepath.Join(t.TempDir(), "cache.yaml")
	if err := os.WriteFile(cacheFile, []byte("cache:\n  mode: all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmds := []struct {
		name string
		args []string
		code int
	}{
		{"explain code", []string{"explain", "--json", "ThrottlingException"}, 0},
		{"explain pasted text", []string{"explain", "--json", "StatusCode: 429, RequestID: 1b2c, ThrottlingException: Too many tokens"}, 0},
		{"explain bare status", []string{"explain", "--json", "400"}, 0},
		{"explain not found", []string{"explain", "--json", "FrobnicationFault"}, 1},
		{"explain list", []string{"explain", "--list", "--json"}, 0},
		{"converse reply with fallback", []string{"converse", "--emulator", "--scenario", "../../examples/scenarios/quickstart.yaml", "--model", sonnetProfile,
			"--fallback", sonnetProfile + "@us-west-2", "--prompt", "hi", "--json"}, 0},
		{"converse error", []string{"converse", "--emulator", "--model", "bogus.model-v1:0", "--prompt", "hi", "--json"}, 1},
		{"converse stream", []string{"converse", "--emulator", "--model", sonnetProfile, "--prompt", "hi", "--stream", "--json"}, 0},
		{"converse cached", []string{"converse", "--emulator", "--config", cacheFile, "--model", sonnetProfile, "--prompt", "hi", "--json"}, 0},
	}
	for _, c := range cmds {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(c.args, &out, &errb); code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out.String(), errb.String())
			}
			if bad := nonCamelKeys(t, out.Bytes()); len(bad) > 0 {
				t.Errorf("keys not in camelCase: %s", strings.Join(bad, ", "))
			}
		})
	}
	// keel bench quota --json and --calls, from a result with every field
	// filled (TestBenchQuotaJSON runs the command itself).
	lat := 3 * time.Second
	res := &bench.Result{Model: bench.DefaultModel, Quota: 1, Duration: time.Minute, Contenders: []bench.Outcome{{Name: "keel",
		Completed: 1, Failed: 1, LargeCompleted: 1, SmallCompleted: 1, ReplyP99: time.Second, Failures: map[string]int{"TargetOverloaded": 1}}}}
	docs := map[string]any{"bench quota --json": res, "bench quota --calls": bench.CallRecord{Contender: "keel", Latency: &lat, Reply: &lat},
		"bench cache --json": &bench.CacheResult{}}
	for name, v := range docs {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if bad := nonCamelKeys(t, b); len(bad) > 0 {
				t.Errorf("keys not in camelCase: %s", strings.Join(bad, ", "))
			}
		})
	}
}
