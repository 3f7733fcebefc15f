package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/batch"
	"github.com/keel-run/keel/internal/dlq"
)

const haiku = "anthropic.claude-3-haiku-20240307-v1:0"

// resultIDs reads a results file and returns how many lines each record
// id has; a torn or non-JSON line fails the test.
func resultIDs(t *testing.T, path string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("%s ends in a torn line", path)
	}
	out := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<24)
	for n := 1; sc.Scan(); n++ {
		var l struct {
			ID       json.RawMessage `json:"id"`
			RecordID json.RawMessage `json:"recordId"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s line %d: %v", path, n, err)
		}
		raw := l.ID
		if raw == nil {
			raw = l.RecordID
		}
		var id string
		if json.Unmarshal(raw, &id) != nil {
			id = string(raw)
		}
		out[id]++
	}
	return out
}

func TestBatchRunEmulator(t *testing.T) {
	tests := []struct {
		name, in, model string
	}{
		{"simple format", "../../examples/prompts.jsonl", "amazon.nova-lite-v1:0"},
		{"bedrock format", "../../examples/prompts-bedrock.jsonl", haiku},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "results.jsonl")
			var stdout, stderr bytes.Buffer
			code := run([]string{"batch", "run", "--emulator", "--in", tt.in, "--out", out, "--model", tt.model,
				"--dlq", filepath.Join(dir, "dlq.db"), "--json"}, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
			}
			var sum struct {
				Total, Succeeded, Failed, Pending, Sent int
				InputTokens                             int `json:"inputTokens"`
				Quota                                   []struct {
					Target    string `json:"target"`
					Learning  bool   `json:"learning"`
					Admitted  int    `json:"admitted"`
					Throttles int    `json:"throttles"`
				} `json:"quota"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
				t.Fatalf("summary is not JSON: %v\n%s", err, stdout.String())
			}
			if sum.Total != 300 || sum.Succeeded != 300 || sum.Sent != 300 || sum.InputTokens == 0 {
				t.Errorf("summary %+v", sum)
			}
			// The quota governor paced the run (on by default, learning):
			// every record went through it as a Batch call.
			if len(sum.Quota) != 1 || sum.Quota[0].Target != tt.model+"@us-east-1" || !sum.Quota[0].Learning || sum.Quota[0].Admitted != 300 || sum.Quota[0].Throttles != 0 {
				t.Errorf("quota %+v", sum.Quota)
			}
			ids := resultIDs(t, out)
			if len(ids) != 300 {
				t.Errorf("%d distinct ids in the results, want 300", len(ids))
			}
			// stderr is not a terminal here: plain progress lines, no redraws.
			e := stderr.String()
			if !strings.Contains(e, "batch: 300/300 done (100.0%), 0 failed") || strings.ContainsAny(e, "\r\x1b") {
				t.Errorf("progress on a non-terminal: %q", e)
			}
		})
	}
}

func TestBatchBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"id":"a","prompt":"hi"}`+"\n"+`{"id":"b","prompt":"hi"`+"\n"+`{"id":"a","prompt":"hi"}`+"\n"), 0o644)
	good := "../../examples/prompts.jsonl"
	out := filepath.Join(dir, "out.jsonl")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no input", []string{"run", "--out", out, "--emulator"}, []string{"--in and --out are required"}},
		{"malformed lines are named", []string{"run", "--in", bad, "--out", out, "--model", "m", "--emulator"},
			[]string{"2 bad lines", "line 2: not valid JSON", `line 3: record id "a" is already used on line 1`}},
		{"bedrock records need a model", []string{"run", "--in", "../../examples/prompts-bedrock.jsonl", "--out", out, "--emulator"},
			[]string{"line 1:", "--model"}},
		{"unknown format", []string{"run", "--in", good, "--out", out, "--format", "csv"}, []string{"--format", `"csv"`}},
		{"forced format mismatch", []string{"run", "--in", good, "--out", out, "--model", "m", "--format", "bedrock", "--emulator"},
			[]string{`line 1: unknown key "id" in a bedrock-format record`}},
		{"unknown progress mode", []string{"run", "--in", good, "--out", out, "--progress", "fancy"}, []string{"--progress", "fancy"}},
		{"both targets", []string{"run", "--in", good, "--out", out, "--emulator", "--endpoint", "http://127.0.0.1:1"}, []string{"choose one"}},
		{"scenario without emulator", []string{"run", "--in", good, "--out", out, "--scenario", "x.yaml"}, []string{"need --emulator"}},
		{"negative max tokens", []string{"run", "--in", good, "--out", out, "--max-tokens", "-1"}, []string{"--max-tokens"}},
		{"bad duration", []string{"run", "--in", good, "--out", out, "--timeout", "soon"}, []string{"-timeout"}},
		{"redact without a dlq", []string{"run", "--in", good, "--out", out, "--redact", "--no-dlq"}, []string{"--no-dlq"}},
		{"missing input file", []string{"run", "--in", filepath.Join(dir, "nope.jsonl"), "--out", out, "--emulator"}, []string{"nope.jsonl"}},
		{"unknown subcommand", []string{"walk"}, []string{`unknown subcommand "walk"`}},
		{"status without state", []string{"status"}, []string{"--state is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"batch"}, tt.args...), &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2\n%s", code, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a results file was created for a refused run")
			}
		})
	}
}

func TestBatchStatus(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "r.jsonl")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"batch", "run", "--emulator", "--in", "../../examples/prompts.jsonl", "--out", out,
		"--model", "amazon.nova-micro-v1:0", "--no-dlq", "--progress", "off"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("--progress off still wrote %q", stderr.String())
	}
	// The limits a run learned, as a checkpoint keeps them.
	st, err := batch.OpenState(out + ".state")
	if err != nil {
		t.Fatal(err)
	}
	outLen, err := st.OutLen()
	if err == nil {
		err = st.Commit(nil, outLen, []batch.Limit{{Model: "amazon.nova-micro-v1:0", Region: "us-east-1", TokensPerMinute: 123456}})
	}
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"text", nil, []string{"done:    300/300 (100.0%): 300 succeeded, 0 failed; 0 pending", "model:   amazon.nova-micro-v1:0", "complete",
			"learned: amazon.nova-micro-v1:0@us-east-1, 123456 tokens/min (a resumed run starts from it)"}},
		{"json", []string{"--json"}, []string{`"succeeded": 300`, `"complete": true`, `"pending": 0`, `"tokensPerMinute": 123456`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"batch", "status", "--state", out + ".state"}, tt.args...), &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("status lacks %q:\n%s", w, stdout.String())
				}
			}
		})
	}
	// Learned limits the state file cannot give: the status says so, and
	// the rest is read.
	db, err := dlq.OpenDB(out + ".state")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`UPDATE batch_meta SET value = '{not json' WHERE key = 'learned_limits'`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	var stdout3, stderr3 bytes.Buffer
	if code := run([]string{"batch", "status", "--state", out + ".state"}, &stdout3, &stderr3); code != 0 ||
		!strings.Contains(stdout3.String(), "learned: none read") || !strings.Contains(stdout3.String(), "complete") {
		t.Errorf("status with unreadable limits: exit %d, %s%s", code, stdout3.String(), stderr3.String())
	}
	var stdout2, stderr2 bytes.Buffer
	if code := run([]string{"batch", "status", "--state", filepath.Join(dir, "missing.state")}, &stdout2, &stderr2); code != 1 ||
		!strings.Contains(stderr2.String(), "missing.state") {
		t.Errorf("status of a missing file: exit %d, %s", code, stderr2.String())
	}
}

// countingUpstream serves the emulator behind a handler that knows which
// record each request is for (simple prompts "rec ID ..."), counts the
// requests and the successful replies per record, and answers records
// whose id starts with "FAIL" with a ValidationException.
type countingUpstream struct {
	next   http.Handler
	mu     sync.Mutex
	sent   map[string]int
	ok     map[string]int
	fail   bool            // answer FAIL records with an error
	active int             // requests being served
	gate   func(id string) // when set, called before each record's request is served, outside the lock
}

var recPrompt = regexp.MustCompile(`rec ([A-Za-z0-9-]+)`)

func (c *countingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	m := recPrompt.FindSubmatch(body)
	if m == nil || !strings.HasPrefix(r.URL.Path, "/model/") {
		c.next.ServeHTTP(w, r)
		return
	}
	id := string(m[1])
	c.mu.Lock()
	c.sent[id]++
	c.active++
	fail, gate := c.fail, c.gate
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.active--
		c.mu.Unlock()
	}()
	if gate != nil {
		gate(id)
	}
	if fail && strings.HasPrefix(id, "FAIL") {
		w.Header().Set("X-Amzn-ErrorType", "ValidationException")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"message":"The prompt of %s is not acceptable."}`, id)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	c.next.ServeHTTP(sw, r)
	if sw.status == 200 {
		c.mu.Lock()
		c.ok[id]++
		c.mu.Unlock()
	}
}

