package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/dlq"
)

// parkFailures runs a batch whose FAIL records the upstream refuses, so
// they are parked in db; it returns the upstream and its URL.
func parkFailures(t *testing.T, db string, ids ...string) (*countingUpstream, string) {
	t.Helper()
	up, url := startUpstream(t, "")
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var sb strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&sb, "{\"id\":%q,\"prompt\":\"rec %s: hello\",\"maxTokens\":32}\n", id, id)
	}
	os.WriteFile(in, []byte(sb.String()), 0o644)
	var stdout, stderr bytes.Buffer
	code := run([]string{"batch", "run", "--in", in, "--out", filepath.Join(dir, "out.jsonl"), "--model", haiku, "--endpoint", url,
		"--dlq", db, "--progress", "off"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("batch run: exit %d, want 1 (some records fail)\n%s\n%s", code, stdout.String(), stderr.String())
	}
	return up, url
}

func runOK(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != want {
		t.Fatalf("keel %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String()
}

func entries(t *testing.T, db string) []*dlq.Entry {
	t.Helper()
	s, err := dlq.OpenSQLite(db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	es, err := s.List(context.Background(), dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestDLQRedrive(t *testing.T) {
	db := filepath.Join(t.TempDir(), "dlq.db")
	up, url := parkFailures(t, db, "ok1", "FAIL1", "ok2", "FAIL2", "FAIL3")
	if n := len(entries(t, db)); n != 3 {
		t.Fatalf("%d parked, want 3", n)
	}

	// Still refused: the entries stay, with the redrive's attempts added.
	_, stderr := runOK(t, 1, "dlq", "redrive", "--db", db, "--endpoint", url)
	if !strings.Contains(stderr, "0 succeeded and removed, 3 failed again and kept") {
		t.Errorf("redrive summary: %s", stderr)
	}
	for _, e := range entries(t, db) {
		if e.Redrives != 1 || len(e.Attempts) != 2 || e.Attempts[1].Redrive != 1 || e.Code != catalog.CodeValidation || !e.FailedAt.After(e.CreatedAt) {
			t.Errorf("after a failed redrive: %+v", e)
		}
	}

	// Accepted now: replies written, entries removed, one call each.
	up.mu.Lock()
	up.fail = false
	up.mu.Unlock()
	out := filepath.Join(t.TempDir(), "replies.jsonl")
	_, stderr = runOK(t, 0, "dlq", "redrive", "--db", db, "--endpoint", url, "--code", "validation", "--out", out)
	if !strings.Contains(stderr, "3 succeeded and removed, 0 failed again") {
		t.Errorf("redrive summary: %s", stderr)
	}
	if n := len(entries(t, db)); n != 0 {
		t.Errorf("%d entries left after a successful redrive", n)
	}
	data, _ := os.ReadFile(out)
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		var l redriveLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("reply line %q: %v", sc.Text(), err)
		}
		if l.Reply == "" || l.Usage.OutputTokens == 0 || l.Op != "converse" || !strings.HasPrefix(l.Key, "batch:") || !json.Valid(l.Response) {
			t.Errorf("reply line %+v", l)
		}
		n++
	}
	if n != 3 {
		t.Errorf("%d reply lines, want 3", n)
	}
	_, ok := up.snapshot()
	for _, id := range []string{"FAIL1", "FAIL2", "FAIL3"} {
		if ok[id] != 1 {
			t.Errorf("%s answered %d times, want once", id, ok[id])
		}
	}
}

// seed puts entries straight into a database.
func seed(t *testing.T, db string, es ...*dlq.Entry) []int64 {
	t.Helper()
	s, err := dlq.OpenSQLite(db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ids []int64
	for _, e := range es {
		id, err := s.Put(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

const converseBody = `{"messages":[{"role":"user","content":[{"text":"rec X: hi"}]}],"inferenceConfig":{"maxTokens":16}}`

func TestDLQRedriveHonoursNotBefore(t *testing.T) {
	db := filepath.Join(t.TempDir(), "dlq.db")
	now := time.Now()
	ids := seed(t, db,
		&dlq.Entry{Op: "converse", Model: haiku, Body: []byte(converseBody), Code: catalog.CodeMPAgreementBeingCreated, Status: 403,
			CreatedAt: now, FailedAt: now, NotBefore: now.Add(15 * time.Minute)},
		&dlq.Entry{Op: "converse-stream", Model: haiku, Body: []byte(dlq.RedactBody([]byte(converseBody))), Redacted: true,
			Code: catalog.CodeValidation, Status: 400, CreatedAt: now, FailedAt: now},
	)
	_, stderr := runOK(t, 0, "dlq", "redrive", "--db", db, "--emulator")
	if !strings.Contains(stderr, fmt.Sprintf("entry %d: skipped: MPAgreementBeingCreated asks to wait", ids[0])) ||
		!strings.Contains(stderr, fmt.Sprintf("entry %d: skipped: its body was redacted", ids[1])) ||
		!strings.Contains(stderr, "nothing to redrive (2 selected, 1 not due, 1 redacted)") {
		t.Errorf("stderr: %s", stderr)
	}
	if n := len(entries(t, db)); n != 2 {
		t.Fatalf("%d entries left, want 2", n)
	}
	stdout, stderr := runOK(t, 0, "dlq", "redrive", "--db", db, "--emulator", "--force")
	if !strings.Contains(stderr, "1 succeeded and removed") || !strings.Contains(stdout, `"dlqId":`+fmt.Sprint(ids[0])) {
		t.Errorf("forced redrive:\n%s\n%s", stdout, stderr)
	}
	if es := entries(t, db); len(es) != 1 || es[0].ID != ids[1] {
		t.Errorf("left: %v", es)
	}
}

func TestDLQListShowPurgeExport(t *testing.T) {
	db := filepath.Join(t.TempDir(), "dlq.db")
	now := time.Now()
	old := now.Add(-72 * time.Hour)
	ids := seed(t, db,
		&dlq.Entry{Op: "converse", Model: haiku, Body: []byte(converseBody), Code: catalog.CodeThrottling, Status: 429, Message: "Too many tokens",
			CreatedAt: old, FailedAt: old, Attempts: []dlq.Attempt{{Model: haiku, Region: "us-east-1", Status: 429, Code: catalog.CodeThrottling, Start: old}}},
		&dlq.Entry{Op: "invoke", Model: "amazon.nova-lite-v1:0", Body: []byte{0xff, 0x00}, Code: catalog.CodeValidation, Status: 400,
			CreatedAt: now, FailedAt: now, Key: "batch:abc:7", Source: "batch"},
		&dlq.Entry{Op: "converse", Model: haiku, Body: []byte(converseBody), Code: catalog.CodeMPAgreementBeingCreated, Status: 403,
			CreatedAt: now, FailedAt: now, NotBefore: now.Add(time.Hour)},
	)
	tests := []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"list all", []string{"list"}, []string{"ID", "ThrottlingException", "ValidationException", "3d", "in 59m", "batch:abc:7", "3 entries"}, nil},
		{"list by code alias", []string{"list", "--code", "throttling"}, []string{"ThrottlingException", "1 entries"}, []string{"ValidationException"}},
		{"list by model", []string{"list", "--model", "amazon.nova-lite-v1:0"}, []string{"ValidationException", "1 entries"}, []string{"Throttling"}},
		{"list older than", []string{"list", "--older-than", "2d"}, []string{"ThrottlingException", "1 entries"}, []string{"Validation"}},
		{"list newer than", []string{"list", "--newer-than", "1h"}, []string{"2 entries"}, []string{"Throttling"}},
		{"list due", []string{"list", "--due"}, []string{"2 entries"}, []string{"MPAgreement"}},
		{"list none", []string{"list", "--code", "ModelTimeoutException"}, []string{"no entries"}, nil},
		{"list json", []string{"list", "--json", "--id", fmt.Sprint(ids[0])}, []string{`"code": "ThrottlingException"`, `"target": "` + haiku + `@us-east-1"`}, []string{`"body"`}},
		{"show", []string{"show", fmt.Sprint(ids[0])}, []string{"entry 1: converse", "ThrottlingException (HTTP 429) Too many tokens", "1. " + haiku + "@us-east-1  HTTP 429", `"text": "rec X: hi"`, "retry:"}, nil},
		{"show json, binary body", []string{"show", "--json", fmt.Sprint(ids[1])}, []string{`"bodyBase64": "/wA="`, `"key": "batch:abc:7"`}, nil},
		{"export", []string{"export", "--code", "MPAgreementBeingCreated"}, []string{`"code":"MPAgreementBeingCreated"`, `"notBefore":`, `"body":{"messages"`}, []string{"Throttling"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _ := runOK(t, 0, append([]string{"dlq"}, append(tt.args, "--db", db)...)...)
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(stdout, w) {
					t.Errorf("output has %q:\n%s", w, stdout)
				}
			}
		})
	}
	stdout, _ := runOK(t, 0, "dlq", "purge", "--db", db, "--code", "ValidationException", "--json")
	if !strings.Contains(stdout, `"removed": 1`) || len(entries(t, db)) != 2 {
		t.Errorf("purge: %s", stdout)
	}
	stdout, _ = runOK(t, 0, "dlq", "purge", "--db", db, "--all")
	if !strings.Contains(stdout, "removed 2 entries") || len(entries(t, db)) != 0 {
		t.Errorf("purge --all: %s", stdout)
	}
}

func TestDLQBadFlags(t *testing.T) {
	db := filepath.Join(t.TempDir(), "dlq.db")
	seed(t, db)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown subcommand", []string{"peek"}, 2, `unknown subcommand "peek"`},
		{"unknown code", []string{"list", "--db", db, "--code", "Teapot"}, 2, `"Teapot" is not a code`},
		{"bad age", []string{"list", "--db", db, "--older-than", "soon"}, 2, "want an age such as"},
		{"negative age", []string{"purge", "--db", db, "--older-than", "-1h"}, 2, "want an age such as"},
		{"bad id", []string{"list", "--db", db, "--id", "x"}, 2, "want a positive entry ID"},
		{"purge needs a filter", []string{"purge", "--db", db}, 2, "or pass --all"},
		{"purge with both", []string{"purge", "--db", db, "--all", "--code", "throttling"}, 2, "leave out the filters"},
		{"show needs ids", []string{"show", "--db", db}, 2, "name the entry IDs"},
		{"show bad id", []string{"show", "--db", db, "abc"}, 2, `"abc" is not an entry ID`},
		{"show missing id", []string{"show", "--db", db, "99"}, 1, "no such entry"},
		{"no database", []string{"list", "--db", filepath.Join(t.TempDir(), "none.db")}, 1, "no dead-letter database at"},
		{"a state file is not a dlq", []string{"list", "--db", writeState(t)}, 1, "not a keel dead-letter database"},
		{"redrive to two targets", []string{"redrive", "--db", db, "--emulator", "--endpoint", "http://127.0.0.1:1"}, 2, "choose one"},
		{"stray argument", []string{"list", "--db", db, "extra"}, 2, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"dlq"}, tt.args...), &stdout, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr.String())
			}
		})
	}
}

