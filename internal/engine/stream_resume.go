package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/retry"
	"github.com/keel-run/keel/internal/stream"
)

// This file resumes a stream that broke after its first content: the
// continuation is sent under the same policies as any retry.

// broke handles a failure after the stream's first content: resume when
// the policies allow, else end with the typed error.
func (sb *streamBody) broke(res classify.Result, cause error) {
	src := sb.src
	src.close()
	a := &sb.rep.Attempts[src.ai]
	a.Code = res.Entry.Code
	sb.e.noteError(a.Target, a.Code)
	sb.e.logBreak(sb.ctx, sb.call, a, res)
	cont := sb.sp.Break()
	if src.tk.Governed() {
		// Settle now, before a continuation is admitted: Bedrock charged
		// what the attempt produced (its input, if its stream told it;
		// else the governor charges its estimate).
		if segs := sb.sp.Segments(); len(segs) > 0 {
			src.tk.Settle(admissionUsage(usageOf(segs[len(segs)-1])))
		}
	}
	frame := append([]byte(nil), sb.frame...)
	gaveUp := ""
	switch {
	case sb.ctx.Err() != nil:
	case !res.Entry.Retryable():
	case sb.mode == "":
		gaveUp = "not resumed: " + sb.noResume
	case !cont.OK:
		gaveUp = "not resumed: " + cont.Why
	case sb.resumes >= sb.e.opts.Streaming.maxResumes():
		gaveUp = fmt.Sprintf("not resumed: the limit of %d resumes was reached", sb.e.opts.Streaming.maxResumes())
	default:
		why := sb.resumeWith(res, cont)
		if why == "" {
			return
		}
		gaveUp = "not resumed: " + why
		if err := sb.ctx.Err(); err != nil {
			// The caller ended the call while keel waited to resume: the
			// reader's error says so as well as what broke the stream.
			cause = errors.Join(cause, err)
		}
	}
	sb.fail(res, cause, gaveUp, frame)
}

// resumeWith sends the continuation of the broken reply, under the same
// policies as any retry: the retry policy's backoff, the budget, the
// breakers and the route. It returns "" once the continuation's first
// content is there, or why it could not be had.
func (sb *streamBody) resumeWith(res classify.Result, cont stream.Continuation) string {
	e := sb.e
	d := e.opts.Retry.Decide(sb.resumes+1, res.Entry, res.RetryAfter, e.opts.Rand)
	if !d.Retry {
		return "the retry policy allows no further attempt (" + d.Reason + ")"
	}
	// Always from the caller's body: the prefill is the whole text so far,
	// not what the last continuation added.
	cont.Mode = sb.mode
	body, err := stream.Continue(sb.format, sb.call.Body, cont)
	if errors.Is(err, stream.ErrLimitReached) {
		return "the reply had produced its whole output limit"
	} else if err != nil {
		return err.Error()
	}
	if e.spend(sb.ctx, sb.call, sb.rep.Target, sb.resumes+1, nil) != nil {
		return "the retry budget is exhausted"
	}
	if err := retry.Wait(sb.ctx, e.clk, d.Delay, nil); err != nil {
		if errors.Is(err, retry.ErrDeadline) {
			return "the next wait would cross the deadline"
		}
		return "the context ended while waiting to resume"
	}
	sb.resumes++
	sb.rep.Resumes++
	sb.round, sb.prefill = sb.mode, cont.Tokens
	if sb.mode == stream.ContinueTurn {
		sb.prefill += stream.ContinuePromptTokens
	}
	_, err = e.do(sb.ctx, sb.call, sb.rep, sb, round{body: body, resume: true, delay: d.Delay})
	if err != nil {
		var ke *Error
		if errors.As(err, &ke) && ke.Entry != nil {
			// WireCode: the catalog names this refusal PrefillUnsupported, a
			// refinement of ValidationException.
			if ke.Entry.WireCode() == catalog.CodeValidation && strings.Contains(strings.ToLower(ke.Message), "prefill") {
				e.noPrefill.Store(sb.call.Model, true)
			}
			return "the continuation failed with " + ke.Entry.Code
		}
		return "the continuation failed: " + err.Error()
	}
	return ""
}

// logBreak writes one line when a stream breaks after its first content.
func (e *Engine) logBreak(ctx context.Context, call *Call, a *Attempt, res classify.Result) {
	if e.log == nil || !e.log.Enabled(ctx, slog.LevelWarn) {
		return
	}
	e.log.LogAttrs(ctx, slog.LevelWarn, "stream broke", slog.String("op", string(call.Op)), slog.String("model", a.Target.Model),
		slog.String("region", a.Target.Region), slog.String("requestId", a.RequestID), slog.Int("events", a.Events),
		slog.String("code", res.Entry.Code), slog.String("category", string(res.Entry.Category)), slog.String("retry", string(res.Entry.Retry)))
}

// logStream writes one line when a stream ends.
func (e *Engine) logStream(ctx context.Context, call *Call, rep *Report, err error) {
	if e.log == nil {
		return
	}
	level := slog.LevelInfo
	outcome := "ok"
	var ke *Error
	if errors.As(err, &ke) && ke.Entry != nil {
		level, outcome = slog.LevelError, ke.Entry.Code
	}
	if !e.log.Enabled(ctx, level) {
		return
	}
	events := 0
	for _, a := range rep.Attempts {
		events += a.Events
	}
	e.log.LogAttrs(ctx, level, "stream", slog.String("op", string(call.Op)), slog.String("model", call.Model), slog.String("outcome", outcome),
		slog.Int("events", events), slog.Int("resumes", rep.Resumes), slog.Int("attempts", rep.Sent()),
		slog.Int("inputTokens", rep.Usage.InputTokens), slog.Int("outputTokens", rep.Usage.OutputTokens),
		slog.Bool("usageEstimated", rep.Usage.Estimated), slog.Int64("totalMs", rep.Total.Milliseconds()))
}
