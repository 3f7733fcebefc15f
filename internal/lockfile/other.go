//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package lockfile

import "os"

// tryLock cannot lock on this system: the lock file records the holder,
// but a second process is not refused.
func tryLock(f *os.File) (held bool, err error) { return false, nil }

// Supported reports whether locks exclude other processes on this system.
const Supported = false
