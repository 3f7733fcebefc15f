package config

import (
	"strings"
	"testing"
	"time"
)

func TestCacheSection(t *testing.T) {
	c, err := Parse([]byte("cache:\n  mode: deterministic\n  ttl: 30m\n  max_bytes: 64MiB\n  store: sqlite:/tmp/keel-cache.db\n  shared: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := c.Cache.MaxBytes.Bytes()
	if c.Cache.Mode != "deterministic" || c.Cache.TTL.D() != 30*time.Minute || n != 64<<20 || !c.Cache.Shared {
		t.Errorf("parsed %+v (max_bytes %d)", c.Cache, n)
	}
	if c, err := Parse([]byte("cache:\n  mode: all\n  max_bytes: 1048576\n")); err != nil {
		t.Error(err)
	} else if n, _ := c.Cache.MaxBytes.Bytes(); n != 1<<20 {
		t.Errorf("max_bytes: 1048576 read as %d", n)
	}
	for _, tt := range []struct{ doc, want string }{
		{"cache:\n  mode: sometimes\n", `cache.mode: "sometimes": want off, deterministic or all`},
		{"cache:\n  ttl: 1h\n", "cache.mode: is off, but other cache settings are set"},
		{"cache:\n  mode: all\n  ttl: -1s\n", "cache.ttl: must not be negative"},
		{"cache:\n  mode: all\n  max_bytes: 12XB\n", `cache.max_bytes: "12XB" is not a size such as 256MiB`},
		{"cache:\n  mode: all\n  max_bytes: 0\n", "cache.max_bytes: must be positive"},
		{"cache:\n  mode: all\n  store: disk\n", `cache.store: "disk": want memory, sqlite:PATH or redis`},
		{"cache:\n  mode: all\n  store: 'sqlite:'\n", `cache.store: "sqlite:" names no file`},
	} {
		_, err := Parse([]byte(tt.doc))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err %v; want %q", tt.doc, err, tt.want)
		}
	}
}

func TestSizeBytes(t *testing.T) {
	for _, tt := range []struct {
		in   Size
		want int64
		bad  bool
	}{{"", 0, false}, {"10", 10, false}, {"2KiB", 2048, false}, {"256MiB", 256 << 20, false}, {"1 GiB", 1 << 30, false},
		{"3MB", 3e6, false}, {"5B", 5, false}, {"-1", 0, true}, {"1.5MiB", 0, true}, {"MiB", 0, true}, {"99999999999GiB", 0, true}} {
		got, err := tt.in.Bytes()
		if got != tt.want || (err != nil) != tt.bad {
			t.Errorf("Size(%q).Bytes() = %d, %v", tt.in, got, err)
		}
	}
}
