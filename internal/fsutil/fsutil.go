// Package fsutil holds the file handling keel's commands share.
package fsutil

import "os"

// MakePrivate makes f, when it is a regular file, readable and writable by
// its owner only (0600): files holding prompts or replies must not be
// world-readable, whatever mode an existing one had. A device such as
// /dev/null is left alone.
func MakePrivate(f *os.File) error {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() == 0o600 {
		return err
	}
	return f.Chmod(0o600)
}
