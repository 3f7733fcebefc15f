package keel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/budget"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/retry"
	"github.com/keel-run/keel/internal/route"
)

// This file maps Options and the configuration file onto the engine: the
// Go options are written in the file's terms (goConfig), checked by the
// file's rules under their Go names (checkGo), laid over the file
// (overlay), and the result mapped onto engine options (engineOptions).

// policies returns the configuration keel runs with: the file's, if
// opts names one, with the Go options laid over it.
func (opts *Options) policies() (*config.Config, error) {
	g := goConfig(opts)
	if err := checkGo(g); err != nil {
		return nil, err
	}
	f := opts.file
	if f == nil && opts.ConfigFile != "" {
		var err error
		if f, err = config.Load(opts.ConfigFile); err != nil {
			return nil, err
		}
	}
	if f == nil {
		return g, nil
	}
	return overlay(g, f), nil
}

// goConfig writes the Go options in the configuration file's terms.
func goConfig(o *Options) *config.Config {
	d := func(v time.Duration) config.Duration { return config.Duration(v) }
	c := &config.Config{Region: o.Region, Endpoint: o.Endpoint,
		Retry: config.Retry{MaxAttempts: o.Retry.MaxAttempts, Base: d(o.Retry.Base), Cap: d(o.Retry.Cap),
			ThrottleBase: d(o.Retry.ThrottleBase), ThrottleCap: d(o.Retry.ThrottleCap), AttemptTimeout: d(o.Retry.AttemptTimeout)},
		Budget: config.Budget{Ratio: o.Budget.Ratio, MinPerSecond: o.Budget.MinPerSecond, Window: d(o.Budget.Window), Disabled: o.Budget.Disabled},
		Breaker: config.Breaker{Window: d(o.Breaker.Window), MinCalls: o.Breaker.MinCalls, FailureRate: o.Breaker.FailureRate,
			ConsecutiveFailures: o.Breaker.ConsecutiveFailures, Cooldown: d(o.Breaker.Cooldown), Probes: o.Breaker.Probes, Disabled: o.Breaker.Disabled},
		ContentFilter: config.ContentFilter{Enabled: o.ContentFilter.Enabled, Message: o.ContentFilter.Message},
		Batch:         config.Batch{ServiceTier: o.Batch.ServiceTier},
		Streaming: config.Streaming{MaxResumes: o.Streaming.MaxResumes, FirstEventTimeout: d(o.Streaming.FirstEventTimeout),
			IdleTimeout: d(o.Streaming.IdleTimeout)},
		Limits: config.Limits{MaxResponseBytes: o.Limits.MaxResponseBytes, MaxEventBytes: o.Limits.MaxEventBytes},
		Quotas: config.Quotas{Disabled: o.Quotas.Disabled, MaxWait: d(o.Quotas.MaxWait), SmallFirst: o.Quotas.SmallFirst,
			FullStart: o.Quotas.FullStart, QueueTarget: d(o.Quotas.QueueTarget), Default: quotaConfig(o.Quotas.Default),
			Discover: o.Quotas.Discover},
	}
	c.Redis = config.Redis{URL: config.Secret(o.Redis.URL), Prefix: o.Redis.Prefix, Timeout: d(o.Redis.Timeout), Share: o.Redis.Share,
		TLS: config.RedisTLS{CA: o.Redis.TLS.CA, Cert: o.Redis.TLS.Cert, Key: o.Redis.TLS.Key, ServerName: o.Redis.TLS.ServerName}}
	c.Cache = config.Cache{Mode: o.Cache.Mode, TTL: d(o.Cache.TTL), Store: o.Cache.Store, Shared: o.Cache.Shared}
	if o.Cache.MaxBytes != 0 {
		c.Cache.MaxBytes = config.Size(strconv.FormatInt(o.Cache.MaxBytes, 10))
	}
	if o.Streaming.DisableResume {
		c.Streaming.Resume = new(false)
	}
	if o.Streaming.DisableContinueTurn {
		c.Streaming.ContinueTurn = new(false)
	}
	for _, r := range o.Routes {
		rt := config.Route{Name: r.Name, Models: slices.Clone(r.Models)}
		for _, t := range r.Targets {
			ct := config.Target{Model: t.Model, Region: t.Region, Tier: t.Tier}
			if t.Priority != nil {
				ct.Priority = t.Priority.String()
			}
			rt.Targets = append(rt.Targets, ct)
		}
		if r.Resume != nil {
			rt.Streaming = &config.RouteStreaming{Resume: new(*r.Resume)}
		}
		c.Routes = append(c.Routes, rt)
	}
	for _, q := range o.Quotas.Targets {
		c.Quotas.Targets = append(c.Quotas.Targets, quotaConfig(q))
	}
	for _, m := range o.Quotas.Models {
		c.Quotas.Models = append(c.Quotas.Models, config.QuotaModel{Match: m.Match, MaxOutputTokens: m.MaxOutputTokens, Burndown: m.Burndown})
	}
	return c
}

