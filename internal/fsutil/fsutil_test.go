package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMakePrivate(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o600, 0o666} {
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, nil, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode) // past the umask
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := MakePrivate(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v became %v, want 0600", mode, fi.Mode().Perm())
		}
	}
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before, _ := os.Stat(os.DevNull)
	if err := MakePrivate(f); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(os.DevNull); after.Mode() != before.Mode() {
		t.Errorf("%s changed mode: %v -> %v", os.DevNull, before.Mode(), after.Mode())
	}
}