// waitIdle waits until no request is being served: a killed client's
// requests are still answered (into a closed connection) for a while.
func (c *countingUpstream) waitIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.mu.Lock()
		n := c.active
		c.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests still being served 30 s after the client died", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *countingUpstream) snapshot() (sent, ok map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sent, ok = map[string]int{}, map[string]int{}
	for k, v := range c.sent {
		sent[k] = v
	}
	for k, v := range c.ok {
		ok[k] = v
	}
	return sent, ok
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = 200
	}
	return s.ResponseWriter.Write(b)
}

// startUpstream starts the emulator with scenario text behind a counting
// handler, on 127.0.0.1.
func startUpstream(t *testing.T, scenarioYAML string) (*countingUpstream, string) {
	t.Helper()
	cfg := emulateConfig{seed: 1, region: "us-east-1"}
	if scenarioYAML != "" {
		cfg.scenario = filepath.Join(t.TempDir(), "scenario.yaml")
		os.WriteFile(cfg.scenario, []byte(scenarioYAML), 0o644)
	}
	s, err := buildEmulator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &countingUpstream{next: s, sent: map[string]int{}, ok: map[string]int{}, fail: true}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv.URL
}

func buildKeel(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "keel")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// startBatchUntil starts keel (bin) with args, a batch run writing its
// results to out, and returns once out has lines lines: the command, its
// output so far, and the channel its end is sent on. It fails the test if
// the run ends first or makes no progress for two minutes.
func startBatchUntil(t *testing.T, bin string, args []string, out string, lines int) (*exec.Cmd, *bytes.Buffer, <-chan error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	log := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for countLines(out) < lines {
		select {
		case err := <-exited:
			t.Fatalf("keel batch run ended before %d records were written (%v):\n%s", lines, err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no progress:\n%s", log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cmd, log, exited
}

// TestBatchSurvivesKill9 SIGKILLs a real `keel batch run` process part way
// through a batch, then runs the same command again, and checks
// exactly-once: every record has one result line, no record whose result
// was checkpointed before the kill was sent again, and the dead letters
// parked before the kill are still there, once each.
func TestBatchSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds keel and runs it twice")
	}
	up, url := startUpstream(t, "rules:\n  - latency:\n      fixed: 150ms\n      jitter: 100ms\n")
	dir := t.TempDir()
	in := filepath.Join(dir, "prompts.jsonl")
	var sb strings.Builder
	const n = 400
	var ids []string
	for i := range n {
		id := fmt.Sprintf("r%03d", i)
		if i%25 == 7 {
			id = fmt.Sprintf("FAIL%03d", i)
		}
		ids = append(ids, id)
		fmt.Fprintf(&sb, "{\"id\":%q,\"prompt\":\"rec %s: why do ships have keels?\",\"maxTokens\":32}\n", id, id)
	}
	os.WriteFile(in, []byte(sb.String()), 0o644)
	out := filepath.Join(dir, "results.jsonl")
	db := filepath.Join(dir, "dlq.db")
	bin := buildKeel(t)
	args := []string{"batch", "run", "--in", in, "--out", out, "--model", "amazon.nova-lite-v1:0", "--endpoint", url, "--dlq", db,
		"--progress", "lines", "--progress-every", "200ms"}

	// Run 1, killed once some records are checkpointed.
	cmd, _, exited := startBatchUntil(t, bin, args, out, 60)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	// The upstream finishes answering the dead process's requests (their
	// replies go nowhere) before counting.
	up.waitIdle(t)
	sent1, ok1 := up.snapshot()

	// What the killed run had checkpointed.
	st, err := batch.OpenState(out + ".state")
	if err != nil {
		t.Fatal(err)
	}
	done, err := st.FinishedIDs()
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(done) == 0 || len(done) == n {
		t.Fatalf("%d records checkpointed at the kill; want some, not all", len(done))
	}
	store, err := dlq.OpenSQLite(db)
	if err != nil {
		t.Fatal(err)
	}
	parkedBefore, _ := store.List(context.Background(), dlq.Filter{})
	store.Close()
	var failedDone int
	for id := range done {
		if strings.HasPrefix(id, "FAIL") {
			failedDone++
		}
	}
	if len(parkedBefore) < failedDone {
		t.Fatalf("%d failed records were checkpointed but only %d are parked", failedDone, len(parkedBefore))
	}

	// Run 2: the same command resumes.
	cmd = exec.Command(bin, args...)
	var log2 bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log2, &log2
	err = cmd.Run()
	if ee, isExit := err.(*exec.ExitError); !isExit || ee.ExitCode() != 1 {
		t.Fatalf("resumed run: %v (want exit 1: some records fail)\n%s", err, log2.String())
	}
	if !strings.Contains(log2.String(), "resumed run") {
		t.Errorf("the second run did not say it resumed:\n%s", log2.String())
	}
	sent2, ok2 := up.snapshot()

	got := resultIDs(t, out)
	dup := 0
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("record %s has %d result lines", id, got[id])
		}
		if done[id] && sent2[id] != sent1[id] {
			t.Errorf("record %s was checkpointed before the kill and sent again after it", id)
		}
		if !done[id] && sent2[id] == sent1[id] {
			t.Errorf("record %s was not checkpointed and not sent again", id)
		}
		if ok2[id] > 1 {
			dup++ // in flight at the kill: answered into the dead process, or not checkpointed
		}
		if ok2[id]-ok1[id] > 1 {
			t.Errorf("record %s succeeded %d times in the resumed run", id, ok2[id]-ok1[id])
		}
	}
	// The quota governor paces the run; its quota unknown and never
	// throttled here, only the paced limiter's safety net bounds the calls
	// in flight.
	if dup > batch.DefaultMaxInFlight {
		t.Errorf("%d records were answered twice; at most the calls in flight at the kill (%d) may be", dup, batch.DefaultMaxInFlight)
	}

	// The dead letters: one per failed record, those parked before the kill kept.
	store, err = dlq.OpenSQLite(db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	parked, _ := store.List(context.Background(), dlq.Filter{})
	byKey := map[string]int64{}
	for _, e := range parked {
		byKey[e.Key] = e.ID
		if e.Code != "ValidationException" || !strings.Contains(string(e.Body), "rec FAIL") {
			t.Errorf("parked %+v", e)
		}
	}
	wantFailed := 0
	for _, id := range ids {
		if strings.HasPrefix(id, "FAIL") {
			wantFailed++
		}
	}
	if len(parked) != wantFailed || len(byKey) != wantFailed {
		t.Errorf("%d entries (%d keys) parked; want one per failed record, %d", len(parked), len(byKey), wantFailed)
	}
	for _, e := range parkedBefore {
		if byKey[e.Key] != e.ID {
			t.Errorf("entry %d (%s), parked before the kill, is gone or replaced", e.ID, e.Key)
		}
	}
	t.Logf("killed after %d of %d records were checkpointed; %d records in flight at the kill were answered in both runs "+
		"(the first answer went to the dead process, or arrived but was not checkpointed); %d dead letters", len(done), n, dup, len(parked))
}