// writeState makes a batch state file.
func writeState(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "r.jsonl")
	runOK(t, 0, "batch", "run", "--emulator", "--in", "../../examples/prompts.jsonl", "--out", out, "--model", haiku, "--no-dlq", "--progress", "off")
	return out + ".state"
}

// TestDLQRedriveConcurrentRedrivesSendOnce: while one redrive runs, a second
// on the same database is refused at once, naming the first; every entry
// is sent and answered once (issue 15, item 2).
func TestDLQRedriveConcurrentRedrivesSendOnce(t *testing.T) {
	db := filepath.Join(t.TempDir(), "dlq.db")
	up, url := parkFailures(t, db, "FAIL1", "FAIL2", "FAIL3")
	started, release := make(chan struct{}), make(chan struct{})
	letGo := sync.OnceFunc(func() { close(release) })
	t.Cleanup(letGo) // before the upstream stops, even when the test fails
	var once sync.Once
	up.mu.Lock()
	up.fail = false
	up.gate = func(id string) {
		first := false
		once.Do(func() { first = true })
		if first {
			close(started)
			<-release
		}
	}
	up.mu.Unlock()

	dir := t.TempDir()
	firstOut := filepath.Join(dir, "first.jsonl")
	done := make(chan int, 1)
	var firstErr bytes.Buffer
	go func() {
		done <- run([]string{"dlq", "redrive", "--db", db, "--endpoint", url, "--out", firstOut}, io.Discard, &firstErr)
	}()
	<-started
	_, stderr := runOK(t, 1, "dlq", "redrive", "--db", db, "--endpoint", url, "--out", filepath.Join(dir, "second.jsonl"))
	if !strings.Contains(stderr, "another keel dlq redrive") || !strings.Contains(stderr, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("second redrive's message does not name the first: %s", stderr)
	}
	letGo()
	if code := <-done; code != 0 {
		t.Fatalf("first redrive: exit %d\n%s", code, firstErr.String())
	}
	_, ok := up.snapshot()
	for _, id := range []string{"FAIL1", "FAIL2", "FAIL3"} {
		if ok[id] != 1 {
			t.Errorf("%s answered %d times, want once", id, ok[id])
		}
	}
	if n := countLines(firstOut); n != 3 {
		t.Errorf("%d reply lines, want 3", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "second.jsonl")); err == nil {
		t.Error("the refused redrive created its --out")
	}
	// Once the first is over, a redrive runs again (nothing left to do).
	runOK(t, 0, "dlq", "redrive", "--db", db, "--endpoint", url)
}
