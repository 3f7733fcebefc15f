package dlq_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/dlq"
)

func TestSQLiteReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dlq.db")
	s, err := dlq.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	e := &dlq.Entry{Op: "invoke", Model: "m", Body: []byte(`{"prompt":"x"}`), Code: "ValidationException", CreatedAt: t0, FailedAt: t0, NotBefore: t0.Add(time.Hour)}
	id, err := s.Put(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = dlq.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != string(e.Body) || !got.NotBefore.Equal(e.NotBefore) {
		t.Errorf("after reopening: %+v", got)
	}
}

func TestOpenSQLiteRefuses(t *testing.T) {
	dir := t.TempDir()
	newer := filepath.Join(dir, "newer.db")
	other := filepath.Join(dir, "other.db")
	for path, stmt := range map[string]string{
		newer: "PRAGMA user_version = 99",
		other: "CREATE TABLE records (id TEXT)",
	} {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	notDB := filepath.Join(dir, "text.db")
	os.WriteFile(notDB, []byte(strings.Repeat("this is not a database\n", 100)), 0o644)
	tests := []struct {
		name, path, want string
	}{
		{"no name", "", "no database file named"},
		{"question mark", filepath.Join(dir, "a?b.db"), "contains '?'"},
		{"newer schema", newer, "schema version 99"},
		{"another kind of file", other, "not a keel dead-letter database"},
		{"not SQLite", notDB, notDB},
		{"missing directory", filepath.Join(dir, "nope", "dlq.db"), "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := dlq.OpenSQLite(tt.path)
			if err == nil {
				s.Close()
				t.Fatalf("OpenSQLite(%q) succeeded", tt.path)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// The helper process for TestSQLiteSurvivesKill: it parks entries as fast as
// it can and prints each ID once Put has returned, until it is killed.
func TestSQLiteKillHelper(t *testing.T) {
	path := os.Getenv("KEEL_DLQ_KILL_HELPER")
	if path == "" {
		t.Skip("helper process for TestSQLiteSurvivesKill")
	}
	s, err := dlq.OpenSQLite(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		e := &dlq.Entry{Op: "converse", Model: "m", Body: []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 2000))),
			Code: "ThrottlingException", CreatedAt: time.Now(), FailedAt: time.Now(), Key: fmt.Sprintf("k%d", i)}
		id, err := s.Put(context.Background(), e)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("put %d %d\n", id, i)
	}
}

// TestSQLiteSurvivesKill parks dead letters in a child process, SIGKILLs it
// mid-stream, and checks that every entry whose Put had returned is there,
// intact, when the file is opened again.
func TestSQLiteSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := filepath.Join(t.TempDir(), "dlq.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteKillHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "KEEL_DLQ_KILL_HELPER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[int64]int{} // id -> n
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(time.Minute)
	for sc.Scan() && len(acked) < 200 && time.Now().Before(deadline) {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "put" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper said %q", sc.Text())
		}
		id, _ := strconv.ParseInt(f[1], 10, 64)
		n, _ := strconv.Atoi(f[2])
		acked[id] = n
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("helper acknowledged only %d entries", len(acked))
	}
	s, err := dlq.OpenSQLite(path)
	if err != nil {
		t.Fatalf("reopening after kill -9: %v", err)
	}
	defer s.Close()
	all, err := s.List(context.Background(), dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int64]*dlq.Entry{}
	for _, e := range all {
		byID[e.ID] = e
	}
	for id, n := range acked {
		e, ok := byID[id]
		if !ok {
			t.Fatalf("entry %d (n=%d) was acknowledged but is gone after kill -9", id, n)
		}
		if want := fmt.Sprintf(`{"n":%d,`, n); !strings.HasPrefix(string(e.Body), want) || e.Key != fmt.Sprintf("k%d", n) {
			t.Fatalf("entry %d: body %.20q key %q; want n=%d", id, e.Body, e.Key, n)
		}
	}
	t.Logf("%d acknowledged, %d stored after kill -9", len(acked), len(all))
}

func TestSQLiteFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dlq.db")
	s, err := dlq.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), &dlq.Entry{Op: "converse", Model: "m", Code: "ValidationException", CreatedAt: t0, FailedAt: t0}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v; request bodies must not be readable by others", filepath.Base(p), fi.Mode().Perm())
		}
	}
}