// batchWithFailures runs keel batch run in dir on simple records with the
// ids given (flags among them are passed on), whose FAIL records the
// upstream refuses; it returns the upstream, its URL, the dead-letter
// database, the results file and the command's standard output.
func batchWithFailures(t *testing.T, dir string, ids ...string) (up *countingUpstream, url, db, results, stdout string) {
	t.Helper()
	db, results = filepath.Join(dir, "dlq.db"), filepath.Join(dir, "results.jsonl")
	up, url = startUpstream(t, "")
	in := filepath.Join(dir, "in.jsonl")
	args := []string{"batch", "run", "--in", in, "--out", results, "--model", haiku, "--endpoint", url, "--dlq", db, "--progress", "off"}
	var sb strings.Builder
	for _, id := range ids {
		if strings.HasPrefix(id, "-") {
			args = append(args, id)
			continue
		}
		fmt.Fprintf(&sb, "{\"id\":%q,\"prompt\":\"rec %s: hi\"}\n", id, id)
	}
	os.WriteFile(in, []byte(sb.String()), 0o644)
	stdout, _ = runOK(t, 1, args...)
	return up, url, db, results, stdout
}

// TestFilesHoldingPromptsArePrivate: every file keel creates that holds
// prompts or replies is readable by its owner only (issue 15, item 9).
func TestFilesHoldingPromptsArePrivate(t *testing.T) {
	dir := t.TempDir()
	up, url, db, results, _ := batchWithFailures(t, dir, "ok1", "FAIL1")
	export := filepath.Join(dir, "export.jsonl")
	runOK(t, 0, "dlq", "export", "--db", db, "--out", export)
	up.mu.Lock()
	up.fail = false
	up.mu.Unlock()
	replies := filepath.Join(dir, "replies.jsonl")
	runOK(t, 0, "dlq", "redrive", "--db", db, "--endpoint", url, "--out", replies)
	for _, tt := range []struct{ name, path string }{
		{"batch results", results},
		{"batch state", results + ".state"},
		{"dead-letter database", db},
		{"dlq export --out", export},
		{"dlq redrive --out", replies},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := os.Stat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() == 0 {
				t.Errorf("%s is empty", tt.path)
			}
			if m := fi.Mode().Perm(); m&0o077 != 0 {
				t.Errorf("%s has mode %#o, want 0600", tt.path, m)
			}
		})
	}
}

