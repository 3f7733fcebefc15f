// Package lockfile gives a process an exclusive lock on a file beside the
// data it guards, and writes who holds it (pid, host, start time) into that
// file, so that a second process is refused at once with a message naming
// the holder.
//
// On Linux and the BSDs (macOS included) the lock is flock(2): the kernel
// releases it when the holder's file is closed, and so when the holder
// dies, kill -9 included. A lock file left on disk by a dead process blocks
// nobody; it is never removed (removing it would let two processes lock two
// different files of the same name). On other systems Acquire records the
// holder but cannot exclude anyone, and Supported is false: a command that
// relies on the lock should say so to its user.
package lockfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Holder says who holds a lock.
type Holder struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
	What  string    `json:"what,omitempty"` // the holder's command, e.g. "keel batch run"
}

func (h Holder) String() string {
	s := fmt.Sprintf("pid %d on %s, since %s", h.PID, h.Host, h.Since.Local().Format(time.DateTime))
	if h.What != "" {
		s = h.What + " (" + s + ")"
	}
	return s
}

// ErrLocked is returned (wrapped in a *LockedError) when another process
// holds the lock.
var ErrLocked = errors.New("lockfile: held by another process")

// LockedError says which lock is held and, when its file says so, by whom.
type LockedError struct {
	Path   string
	Holder Holder
	Known  bool // Holder was read from the lock file
}

func (e *LockedError) Error() string {
	if !e.Known {
		return fmt.Sprintf("%s is held by another process (it has not written its pid yet)", e.Path)
	}
	return fmt.Sprintf("%s is held by %s", e.Path, e.Holder)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock is a held lock. Release it when done; it is released anyway when the
// process exits.
type Lock struct {
	f *os.File
}

// Acquire takes the lock at path (creating the file), without waiting: if
// another process (or another Acquire in this one) holds it, it returns a
// *LockedError naming the holder. what names the holder's command in that
// message.
func Acquire(path, what string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lockfile: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lockfile: locking %s: %w", path, err)
	}
	if held {
		le := &LockedError{Path: path}
		if b, err := io.ReadAll(io.LimitReader(f, 4096)); err == nil && json.Unmarshal(b, &le.Holder) == nil && le.Holder.PID > 0 {
			le.Known = true
		}
		f.Close()
		return nil, le
	}
	host, _ := os.Hostname()
	h := Holder{PID: os.Getpid(), Host: host, Since: time.Now().UTC().Truncate(time.Second), What: what}
	b, _ := json.Marshal(h)
	if err := f.Truncate(0); err == nil {
		f.WriteAt(append(b, '\n'), 0)
	}
	return &Lock{f: f}, nil
}

// LockFile takes an exclusive lock on f itself, without waiting and
// without writing anything to it: ErrLocked if another open file holds it.
// The lock goes when f is closed. Use it for a data file that is also the
// natural thing to lock; Acquire for a lock file that names its holder.
func LockFile(f *os.File) error {
	held, err := tryLock(f)
	if err != nil {
		return fmt.Errorf("lockfile: locking %s: %w", f.Name(), err)
	}
	if held {
		return fmt.Errorf("%w: %s", ErrLocked, f.Name())
	}
	return nil
}

// Release gives the lock up. The file stays.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the file releases the flock
	l.f = nil
	return err
}
