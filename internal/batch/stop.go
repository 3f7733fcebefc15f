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
		catalog.CodeMarketplaceAgreementFailed, catalog.CodeMarketplaceAgreementPending, catalog.CodeMPAgreementBeingCreated:
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
// pile up for one model, the run stops and they are dropped, so they stay
// pending and run again on resume. It is safe for concurrent use.
type targetGuard struct {
	mu      sync.Mutex
	held    map[string][]func() // by model: how to finish each held record
	code    map[string]string   // by model: the code of the held records
	proven  map[string]bool     // models that have answered a call
	stop    *stopInfo
	dropped int // records left pending by the stop
}

type stopInfo struct {
	code, target, message string
}

func newTargetGuard() *targetGuard {
	return &targetGuard{held: map[string][]func(){}, code: map[string]string{}, proven: map[string]bool{}}
}

// fault holds a record that failed with a target fault; finish finishes it
// as failed. It reports whether the run must stop (the record is then left
// pending).
func (g *targetGuard) fault(model, target, code, message string, finish func()) (stop bool) {
	g.mu.Lock()
	if g.stop != nil {
		g.dropped++
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
		g.stop = &stopInfo{code: code, target: target, message: message}
		g.dropped += len(g.held[model])
		g.held[model] = nil
		stop = true
	}
	g.mu.Unlock()
	for _, f := range flush {
		f()
	}
	return stop
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

// isProven reports whether a call to model has been answered.
func (g *targetGuard) isProven(model string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.proven[model]
}

// heldFor is how many records are held for model.
func (g *targetGuard) heldFor(model string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.held[model])
}

// flushAll finishes every held record, at the end of a run that did not stop.
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

// stopped returns why the run stopped, and how many records it left
// pending that had been sent; nil when it did not.
func (g *targetGuard) stopped() (*stopInfo, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stop, g.dropped
}