// TestExistingFilesHoldingPromptsBecomePrivate: a file keel opens to add
// prompts or replies to that was there already, readable by others (a
// results file being resumed, a dlq export or redrive --out appended to),
// is made readable by its owner only; it used to keep its mode (review of
// issue 15, item 9).
func TestExistingFilesHoldingPromptsBecomePrivate(t *testing.T) {
	dir := t.TempDir()
	up, url, db, results, _ := batchWithFailures(t, dir, "ok1", "FAIL1")
	export, replies := filepath.Join(dir, "export.jsonl"), filepath.Join(dir, "replies.jsonl")
	for _, p := range []string{results, export, replies} {
		if p != results {
			os.WriteFile(p, []byte("{}\n"), 0o644)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, path string
		want       int
		args       []string
	}{
		{"batch results, resumed", results, 1, []string{"batch", "run", "--in", filepath.Join(dir, "in.jsonl"), "--out", results, "--model", haiku,
			"--endpoint", url, "--dlq", db, "--progress", "off"}},
		{"dlq export --out, appended to", export, 0, []string{"dlq", "export", "--db", db, "--out", export}},
		{"dlq redrive --out, appended to", replies, 0, []string{"dlq", "redrive", "--db", db, "--endpoint", url, "--out", replies}},
	}
	up.mu.Lock()
	up.fail = false
	up.mu.Unlock()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runOK(t, tt.want, tt.args...)
			fi, err := os.Stat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if m := fi.Mode().Perm(); m != 0o600 {
				t.Errorf("%s has mode %#o, want 0600", tt.path, m)
			}
		})
	}
}