func quotaConfig(q Quota) config.Quota {
	c := config.Quota{Model: q.Model, Region: q.Region, TokensPerMinute: q.TokensPerMinute, RequestsPerMinute: q.RequestsPerMinute,
		MinTokensPerMinute: q.MinTokensPerMinute, MaxTokensPerMinute: q.MaxTokensPerMinute}
	if q.Learn != nil {
		c.Learn = new(*q.Learn)
	}
	return c
}

// checkGo validates the Go options by the configuration file's rules,
// naming each bad value by its field: retry.max_attempts is reported as
// Options.Retry.MaxAttempts.
func checkGo(g *config.Config) error {
	err := g.Validate()
	if err == nil {
		return nil
	}
	var msgs []string
	for _, e := range unjoin(err) {
		var ce *config.Error
		if errors.As(e, &ce) && ce.Key != "" {
			msgs = append(msgs, fmt.Sprintf("keel: %s: %s", goName(ce.Key), ce.Msg))
		} else {
			msgs = append(msgs, "keel: "+e.Error())
		}
	}
	return errors.New(strings.Join(msgs, "\n"))
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// initialisms are the words of keys that Go spells in capitals.
var initialisms = map[string]string{"url": "URL", "tls": "TLS", "ca": "CA"}

// goName turns a configuration key (routes[0].targets[1].region) into the
// Options field it came from (Options.Routes[0].Targets[1].Region).
func goName(key string) string {
	parts := strings.Split(key, ".")
	for i, p := range parts {
		name, index, _ := strings.Cut(p, "[")
		if index != "" {
			index = "[" + index
		}
		var b strings.Builder
		for w := range strings.SplitSeq(name, "_") {
			if up, ok := initialisms[w]; ok {
				b.WriteString(up)
			} else if w != "" {
				b.WriteString(strings.ToUpper(w[:1]) + w[1:])
			}
		}
		parts[i] = b.String() + index
	}
	return "Options." + strings.Join(parts, ".")
}

// overlay lays g (the Go options) over f (the file): a field g sets wins,
// one it leaves zero takes f's. g's routes replace f's routes for the
// same models; g's target quotas replace f's for the same target; g's
// model facts come before f's.
func overlay(g, f *config.Config) *config.Config {
	c := *f
	c.Region = cmp.Or(g.Region, f.Region)
	c.Endpoint = cmp.Or(g.Endpoint, f.Endpoint)

	gr, fr := g.Retry, f.Retry
	c.Retry = config.Retry{MaxAttempts: cmp.Or(gr.MaxAttempts, fr.MaxAttempts), Base: cmp.Or(gr.Base, fr.Base), Cap: cmp.Or(gr.Cap, fr.Cap),
		ThrottleBase: cmp.Or(gr.ThrottleBase, fr.ThrottleBase), ThrottleCap: cmp.Or(gr.ThrottleCap, fr.ThrottleCap),
		AttemptTimeout: cmp.Or(gr.AttemptTimeout, fr.AttemptTimeout)}

	gb, fb := g.Budget, f.Budget
	c.Budget = config.Budget{Ratio: cmp.Or(gb.Ratio, fb.Ratio), MinPerSecond: cmp.Or(gb.MinPerSecond, fb.MinPerSecond),
		Window: cmp.Or(gb.Window, fb.Window), Disabled: gb.Disabled || fb.Disabled}

	gk, fk := g.Breaker, f.Breaker
	c.Breaker = config.Breaker{Window: cmp.Or(gk.Window, fk.Window), MinCalls: cmp.Or(gk.MinCalls, fk.MinCalls),
		FailureRate: cmp.Or(gk.FailureRate, fk.FailureRate), ConsecutiveFailures: cmp.Or(gk.ConsecutiveFailures, fk.ConsecutiveFailures),
		Cooldown: cmp.Or(gk.Cooldown, fk.Cooldown), Probes: cmp.Or(gk.Probes, fk.Probes), Disabled: gk.Disabled || fk.Disabled}

	if g.ContentFilter.Enabled {
		c.ContentFilter = g.ContentFilter
	}

	gs, fs := g.Streaming, f.Streaming
	c.Streaming = config.Streaming{Resume: cmp.Or(gs.Resume, fs.Resume), ContinueTurn: cmp.Or(gs.ContinueTurn, fs.ContinueTurn),
		MaxResumes: cmp.Or(gs.MaxResumes, fs.MaxResumes), FirstEventTimeout: cmp.Or(gs.FirstEventTimeout, fs.FirstEventTimeout),
		IdleTimeout: cmp.Or(gs.IdleTimeout, fs.IdleTimeout)}

	c.Batch.ServiceTier = cmp.Or(g.Batch.ServiceTier, f.Batch.ServiceTier)

	c.Limits = config.Limits{MaxResponseBytes: cmp.Or(g.Limits.MaxResponseBytes, f.Limits.MaxResponseBytes),
		MaxEventBytes: cmp.Or(g.Limits.MaxEventBytes, f.Limits.MaxEventBytes)}

	c.Routes = nil
	taken := map[string]bool{}
	for _, rt := range g.Routes {
		for _, m := range rt.Models {
			taken[m] = true
		}
	}
	for _, rt := range f.Routes {
		rt.Models = slices.DeleteFunc(slices.Clone(rt.Models), func(m string) bool { return taken[m] })
		if len(rt.Models) > 0 {
			c.Routes = append(c.Routes, rt)
		}
	}
	c.Routes = append(c.Routes, g.Routes...)

	gq, fq := g.Quotas, f.Quotas
	c.Quotas = config.Quotas{Disabled: gq.Disabled || fq.Disabled, MaxWait: cmp.Or(gq.MaxWait, fq.MaxWait),
		SmallFirst: gq.SmallFirst || fq.SmallFirst, FullStart: gq.FullStart || fq.FullStart, QueueTarget: cmp.Or(gq.QueueTarget, fq.QueueTarget),
		Default: overlayQuota(gq.Default, fq.Default), Discover: gq.Discover || fq.Discover,
		Models: append(slices.Clone(gq.Models), fq.Models...)}
	type key struct{ model, region string }
	set := map[key]bool{}
	for _, q := range gq.Targets {
		set[key{q.Model, q.Region}] = true
	}
	for _, q := range fq.Targets {
		if !set[key{q.Model, q.Region}] {
			c.Quotas.Targets = append(c.Quotas.Targets, q)
		}
	}
	c.Quotas.Targets = append(c.Quotas.Targets, gq.Targets...)
	if g.Cache.Mode != "" {
		c.Cache = g.Cache // a cache mode set in Go replaces the file's whole section
	}
	if g.Redis.Enabled() {
		c.Redis = g.Redis // a Redis named in Go replaces the file's whole section
	}
	return &c
}

func overlayQuota(g, f config.Quota) config.Quota {
	return config.Quota{TokensPerMinute: cmp.Or(g.TokensPerMinute, f.TokensPerMinute),
		RequestsPerMinute: cmp.Or(g.RequestsPerMinute, f.RequestsPerMinute), Learn: cmp.Or(g.Learn, f.Learn),
		MinTokensPerMinute: cmp.Or(g.MinTokensPerMinute, f.MinTokensPerMinute), MaxTokensPerMinute: cmp.Or(g.MaxTokensPerMinute, f.MaxTokensPerMinute)}
}

// engineOptions maps c onto engine options for calls whose default region
// is region, sent to endpoint ("" for AWS's endpoints); c's own region:
// and endpoint: are not read, the caller has weighed them. store holds the
// quota governor's buckets; nil: in memory. discover reads quotas when
// c.Quotas.Discover is set (see discoverer); nil: none are read.
func engineOptions(c *config.Config, region, endpoint string, clk clock.Clock, store admission.Store,
	discover func(context.Context, admission.Target) (int, error)) (engine.Options, error) {
	routes := map[string][]route.Step{}
	for _, rt := range c.Routes {
		ts := make([]route.Step, 0, len(rt.Targets))
		for _, t := range rt.Targets {
			ts = append(ts, route.Step{Target: attempt.Target{Model: t.Model, Region: t.Region, Tier: t.Tier}, Class: t.Priority})
		}
		for _, m := range rt.Models {
			routes[m] = ts
		}
	}
	eo := engine.Options{
		Region:    region,
		Routes:    route.NewSteps(region, routes),
		BatchTier: c.Batch.ServiceTier,
		Retry: retry.Policy{MaxAttempts: c.Retry.MaxAttempts, Base: c.Retry.Base.D(), Cap: c.Retry.Cap.D(),
			ThrottleBase: c.Retry.ThrottleBase.D(), ThrottleCap: c.Retry.ThrottleCap.D()},
		Budget:        budget.Options{Ratio: c.Budget.Ratio, MinPerSecond: c.Budget.MinPerSecond, Window: c.Budget.Window.D()},
		DisableBudget: c.Budget.Disabled,
		Breaker: breaker.Options{Window: c.Breaker.Window.D(), MinCalls: c.Breaker.MinCalls, FailureRate: c.Breaker.FailureRate,
			ConsecutiveFailures: c.Breaker.ConsecutiveFailures, Cooldown: c.Breaker.Cooldown.D(), Probes: c.Breaker.Probes},
		DisableBreaker:   c.Breaker.Disabled,
		AttemptTimeout:   c.Retry.AttemptTimeout.D(),
		MaxResponseBytes: c.Limits.MaxResponseBytes,
		MaxEventBytes:    c.Limits.MaxEventBytes,
	}
	if c.ContentFilter.Enabled {
		eo.ContentFilterMessage = c.ContentFilter.Message
	}
	st := c.Streaming
	eo.Streaming = engine.StreamOptions{FirstEventTimeout: st.FirstEventTimeout.D(), IdleTimeout: st.IdleTimeout.D(),
		MaxResumes: st.MaxResumes, DisableResume: st.Resume != nil && !*st.Resume,
		DisableContinueTurn: st.ContinueTurn != nil && !*st.ContinueTurn}
	for _, rt := range c.Routes {
		if rt.Streaming == nil || rt.Streaming.Resume == nil {
			continue
		}
		if eo.Streaming.Resume == nil {
			eo.Streaming.Resume = map[string]bool{}
		}
		for _, m := range rt.Models {
			eo.Streaming.Resume[m] = *rt.Streaming.Resume
		}
	}
	if endpoint != "" {
		u, err := parseEndpoint(endpoint)
		if err != nil {
			return eo, err
		}
		eo.Endpoints = attempt.FixedEndpoint{URL: u}
	}
	if !c.Quotas.Disabled {
		ao := governorOptions(&c.Quotas, region)
		ao.Clock = clk
		ao.Store = store
		if c.Quotas.Discover {
			ao.Discover = discover
		}
		g, err := admission.New(ao)
		if err != nil {
			return eo, fmt.Errorf("keel: quotas: %w", err)
		}
		eo.Governor = g
	}
	return eo, nil
}

// governorOptions maps the quotas onto the quota governor's options; a
// target without a region is in region, the default one.
func governorOptions(q *config.Quotas, region string) admission.Options {
	quota := func(c config.Quota) admission.Quota {
		return admission.Quota{TokensPerMinute: c.TokensPerMinute, RequestsPerMinute: c.RequestsPerMinute,
			Learn: c.TokensPerMinute > 0 && c.Learning(), MinTokensPerMinute: c.MinTokensPerMinute, MaxTokensPerMinute: c.MaxTokensPerMinute}
	}
	ao := admission.Options{Default: quota(q.Default), MaxWait: q.MaxWait.D(), SmallFirst: q.SmallFirst,
		FullStart: q.FullStart, QueueTarget: q.QueueTarget.D()}
	if len(q.Targets) > 0 {
		ao.Targets = make(map[admission.Target]admission.Quota, len(q.Targets))
		for _, t := range q.Targets {
			r := t.Region
			if r == "" {
				r = region
			}
			ao.Targets[admission.Target{Model: t.Model, Region: r}] = quota(t)
		}
	}
	for _, m := range q.Models {
		ao.Models = append(ao.Models, admission.Model{Match: m.Match, MaxOutputTokens: m.MaxOutputTokens, Burndown: m.Burndown})
	}
	return ao
}
