package engine

// Logs and metrics: one JSON line per attempt and per outcome (never
// credentials or prompt text), and the Prometheus measurements.

import (
	"cmp"
	"context"
	"errors"
	"log/slog"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/breaker"
	"github.com/keel-run/keel/internal/catalog"
)

func (e *Engine) breakerChanged(model, region, tier string, from, to breaker.State) {
	if e.m != nil {
		t := cmp.Or(tier, bedrock.TierDefault)
		e.m.BreakerState.WithLabelValues(e.models.label(model), e.regions.label(region), t).Set(float64(to))
		if to == breaker.Open {
			e.m.BreakerOpens.WithLabelValues(e.models.label(model), e.regions.label(region), t).Inc()
		}
	}
	if e.log != nil {
		attrs := []slog.Attr{slog.String("model", model), slog.String("region", region), slog.String("from", from.String()), slog.String("to", to.String())}
		if tier != "" {
			attrs = append(attrs, slog.String("tier", tier))
		}
		e.log.LogAttrs(context.Background(), slog.LevelWarn, "breaker", attrs...)
	}
}

func (e *Engine) attemptMetric(a *Attempt) {
	e.noteError(a.Target, a.Code)
	if e.m == nil {
		return
	}
	code := cmp.Or(a.Code, "ok")
	model, region := e.models.label(a.Target.Model), e.regions.label(a.Target.Region)
	e.m.Attempts.WithLabelValues(model, region, code).Inc()
	e.m.AttemptDuration.WithLabelValues(model, region).Observe(a.Duration.Seconds())
}

func (e *Engine) fallbackMetric(t attempt.Target, reason string) {
	if e.m != nil {
		e.m.Fallbacks.WithLabelValues(e.models.label(t.Model), e.regions.label(t.Region), reason).Inc()
	}
}

// logAttempt writes one line per attempt: never credentials, never prompt text.
func (e *Engine) logAttempt(ctx context.Context, call *Call, a *Attempt, n int, entry *catalog.Entry) {
	if e.log == nil {
		return
	}
	level := slog.LevelInfo
	if entry != nil {
		level = slog.LevelWarn
	}
	if !e.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("op", string(call.Op)), slog.String("model", a.Target.Model), slog.String("region", a.Target.Region),
		slog.Int("attempt", n), slog.Int("status", a.Status), slog.String("requestId", a.RequestID),
		slog.Int64("delayMs", a.Delay.Milliseconds()), slog.Int64("durationMs", a.Duration.Milliseconds()),
	}
	if a.Target.Tier != "" {
		attrs = append(attrs, slog.String("tier", a.Target.Tier))
	}
	if entry != nil {
		attrs = append(attrs, slog.String("code", entry.Code), slog.String("category", string(entry.Category)), slog.String("retry", string(entry.Retry)))
	}
	for _, c := range a.Adaptations {
		attrs = append(attrs, slog.String("adapted", c.String()))
	}
	e.log.LogAttrs(ctx, level, "attempt", attrs...)
}

func (e *Engine) logf(ctx context.Context, level slog.Level, msg string, call *Call, t attempt.Target, n int, last *Error) {
	if e.log == nil || !e.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("op", string(call.Op)), slog.String("model", t.Model), slog.String("region", t.Region), slog.Int("attempt", n)}
	if t.Tier != "" {
		attrs = append(attrs, slog.String("tier", t.Tier))
	}
	if last != nil && last.Entry != nil {
		attrs = append(attrs, slog.String("code", last.Entry.Code))
	}
	e.log.LogAttrs(ctx, level, msg, attrs...)
}

// outcome records the call's final result.
func (e *Engine) outcome(ctx context.Context, call *Call, rep *Report, err error) {
	code, category := "ok", ""
	var ke *Error
	if errors.As(err, &ke) && ke.Entry != nil {
		code, category = ke.Entry.Code, string(ke.Entry.Category)
	} else if err != nil {
		code, category = "EngineError", "client"
	}
	if e.m != nil {
		e.m.Calls.WithLabelValues(string(call.Op), e.models.label(call.Model), code, category).Inc()
		e.m.CallDuration.WithLabelValues(string(call.Op), code).Observe(rep.Total.Seconds())
	}
	if e.log == nil {
		return
	}
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelError
	}
	if !e.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("op", string(call.Op)), slog.String("model", call.Model), slog.String("outcome", code),
		slog.Int("attempts", rep.Sent()), slog.Int("fallbacks", rep.Fallbacks), slog.Int64("totalMs", rep.Total.Milliseconds())}
	if rep.Target.Model != "" {
		attrs = append(attrs, slog.String("target", rep.Target.String()))
	}
	if category != "" {
		attrs = append(attrs, slog.String("category", category))
	}
	if ke != nil && ke.GaveUp != "" {
		attrs = append(attrs, slog.String("gaveUp", ke.GaveUp))
	}
	e.log.LogAttrs(ctx, level, "outcome", attrs...)
}
