// Package keelx gives keel's own commands (batch, dlq, the benches) what
// package keel holds behind its public API (the engine of a *keel.Keel,
// the engine's account carried by a *keel.Error), so that package keel's
// API holds no internal type. Package keel registers the hooks when it is
// initialised; nothing else should call Register.
package keelx

import (
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/redisx"
)

// Hooks are what package keel registers.
type Hooks struct {
	// Engine returns the engine of k, a *keel.Keel.
	Engine func(k any) *engine.Engine
	// Details returns the catalog entry and report carried by a *keel.Error
	// in err's chain; ok is false when there is none.
	Details func(err error) (entry *catalog.Entry, report *engine.Report, ok bool)
	// Shared returns the Redis connection of k, a *keel.Keel; nil when
	// its Options name no Redis.
	Shared func(k any) *redisx.Client
}

var hooks Hooks

// Register installs h. Package keel calls it once, from its init.
func Register(h Hooks) { hooks = h }

// Engine returns the engine of k, a *keel.Keel: its Do runs an
// engine.Call through the same retries, breakers, budget and quota
// governor as the SDK clients k is plugged into. It panics when k is not a
// *keel.Keel, or when package keel is not linked in (a programming error).
func Engine(k any) *engine.Engine {
	if hooks.Engine == nil {
		panic("keelx: package keel is not linked in")
	}
	return hooks.Engine(k)
}

// Details returns the catalog entry and the report of the call that a
// *keel.Error (the error of an SDK client keel is plugged into) in err's
// chain carries. ok is false when err holds none, or when package keel is
// not linked in (then no *keel.Error can exist).
func Details(err error) (entry *catalog.Entry, report *engine.Report, ok bool) {
	if hooks.Details == nil {
		return nil, nil, false
	}
	return hooks.Details(err)
}

// Shared returns the Redis connection of k, a *keel.Keel, or nil.
func Shared(k any) *redisx.Client {
	if hooks.Shared == nil {
		return nil
	}
	return hooks.Shared(k)
}
