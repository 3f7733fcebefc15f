package keel

import (
	"sync"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/engine"
)

// This file converts the engine's values into the public ones, at the
// boundary: a Report, Failure, Entry or QuotaStats handed to a caller is
// a copy it may keep.

func targetOf(t bedrock.Target) Target { return Target{Model: t.Model, Region: t.Region, Tier: t.Tier} }

func usageOf(u engine.Usage) Usage {
	return Usage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, CacheReadInputTokens: u.CacheReadInputTokens,
		CacheWriteInputTokens: u.CacheWriteInputTokens, Estimated: u.Estimated}
}

// reportOf copies r; nil for nil.
func reportOf(r *engine.Report) *Report {
	if r == nil {
		return nil
	}
	out := &Report{Total: r.Total, Target: targetOf(r.Target), Fallbacks: r.Fallbacks, Degraded: r.Degraded,
		Resumes: r.Resumes, Usage: usageOf(r.Usage), Cache: r.Cache}
	if r.Attempts != nil {
		out.Attempts = make([]Attempt, len(r.Attempts))
	}
	for i, a := range r.Attempts {
		out.Attempts[i] = Attempt{Target: targetOf(a.Target), Status: a.Status, Code: a.Code, RequestID: a.RequestID,
			Delay: a.Delay, Start: a.Start, Duration: a.Duration, Skipped: a.Skipped, QuotaWait: a.QuotaWait,
			QuotaTokens: a.QuotaTokens, Resume: a.Resume, ResumeMode: a.ResumeMode, OverlapDropped: a.OverlapDropped,
			Events: a.Events, Usage: usageOf(a.Usage)}
		for _, c := range a.Adaptations {
			out.Attempts[i].Adaptations = append(out.Attempts[i].Adaptations, Adaptation(c))
		}
	}
	return out
}

// failureOf copies f, its report included; nil for nil.
func failureOf(f *engine.Error) *Failure {
	if f == nil {
		return nil
	}
	out := &Failure{Entry: entryOf(f.Entry), Code: f.Code, Status: f.Status, Message: f.Message, RequestID: f.RequestID,
		GaveUp: GiveUpReason(f.Reason()), GaveUpDetail: f.GaveUp, Report: reportOf(f.Report), err: f}
	if s := f.Stream; s != nil {
		out.Stream = &StreamFailure{Events: s.Events, Text: s.Text, Resumes: s.Resumes, Frame: append([]byte(nil), s.Frame...)}
	}
	return out
}

// entries holds the public twin of every catalog entry, so that an entry
// converted twice is the same *Entry.
var entries = sync.OnceValue(func() map[*catalog.Entry]*Entry {
	m := map[*catalog.Entry]*Entry{}
	for _, c := range catalog.All() {
		m[c] = newEntry(c)
	}
	return m
})

// entryOf returns the public twin of c; nil for nil.
func entryOf(c *catalog.Entry) *Entry {
	if c == nil {
		return nil
	}
	if e, ok := entries()[c]; ok {
		return e
	}
	return newEntry(c) // built outside the table (a test's, a refinement's copy)
}

func newEntry(c *catalog.Entry) *Entry {
	return &Entry{Code: c.Code, Aliases: c.Aliases, Status: c.Status, Category: string(c.Category), Retry: string(c.Retry),
		Wait: c.Wait, Unhealthy: c.Unhealthy, FallbackOK: c.FallbackOK, Summary: c.Summary, Cause: c.Cause, Fix: c.Fix,
		Source: c.Source, c: c}
}

func quotaStatsOf(s admission.Stats) QuotaStats {
	out := QuotaStats{Target: targetOf(s.Target),
		Model: QuotaModel{Match: s.Model.Match, MaxOutputTokens: s.Model.MaxOutputTokens, Burndown: s.Model.Burndown},
		Limit: s.Limit, LimitSource: s.Source, Floor: s.Floor, Ceiling: s.Ceiling, Learning: s.Learning, Available: s.Available,
		RequestsPerMinute: s.RequestsPerMinute, PausedFor: s.PausedFor, InFlight: s.InFlight, InFlightTokens: s.InFlightTokens,
		ReservedPerMinute: s.ReservedPerMinute, SettledPerMinute: s.SettledPerMinute, OfferedPerMinute: s.OfferedPerMinute,
		InputRatio: s.InputRatio, Settled: s.Settled, Cancelled: s.Cancelled, Throttles: s.Throttles, Decreases: s.Decreases,
		Resyncs: s.Resyncs, Noise: s.Noise, ReplyTime: s.ReplyTime, LargeHold: s.LargeHold, TooLarge: s.TooLarge}
	for i, c := range s.Classes {
		out.Classes[i] = ClassStats{Queued: c.Queued, QueuedTokens: c.QueuedTokens, Admitted: c.Admitted, Waited: c.Waited,
			Expired: c.Expired, Shed: c.Shed, Cancelled: c.Cancelled, WaitTotal: c.WaitTotal, WaitMax: c.WaitMax}
	}
	return out
}

// enginePriority is p in the engine's terms.
func enginePriority(p Priority) engine.Priority {
	if p == Batch {
		return engine.Batch
	}
	return engine.Interactive
}
