package batch

import (
	"errors"
	"strings"
	"sync"

	"github.com/keel-run/keel/internal/catalog"
)

// stopAfter is how many records in a row may fail with the same error
// about their target (no such model, no access to it) before the run
// stops, and how many calls a run has in flight to a model until one of
// them has succeeded. A typo'd model id then costs five calls, not one per
// record; five records failing in a row for the same reason about a model
// that has answered nothing yet is no coincidence.
const stopAfter = 5

// ErrTargetFailing is returned (wrapped, with the code, the target and the
// service's message) when a run stopped because its records' target fails
// every call: the model id is wrong, or the account may not call it.
var ErrTargetFailing = errors.New("batch: stopped: every call to the target fails")

// targetFault reports whether a final failure is about the target (the
// model in a region, the account, the credentials) rather than the record:
// every record sent there would fail the same way.
func targetFault(e *catalog.Entry, message string) bool {
	switch e.Code {
	case catalog.CodeAccessDenied, catalog.CodeResourceNotFound, catalog.CodeGuideResourceNotFound, catalog.CodeFTUFormNotFilled,
		catalog.CodeUnrecognizedClient, catalog.CodeInvalidSignature, catalog.CodeIncompleteSignature, catalog.CodeExpiredToken,
		catalog.CodeMissingAuthenticationToken, catalog.CodeInvalidClientTokenID, catalog.CodeNotAuthorized, catalog.CodeRequestExpired,
		catalog.CodeCredentialsUnavailable, catalog.CodeMissingRegion,
		catalog.CodeMarketplaceAgreementFailed, catalog.CodeMarketplaceAgreementPending, catalog.CodeMPAgreementBeingCreated,
		catalog.CodeInvalidModelIdentifier:
		return true
	case catalog.CodeValidation, catalog.CodeValidationError:
		// "The provided model identifier is invalid.", "Invocation of model
		// ID ... with on-demand throughput isn't supported."
		m := strings.ToLower(message)
		return strings.Contains(m, "model identifier") || strings.Contains(m, "model id")
	}
	return false
}

// targetGuard holds back records that failed with a target fault until the
// target shows it works (a record to it succeeds, or fails for a reason of
// its own): then they are finished as failures. When stopAfter of them
// pile up for one model, that model is stopped: they are dropped, so they
// stay pending and run again on resume, and no more records are sent to it.
// Records to other models go on. It is safe for concurrent use.
type targetGuard struct {
	mu     sync.Mutex
	held   map[string][]func() // by model: how to finish each held record
	code   map[string]string   // by model: the code of the held records
	proven map[string]bool     // models that have answered a call
	stops  []*stopInfo         // stopped models, in the order they stopped
}

// stopInfo says why a model was stopped.
type stopInfo struct {
	model, code, target, message string
	dropped                      int // records sent to it and left pending by the stop
}

func newTargetGuard() *targetGuard {
	return &targetGuard{held: map[string][]func(){}, code: map[string]string{}, proven: map[string]bool{}}
}

func (g *targetGuard) stopOf(model string) *stopInfo {
	for _, si := range g.stops {
		if si.model == model {
			return si
		}
	}
	return nil
}

// fault holds a record that failed with a target fault; finish finishes it
// as failed. It reports whether model is stopped (the record is then left
// pending).
func (g *targetGuard) fault(model, target, code, message string, finish func()) (stopped bool) {
	g.mu.Lock()
	if si := g.stopOf(model); si != nil {
		si.dropped++
		g.mu.Unlock()
		return true
	}
	var flush []func()
	if g.code[model] != code {
		flush, g.held[model] = g.held[model], nil
		g.code[model] = code
	}
	g.held[model] = append(g.held[model], finish)
	if len(g.held[model]) >= stopAfter {
		g.stops = append(g.stops, &stopInfo{model: model, code: code, target: target, message: message, dropped: len(g.held[model])})
		delete(g.held, model)
		stopped = true
	}
	g.mu.Unlock()
	for _, f := range flush {
		f()
	}
	return stopped
}

// works says a record to model was answered (or failed for a reason of its
// own): the records held for it are finished as failures.
func (g *targetGuard) works(model string) {
	g.mu.Lock()
	g.proven[model] = true
	flush := g.held[model]
	delete(g.held, model)
	g.mu.Unlock()
	for _, f := range flush {
		f()
	}
}

// mayStart reports whether a record to model may be sent now, with
// inflight calls to it under way: not when the model is stopped, nor, until
// it has answered a call, when stopAfter records to it are in flight or
// held (if its id is wrong, that is all a run sends it).
func (g *targetGuard) mayStart(model string, inflight int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopOf(model) != nil {
		return false
	}
	return g.proven[model] || inflight+len(g.held[model]) < stopAfter
}

// flushAll finishes every held record, at the end of a run.
func (g *targetGuard) flushAll() {
	g.mu.Lock()
	var flush []func()
	for m, fs := range g.held {
		flush = append(flush, fs...)
		delete(g.held, m)
	}
	g.mu.Unlock()
	for _, f := range flush {
		f()
	}
}

// stopped returns the models stopped so far, in the order they stopped.
func (g *targetGuard) stopped() []stopInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]stopInfo, len(g.stops))
	for i, si := range g.stops {
		out[i] = *si
	}
	return out
}
