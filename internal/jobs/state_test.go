package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestStatusSavesNothing (review r5, finding 4): keel jobs status holds no
// lock, so it must not write back a state that another process (keel jobs
// run) has moved on since status read it.
func TestStatusSavesNothing(t *testing.T) {
	tests := []struct {
		name     string
		meantime func(t *testing.T, e *env) // what the other process does after status loaded the state
	}{
		{"the run finished", func(t *testing.T, e *env) {
			if _, err := e.runner(t).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"nothing", func(t *testing.T, e *env) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			if err := e.runner(t).Submit(context.Background()); err != nil {
				t.Fatal(err)
			}
			status := e.runner(t)
			tt.meantime(t, e)
			before, _ := os.ReadFile(e.opts.Out + ".jobstate")
			st, err := status.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Status == "" || st.Status == status.St.Status {
				t.Fatalf("Status returned status %q (runner's %q): want Bedrock's answer, the runner's state untouched", st.Status, status.St.Status)
			}
			if after, _ := os.ReadFile(e.opts.Out + ".jobstate"); string(after) != string(before) {
				t.Fatalf("keel jobs status rewrote the state file:\n%s\nwas\n%s", after, before)
			}
		})
	}
}

// TestWriteAtomicWriters: writers of one file at once (keel jobs run and
// an older keel's status) each finish, and the file is one of theirs,
// whole.
func TestWriteAtomicWriters(t *testing.T) {
	for _, writers := range []int{1, 2, 8} {
		t.Run(fmt.Sprint(writers, " writers"), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.jobstate")
			var wg sync.WaitGroup
			errs := make(chan error, writers*50)
			for w := range writers {
				wg.Go(func() {
					for i := range 50 {
						b, _ := json.Marshal(map[string]string{"w": strings.Repeat("x", w*100+i)})
						if err := writeAtomic(path, b); err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			var v map[string]string
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("torn file %q: %v", b, err)
			}
			if left, _ := filepath.Glob(path + "*.tmp"); len(left) != 0 {
				t.Fatalf("temporary files left: %v", left)
			}
		})
	}
}
