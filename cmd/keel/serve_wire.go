package main

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/gateway"
	"github.com/keel-run/keel/internal/gateway/auth"
	"github.com/keel-run/keel/internal/gateway/status"
	"github.com/keel-run/keel/internal/keelx"
)

// gatewayCallers sets opts' inbound auth and per-caller budgets from the
// configured callers: each request is authenticated (a bearer token or a
// SigV4 signature), checked against the caller's models, and held against
// its tokens per minute, in store (nil: in memory).
func gatewayCallers(callers []config.Caller, store admission.Store, opts *gateway.Options) error {
	acs := make([]auth.Caller, len(callers))
	for i, c := range callers {
		acs[i] = auth.Caller{Name: c.Name, Bearer: c.Bearer.Value(), Models: c.Models, Priority: c.Priority,
			TokensPerMinute: c.TokensPerMinute}
		if c.SigV4 != nil {
			acs[i].AccessKeyID, acs[i].SecretAccessKey = c.SigV4.AccessKeyID, c.SigV4.SecretAccessKey.Value()
		}
	}
	a, err := auth.New(acs, auth.Options{})
	if err != nil {
		return err
	}
	budgets, err := auth.NewBudgetsIn(acs, clock.Real{}, store)
	if err != nil {
		return err
	}
	opts.CheckHeaders = func(r *http.Request) error { return asRefusal(a.CheckHeaders(r)) }
	opts.Authenticate = func(r *http.Request, model string, body []byte) (gateway.Caller, error) {
		c, err := a.Authenticate(r, body)
		if err == nil {
			err = a.Allow(c, model)
		}
		if err != nil {
			return gateway.Caller{}, asRefusal(err)
		}
		return gateway.Caller{Name: c.Name, Priority: c.Class()}, nil
	}
	opts.Limit = func(ctx context.Context, caller, _ string, tokens int) (func(int), error) {
		release, err := budgets.Reserve(ctx, caller, tokens)
		return release, asRefusal(err)
	}
	return nil
}

// asRefusal returns auth's refusal as the gateway answers it; other errors
// (and nil) as they are.
func asRefusal(err error) error {
	var ae *auth.Error
	if errors.As(err, &ae) {
		return &gateway.Refusal{Code: ae.Code, Status: ae.Status, Message: ae.Message}
	}
	return err
}

// gatewayStatus sets opts' status page and per-caller metrics (on reg),
// fed by every request the gateway serves; cacheStore is the
// configuration's cache.store, which the page names.
func gatewayStatus(k *keel.Keel, cacheStore string, reg prometheus.Registerer, opts *gateway.Options) error {
	rec, err := status.NewRecorder(status.Options{Registerer: reg})
	if err != nil {
		return err
	}
	opts.Observe = func(ev gateway.Event) {
		rec.Observe(status.Event{Caller: ev.Caller, Op: ev.Op, Model: ev.Model, Status: ev.Status, Code: ev.Code,
			Attempts: ev.Attempts, Duration: ev.Duration, InputTokens: ev.Input, OutputTokens: ev.Output, Refused: ev.Refused})
	}
	bi, _ := debug.ReadBuildInfo()
	shared := func() (status.SharedStatus, bool) {
		s, ok := k.Shared()
		return status.SharedStatus{Degraded: s.Degraded, DownSince: s.DownSince, LastError: s.LastError, Failures: s.Failures,
			Episodes: s.Episodes, Replicas: s.Replicas, Share: s.Share, ShareGuessed: s.ShareGuessed, ReplyErrors: s.ReplyErrors,
			AccountConflict: s.AccountConflict}, ok
	}
	cacheStatus := func(ctx context.Context) (status.CacheStatus, bool) {
		s, ok := k.Cache(ctx)
		return status.CacheStatus{Mode: s.Mode, Store: cmp.Or(cacheStore, "memory"), Hits: s.Hits, Misses: s.Misses,
			Coalesced: s.Coalesced, Bypassed: s.Bypassed, Stored: s.Stored, StoredBytes: s.StoredBytes, Failures: s.Failures,
			Entries: s.Entries, Bytes: s.Bytes, Evictions: s.Evictions, Waiting: s.Waiting}, ok
	}
	opts.Status = status.Handler(status.Source{Targets: keelx.Engine(k).Snapshot, Callers: rec, Shared: shared, Cache: cacheStatus,
		Version: versionString(bi)})
	return nil
}
