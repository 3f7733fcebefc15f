package lockfile

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestAcquireRefusesSecondHolder(t *testing.T) {
	if !Supported {
		t.Skip("no flock on this system")
	}
	path := filepath.Join(t.TempDir(), "x.lock")
	l, err := Acquire(path, "keel test")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(path, "keel second")
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire: %v, want a *LockedError", err)
	}
	if !le.Known || le.Holder.PID != os.Getpid() || le.Holder.What != "keel test" || le.Holder.Since.IsZero() || le.Holder.Host == "" {
		t.Errorf("holder %+v (known %v), want this process", le.Holder, le.Known)
	}
	if msg := err.Error(); !strings.Contains(msg, "keel test") || !strings.Contains(msg, "pid ") {
		t.Errorf("message %q names no holder", msg)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(path, "keel third")
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
	l2.Release() // twice is harmless
}

// TestLockReleasedWhenHolderIsKilled takes the lock in a child process,
// SIGKILLs it, and takes the lock again: a holder's death frees it.
func TestLockReleasedWhenHolderIsKilled(t *testing.T) {
	if !Supported {
		t.Skip("no flock on this system")
	}
	if path := os.Getenv("KEEL_LOCKFILE_HOLD"); path != "" {
		if _, err := Acquire(path, "child"); err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("locked\n")
		select {} // hold until killed
	}
	path := filepath.Join(t.TempDir(), "x.lock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockReleasedWhenHolderIsKilled$")
	cmd.Env = append(os.Environ(), "KEEL_LOCKFILE_HOLD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q", line)
	}
	_, err = Acquire(path, "parent")
	var le *LockedError
	if !errors.As(err, &le) || le.Holder.PID != cmd.Process.Pid {
		t.Errorf("while the child holds it: %v, want held by pid %d", err, cmd.Process.Pid)
	}
	cmd.Process.Kill() // SIGKILL: the child cannot release anything itself
	cmd.Wait()
	l, err := Acquire(path, "parent")
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l.Release()
}
