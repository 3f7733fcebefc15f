package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/keel-run/keel/internal/cache"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/redisx"
)

func init() {
	register(command{name: "cache", summary: "show or purge the response cache's store", run: runCache})
}

const cacheUsage = `Usage:
  keel cache stats [--config FILE] [--store STORE] [--json]
  keel cache purge [--config FILE] [--store STORE] [--json]

The response cache (docs/cache.md) keeps replies in the store the
configuration's cache.store names, or --store: sqlite:PATH (a file) or redis
(the configuration's redis: connection). stats prints what the store holds;
purge removes every entry. A memory store lives in its process, so there is
nothing to show or purge from here.`

// cacheTimeout bounds a command's work on the store: a purge of a large
// Redis is a few thousand round trips.
const cacheTimeout = time.Minute

func runCache(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, cacheUsage)
		return 0
	}
	sub, rest := args[0], args[1:]
	if sub != "stats" && sub != "purge" {
		fmt.Fprintf(stderr, "keel cache: unknown subcommand %q; want stats or purge\n", sub)
		return 2
	}
	var configFile, storeFlag string
	var jsonOut bool
	fs := flag.NewFlagSet("keel cache "+sub, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), cacheUsage+"\n\nFlags of keel cache "+sub+":")
		fs.PrintDefaults()
	}
	fs.StringVar(&configFile, "config", "", "a keel YAML configuration `FILE` (its cache.store, and redis: for a redis store)")
	fs.StringVar(&storeFlag, "store", "", "the `STORE`: sqlite:PATH or redis (default: the configuration's cache.store)")
	fs.BoolVar(&jsonOut, "json", false, "print as JSON")
	if err := parseFlags(fs, rest, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keel cache %s: unexpected argument %q\n", sub, fs.Arg(0))
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), cacheTimeout)
	defer cancel()
	st, where, closeStore, err := openCacheStore(ctx, configFile, storeFlag, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "keel cache %s: %v\n", sub, err)
		return 1
	}
	defer closeStore()
	if sub == "purge" {
		if err := st.Purge(ctx); err != nil {
			fmt.Fprintf(stderr, "keel cache purge: %v\n", err)
			return 1
		}
		if jsonOut {
			return writeJSON(stdout, stderr, map[string]any{"store": where, "purged": true}, 0)
		}
		fmt.Fprintf(stdout, "purged %s\n", where)
		return 0
	}
	s, err := st.Stats(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "keel cache stats: %v\n", err)
		return 1
	}
	if jsonOut {
		return writeJSON(stdout, stderr, map[string]any{"store": where, "entries": s.Entries, "bytes": s.Bytes}, 0)
	}
	fmt.Fprintf(stdout, "store    %s\n", where)
	if s.Entries < 0 {
		fmt.Fprintln(stdout, "entries  not counted (Redis does not count one prefix's keys cheaply)")
		return 0
	}
	fmt.Fprintf(stdout, "entries  %d\nbytes    %d\n", s.Entries, s.Bytes)
	return 0
}

// openCacheStore opens the store storeFlag names, else the configuration
// file's cache.store; where names it for the output.
func openCacheStore(ctx context.Context, configFile, storeFlag string, stderr io.Writer) (st cache.Store, where string, closeStore func(), err error) {
	c := &config.Config{}
	if configFile != "" {
		if c, err = config.Load(configFile); err != nil {
			return nil, "", nil, err
		}
	}
	spec := storeFlag
	if spec == "" {
		spec = c.Cache.Store
	}
	if spec == "" {
		return nil, "", nil, errors.New("no store: name one with --store sqlite:PATH or --store redis, or a --config whose cache.store does")
	}
	kind, path, err := config.CacheStore(spec)
	if err != nil {
		return nil, "", nil, fmt.Errorf("--store %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	switch kind {
	case "sqlite":
		max, err := c.Cache.MaxBytes.Bytes()
		if err != nil || max == 0 {
			max = cache.DefaultMaxBytes
		}
		s, err := cache.OpenSQLite(path, max, nil, log)
		if err != nil {
			return nil, "", nil, err
		}
		return s, spec, func() { s.Close() }, nil
	case "redis":
		if !c.Redis.Enabled() {
			return nil, "", nil, errors.New("the redis store needs a --config whose redis.url names the Redis")
		}
		ro := redisx.FromConfig(c.Redis)
		ro.Logger = log
		rc, err := redisx.Open(ctx, ro)
		if err != nil {
			return nil, "", nil, err
		}
		return cache.NewRedis(rc), "redis " + c.Redis.Prefix, func() { rc.Close() }, nil
	}
	return nil, "", nil, errors.New("a memory store lives in its process: there is nothing to show or purge from here")
}