// jsonKeys walks a decoded JSON value and calls f with every object key's
// path (quota[].target); the values of opaque keys (bodies, Bedrock's own
// documents, maps keyed by catalog code) are not walked.
func jsonKeys(v any, path string, f func(path, key string)) {
	opaque := map[string]bool{"body": true, "modelOutput": true, "response": true, "failedByCode": true}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			f(p, k)
			if !opaque[k] {
				jsonKeys(e, p, f)
			}
		}
	case []any:
		for _, e := range x {
			jsonKeys(e, path+"[]", f)
		}
	}
}

// TestBatchAndDLQJSONSchemas: every JSON document the batch and dlq
// commands print or write uses camelCase keys, and docs/dlq-batch.md
// documents each key (issue 15, item 13).
func TestBatchAndDLQJSONSchemas(t *testing.T) {
	doc, err := os.ReadFile("../../docs/dlq-batch.md")
	if err != nil {
		t.Fatal(err)
	}
	_, schemas, ok := strings.Cut(string(doc), "\n## JSON output\n")
	if !ok {
		t.Fatal(`docs/dlq-batch.md has no "## JSON output" section`)
	}
	schemas, _, _ = strings.Cut(schemas, "\n## ")

	dir := t.TempDir()
	up, url, db, results, stdout := batchWithFailures(t, dir, "ok1", "FAIL1", "FAIL2", "--json")
	bin := filepath.Join(dir, "in-bedrock.jsonl")
	os.WriteFile(bin, []byte(`{"recordId":"b1","modelInput":{"anthropic_version":"bedrock-2023-05-31","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}}`+"\n"), 0o644)
	bresults := filepath.Join(dir, "results-b.jsonl")
	var docs []struct{ name, text string }
	add := func(name, text string) { docs = append(docs, struct{ name, text string }{name, text}) }
	addLines := func(name, path string) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			add(name, l)
		}
	}
	add("batch run --json", stdout)
	stdout, _ = runOK(t, 0, "batch", "run", "--in", bin, "--out", bresults, "--model", haiku, "--endpoint", url, "--dlq", db, "--progress", "off", "--json")
	add("batch run --json", stdout)
	addLines("results file", results)
	addLines("results file", bresults)
	stdout, _ = runOK(t, 0, "batch", "status", "--state", results+".state", "--json")
	add("batch status --json", stdout)
	stdout, _ = runOK(t, 0, "dlq", "list", "--db", db, "--json")
	add("dlq list --json", stdout)
	stdout, _ = runOK(t, 0, "dlq", "show", "--db", db, "--json", "1")
	add("dlq show --json", stdout)
	stdout, _ = runOK(t, 0, "dlq", "export", "--db", db)
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		add("dlq export", l)
	}
	up.mu.Lock()
	up.fail = false
	up.mu.Unlock()
	replies := filepath.Join(dir, "replies.jsonl")
	runOK(t, 0, "dlq", "redrive", "--db", db, "--endpoint", url, "--out", replies, "--id", "1")
	addLines("dlq redrive --out", replies)
	stdout, _ = runOK(t, 0, "dlq", "purge", "--db", db, "--all", "--json")
	add("dlq purge --json", stdout)

	camel := regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	for _, d := range docs {
		var v any
		if err := json.Unmarshal([]byte(d.text), &v); err != nil {
			t.Errorf("%s: not JSON: %v\n%s", d.name, err, d.text)
			continue
		}
		jsonKeys(v, "", func(path, key string) {
			path = strings.TrimPrefix(path, "[].") // list and show print an array of entries
			if !camel.MatchString(key) {
				t.Errorf("%s: key %s is not camelCase", d.name, path)
			}
			if !strings.Contains(schemas, "`"+path+"`") {
				t.Errorf("%s: key %s is not documented in docs/dlq-batch.md's JSON output section", d.name, path)
			}
		})
	}
}

