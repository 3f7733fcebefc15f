package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Cache configures the response cache (docs/cache.md): replies stored and
// served again for identical requests, and identical requests in flight
// sharing one upstream call. Absent: off.
type Cache struct {
	// Mode is off (the default), deterministic (only requests that ask
	// for deterministic output: temperature 0) or all (every request whose
	// body is JSON).
	Mode string `yaml:"mode"`
	// TTL is how long a reply is served. 0: 1h.
	TTL Duration `yaml:"ttl"`
	// MaxBytes bounds the memory and SQLite stores: a number of bytes, or
	// one with a unit (KiB, MiB, GiB; KB, MB, GB). Empty: 256MiB.
	MaxBytes Size `yaml:"max_bytes"`
	// Store is where replies are kept: memory (the default; this process
	// only), sqlite:PATH (a file that survives restarts) or redis (the
	// redis: connection, shared by every replica).
	Store string `yaml:"store"`
	// Shared makes the gateway's callers share entries. false: each
	// caller's entries are its own.
	Shared bool `yaml:"shared"`
}

// Size is a number of bytes written as 1048576, "512KiB", "256MiB" or "1GB".
type Size string

var sizeUnits = []struct {
	suffix string
	n      int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}

// Bytes returns the size in bytes; 0 for an empty Size.
func (s Size) Bytes() (int64, error) {
	v := strings.TrimSpace(string(s))
	if v == "" {
		return 0, nil
	}
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(num), u.n
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 256MiB or 1048576", string(s))
	}
	return n * mult, nil
}

// CacheStore returns the kind of store s names ("memory", "sqlite",
// "redis") and, for sqlite, its file.
func CacheStore(s string) (kind, path string, err error) {
	switch {
	case s == "" || s == "memory":
		return "memory", "", nil
	case s == "redis":
		return "redis", "", nil
	case strings.HasPrefix(s, "sqlite:"):
		if path = strings.TrimPrefix(s, "sqlite:"); strings.TrimSpace(path) == "" {
			return "", "", fmt.Errorf("%q names no file: want sqlite:PATH", s)
		}
		return "sqlite", path, nil
	}
	return "", "", fmt.Errorf("%q: want memory, sqlite:PATH or redis", s)
}

func (c Cache) validate(bad func(key, format string, args ...any)) {
	switch c.Mode {
	case "", "off":
		if c.TTL != 0 || c.MaxBytes != "" || c.Store != "" || c.Shared {
			bad("cache.mode", "is off, but other cache settings are set: set mode: deterministic or all to cache")
		}
		return
	case "deterministic", "all":
	default:
		bad("cache.mode", "%q: want off, deterministic or all", c.Mode)
	}
	if c.TTL < 0 {
		bad("cache.ttl", "must not be negative, got %s (0 = default 1h)", c.TTL.D())
	}
	if n, err := c.MaxBytes.Bytes(); err != nil {
		bad("cache.max_bytes", "%v", err)
	} else if c.MaxBytes != "" && n == 0 {
		bad("cache.max_bytes", "must be positive (leave it out for 256MiB)")
	}
	// A redis store without redis.url is refused when the cache is opened
	// (keel.New): Go options may name the store and leave the Redis to the
	// file, so the two are only known together then.
	if _, _, err := CacheStore(c.Store); err != nil {
		bad("cache.store", "%v", err)
	}
}
