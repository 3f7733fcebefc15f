package keel

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	smithy "github.com/aws/smithy-go"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/quotas"
)

// This file reads the targets' tokens-per-minute quotas from Service
// Quotas for the quota governor (quotas.discover; docs/governor.md,
// Discovered quotas). The governor decides when (a target's first call,
// then every admission.DefaultDiscoverEvery) and waits at most
// admission.DefaultDiscoverWait; discoverer answers, listing each region's
// Bedrock quotas once for the targets asked about together, and logs once
// per target why a quota was not found, which leaves it to the learner.

// listReuse is how long one region's list of quotas answers for its other
// targets: the targets first called together (a route's fallbacks, a
// batch's models) share one ListServiceQuotas, and a refresh still sees a
// changed quota within a minute of its interval.
const listReuse = time.Minute

// maxLogged bounds the targets whose last outcome discoverer remembers (to
// log each once); past it, it forgets them all and may log one again.
const maxLogged = admission.DefaultMaxTargets

// Discovery outcomes, as the log lines say them.
const (
	outcomeDiscovered  = "discovered"
	outcomeRefused     = "refused"     // AccessDenied: no servicequotas:ListServiceQuotas
	outcomeUnreachable = "unreachable" // no answer: network, DNS, timeout
	outcomeFailed      = "failed"      // another error of the API
	outcomeNotListed   = "not-listed"  // Service Quotas has no quota for the model and way of calling it
)

// discoverer reads quotas for the governor's Options.Discover. It is safe
// for concurrent use.
type discoverer struct {
	api func(region string) quotas.API // a client per region
	log *slog.Logger
	clk clock.Clock

	mu      sync.Mutex
	regions map[string]*regionList
	logged  map[admission.Target]string // the last outcome logged per target
}

// regionList is one region's last list of quotas; its mu is held while it
// is read, so that the targets asking together share one read.
type regionList struct {
	mu  sync.Mutex
	at  time.Time // when read; zero: never
	qs  []quotas.Quota
	err error
}

// newDiscoverer reads quotas with cfg's credentials from each region's
// Service Quotas, or from endpoint when it is set (an emulator). Nil
// logger: slog.Default(); nil clk: the wall clock.
func newDiscoverer(cfg aws.Config, endpoint string, httpClient *http.Client, logger *slog.Logger, clk clock.Clock) *discoverer {
	var base *string
	if endpoint != "" {
		base = aws.String(endpoint)
	}
	clients := map[string]quotas.API{}
	var mu sync.Mutex
	d := &discoverer{log: logger, clk: clk, api: func(region string) quotas.API {
		mu.Lock()
		defer mu.Unlock()
		c := clients[region]
		if c == nil {
			c = servicequotas.NewFromConfig(cfg, func(o *servicequotas.Options) {
				o.Region, o.BaseEndpoint = region, base
				if httpClient != nil {
					o.HTTPClient = httpClient
				}
			})
			clients[region] = c
		}
		return c
	}}
	return d.init()
}

func (d *discoverer) init() *discoverer {
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.clk == nil {
		d.clk = clock.Real{}
	}
	d.regions = map[string]*regionList{}
	d.logged = map[admission.Target]string{}
	return d
}

// discover returns t's tokens-per-minute quota in t's region: what
// admission.Options.Discover asks.
func (d *discoverer) discover(ctx context.Context, t admission.Target) (int, error) {
	qs, err := d.list(ctx, t.Region)
	var q quotas.Quota
	if err == nil {
		q, err = quotas.PerMinute(qs, t.Model)
	}
	d.note(t, q, err)
	if err != nil {
		return 0, err
	}
	return int(min(q.Int(), int64(maxQuota))), nil
}

// maxQuota bounds a discovered quota to what an int holds on any platform
// keel builds for.
const maxQuota = 1<<31 - 1

// list returns region's quotas, read again when the last read is older
// than listReuse.
func (d *discoverer) list(ctx context.Context, region string) ([]quotas.Quota, error) {
	d.mu.Lock()
	r := d.regions[region]
	if r == nil {
		r = &regionList{}
		d.regions[region] = r
	}
	d.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	now := d.clk.Now()
	if !r.at.IsZero() && now.Sub(r.at) < listReuse {
		return r.qs, r.err
	}
	r.qs, r.err = quotas.List(ctx, d.api(region))
	r.at = d.clk.Now()
	return r.qs, r.err
}

// outcome names what a read's error means for the target.
func outcome(err error) string {
	var ae smithy.APIError
	switch {
	case err == nil:
		return outcomeDiscovered
	case errors.Is(err, quotas.ErrNotListed):
		return outcomeNotListed
	case errors.As(err, &ae) && (ae.ErrorCode() == "AccessDeniedException" || ae.ErrorCode() == "AccessDenied"):
		return outcomeRefused
	case errors.As(err, &ae):
		return outcomeFailed
	}
	return outcomeUnreachable
}

// note logs a read's outcome for t, once while it stays the same.
func (d *discoverer) note(t admission.Target, q quotas.Quota, err error) {
	o := outcome(err)
	key := o
	if err == nil {
		key += " " + strconv.FormatInt(q.Int(), 10) // a changed quota is logged again
	}
	d.mu.Lock()
	if d.logged[t] == key {
		d.mu.Unlock()
		return
	}
	if len(d.logged) >= maxLogged {
		clear(d.logged)
	}
	d.logged[t] = key
	d.mu.Unlock()
	if err == nil {
		d.log.LogAttrs(context.Background(), slog.LevelDebug, "quota discovered", slog.String("model", t.Model),
			slog.String("region", t.Region), slog.Int64("tokensPerMinute", q.Int()), slog.String("quota", q.Name),
			slog.String("code", q.Code))
		return
	}
	d.log.LogAttrs(context.Background(), slog.LevelWarn, "quota not discovered", slog.String("model", t.Model),
		slog.String("region", t.Region), slog.String("outcome", o), slog.String("error", err.Error()),
		slog.String("fallback", "the learner (or quotas.default)"))
}