// shellCommands splits the ```sh blocks of a Markdown text into commands: a
// line ending in a backslash goes on, and a here-document runs to its
// closing word.
// docSequence returns the documented commands that
// TestDocsDLQBatchCommandsRunInSequence runs, in order: the README's quick
// start batch, the batch status line the README shows after it, then every
// shell command of docs/dlq-batch.md. TestDocCommands counts them as run.
func docSequence(readme, doc string) []string {
	_, quick, _ := strings.Cut(readme, "\n## Quick start\n")
	all := shellCommands(quick)
	cmds := all[:1] // the batch; the rest are the test suite, installs, a server, other commands
	for _, c := range all[1:] {
		if strings.HasPrefix(c, "go run ./cmd/keel batch status ") {
			cmds = append(cmds, c)
		}
	}
	return append(cmds, shellCommands(doc)...)
}

func shellCommands(md string) []string {
	var cmds []string
	for _, block := range strings.Split(md, "```sh\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		var cur strings.Builder
		heredoc := ""
		for _, line := range strings.Split(block, "\n") {
			cur.WriteString(line + "\n")
			switch {
			case heredoc != "":
				if line != heredoc {
					continue
				}
				heredoc = ""
			case strings.Contains(line, "<<'"):
				_, w, _ := strings.Cut(line, "<<'")
				heredoc, _, _ = strings.Cut(w, "'")
				continue
			case strings.HasSuffix(line, "\\"):
				continue
			}
			if c := strings.TrimSpace(cur.String()); c != "" {
				cmds = append(cmds, c)
			}
			cur.Reset()
		}
	}
	return cmds
}

var sentCalls = regexp.MustCompile(`records succeeded, (\d+) failed, \d+ pending; (\d+) calls sent`)

// TestDocsDLQBatchCommandsRunInSequence runs the README's quick start and
// then every command of docs/dlq-batch.md, as written, in a fresh
// directory with the repository's examples: each succeeds (a batch whose
// records fail for good exits 1 and says so), and each batch run sends
// calls rather than finding its state file taken by another run or its
// work already done (issue 15, item 13).
func TestDocsDLQBatchCommandsRunInSequence(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the documented batches (about a minute)")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/dlq-batch.md")
	if err != nil {
		t.Fatal(err)
	}
	cmds := docSequence(string(readme), string(doc))
	bin := buildKeel(t)
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "examples"), os.DirFS("../../examples")); err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if !strings.HasPrefix(c, "go run ./cmd/keel ") && !strings.HasPrefix(c, "cat ") && !strings.HasPrefix(c, "head ") {
			t.Fatalf("unexpected command in the docs (teach this test about it): %s", c)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cmd := exec.CommandContext(ctx, "bash", "-c", strings.ReplaceAll(c, "go run ./cmd/keel", bin))
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		cancel()
		t.Logf("%s: %s", c, time.Since(start).Round(time.Millisecond))
		code := cmd.ProcessState.ExitCode()
		isRun := strings.Contains(c, " batch run ")
		m := sentCalls.FindStringSubmatch(stdout.String())
		switch {
		case code == 0:
		case code == 1 && isRun && m != nil && m[1] != "0" && !strings.Contains(stderr.String(), "keel batch run: "):
			// Records failed for good; the run itself did not.
		default:
			t.Fatalf("%s\nexit %d (%v)\nstdout:\n%s\nstderr:\n%s", c, code, err, stdout.String(), stderr.String())
		}
		if isRun && (m == nil || m[2] == "0" || strings.Contains(stdout.String(), "resumed run")) {
			t.Errorf("%s\nsent nothing or resumed a run:\n%s", c, stdout.String())
		}
	}
}

// TestBatchRunJSONErrorBeforeTheRun: with --json, a run that cannot start
// (its state file is another run's, or is locked) still prints JSON, with
// the reason under "error" (issue 15, item 13).
func TestBatchRunJSONErrorBeforeTheRun(t *testing.T) {
	dir := t.TempDir()
	_, url, db, results, _ := batchWithFailures(t, dir, "ok1", "FAIL1")
	stdout, stderr := runOK(t, 1, "batch", "run", "--in", filepath.Join(dir, "in.jsonl"), "--out", results, "--model", "amazon.nova-lite-v1:0",
		"--endpoint", url, "--dlq", db, "--progress", "off", "--json")
	var v struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || !strings.Contains(v.Error, "belongs to another run") {
		t.Errorf("stdout %q (%v); want JSON with the error", stdout, err)
	}
	if !strings.Contains(stderr, "belongs to another run") {
		t.Errorf("stderr %q lacks the error", stderr)
	}
}

// TestWarnsWhenNothingIsLocked: where the system has no file lock keel can
// use (lockfile.Supported is false: Windows), the commands that rely on one
// say so on stderr, once, instead of running unguarded without a word
// (review of issue 15, item 2).
func TestWarnsWhenNothingIsLocked(t *testing.T) {
	dir := t.TempDir()
	_, url, db, results, _ := batchWithFailures(t, dir, "ok1", "FAIL1")
	const warning = "this system has no file locks"
	tests := []struct {
		name      string
		supported bool
		want      int
		args      []string
	}{
		{"batch run, no locks", false, 1, []string{"batch", "run", "--in", filepath.Join(dir, "in.jsonl"), "--out", results, "--model", haiku,
			"--endpoint", url, "--dlq", db, "--progress", "off"}},
		{"batch run, locks", true, 1, []string{"batch", "run", "--in", filepath.Join(dir, "in.jsonl"), "--out", results, "--model", haiku,
			"--endpoint", url, "--dlq", db, "--progress", "off"}},
		{"dlq redrive, no locks", false, 1, []string{"dlq", "redrive", "--db", db, "--endpoint", url, "--out", filepath.Join(dir, "r.jsonl")}},
		{"dlq redrive, locks", true, 1, []string{"dlq", "redrive", "--db", db, "--endpoint", url, "--out", filepath.Join(dir, "r.jsonl")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func(s bool) { locksSupported = s }(locksSupported)
			locksSupported = tt.supported
			_, stderr := runOK(t, tt.want, tt.args...)
			if n := strings.Count(stderr, warning); n != map[bool]int{false: 1, true: 0}[tt.supported] {
				t.Errorf("the warning %q appears %d times in:\n%s", warning, n, stderr)
			}
		})
	}
}

// TestBatchRunBadModelInSomeRecords is the review's repro (issue 15, item
// 13): 20 good records, 6 naming a model that does not exist, 20 more good
// ones. The run stops sending to the bad model after 5 calls, finishes the
// 40 others, and exits 1 naming the model; each resume does the same for
// the 6 left, and never sends the good records again. Before, the run
// stopped with 26 pending, on every resume.
func TestBatchRunBadModelInSomeRecords(t *testing.T) {
	const bogus = "anthropic.claude-bogus-v1:0"
	dir := t.TempDir()
	in, out := filepath.Join(dir, "mix.jsonl"), filepath.Join(dir, "mix.out")
	var sb strings.Builder
	for i := range 46 {
		if i >= 20 && i < 26 {
			fmt.Fprintf(&sb, "{\"id\":\"bad%d\",\"prompt\":\"hi\",\"model\":%q}\n", i, bogus)
		} else {
			fmt.Fprintf(&sb, "{\"id\":\"r%d\",\"prompt\":\"hi %d\"}\n", i, i)
		}
	}
	os.WriteFile(in, []byte(sb.String()), 0o644)
	for _, want := range []struct{ sent, pending int }{{45, 6}, {5, 6}} {
		stdout, stderr := runOK(t, 1, "batch", "run", "--in", in, "--out", out, "--emulator", "--model", haiku, "--no-dlq", "--progress", "off", "--json")
		var sum struct {
			Succeeded, Failed, Pending, Sent int
			Error                            string
		}
		if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
			t.Fatalf("%v: %s", err, stdout)
		}
		if sum.Succeeded != 40 || sum.Failed != 0 || sum.Pending != want.pending || sum.Sent != want.sent {
			t.Errorf("summary %+v, want 40 succeeded, %d pending, %d sent", sum, want.pending, want.sent)
		}
		if !strings.Contains(sum.Error, bogus) || !strings.Contains(sum.Error, "resume") {
			t.Errorf("the error does not name the model or say how to resume: %q\n%s", sum.Error, stderr)
		}
		if ids := resultIDs(t, out); len(ids) != 40 {
			t.Errorf("%d result lines, want 40", len(ids))
		}
	}
}
