// Package route turns a call's model into the ordered list of targets keel
// may try: the model itself, then the fallbacks its route names (the same
// model in other regions, cross-region inference profiles, alternate models).
//
// A target may name a service tier (priority, default, flex, reserved), so a
// route can move a call to another tier of the same model, and may serve
// calls of one priority class only (a Batch call throttled on the default
// tier going to flex, an Interactive one to priority).
//
// Converse takes one request shape for every model, so a Converse call may fall
// back to any target. InvokeModel carries the model's native body, so it only
// falls back to targets whose models take the same body format.
package route

import (
	"cmp"
	"slices"
	"strings"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/bedrock"
)

// Table maps a model to its route. The zero Table routes every model to
// itself alone. A Table is read-only once built and safe for concurrent use.
type Table struct {
	// DefaultRegion fills a target with no region.
	DefaultRegion string
	routes        map[string][]Step
}

// Step is one target of a route.
type Step struct {
	// Target is where the step sends the call. An empty Tier keeps the
	// call's own tier; bedrock.TierDefault asks for the default tier.
	attempt.Target
	// Class limits the step to calls of one priority class ("interactive"
	// or "batch"); empty serves every call.
	Class string
}

// Priority classes a Step may be limited to.
const (
	ClassInteractive = "interactive"
	ClassBatch       = "batch"
)

// New returns a table with the given routes; each key is a model id as callers
// name it, each value its targets in order. Targets with no region get
// defaultRegion.
func New(defaultRegion string, routes map[string][]attempt.Target) *Table {
	steps := make(map[string][]Step, len(routes))
	for m, ts := range routes {
		for _, x := range ts {
			steps[m] = append(steps[m], Step{Target: x})
		}
	}
	return NewSteps(defaultRegion, steps)
}

// NewSteps is New for routes whose steps may name a priority class.
func NewSteps(defaultRegion string, routes map[string][]Step) *Table {
	t := &Table{DefaultRegion: defaultRegion, routes: make(map[string][]Step, len(routes))}
	for m, ts := range routes {
		out := make([]Step, 0, len(ts))
		for _, x := range ts {
			x.Region = cmp.Or(x.Region, defaultRegion)
			out = append(out, x)
		}
		t.routes[m] = out
	}
	return t
}

// Targets returns the targets for a call of op to model in region (empty:
// the default region), in the order to try them. The call's own target always
// comes first; fallbacks that cannot take the call's body are left out.
func (t *Table) Targets(op attempt.Op, model, region string) []attempt.Target {
	return t.TargetsFor(op, model, region, "", "")
}

// TargetsFor is Targets for a call on a service tier ("" for none named)
// of a priority class (ClassInteractive, ClassBatch): steps limited to
// another class are left out, and a step naming no tier keeps the call's.
// A target's Tier is "" for the default tier, however it was named.
func (t *Table) TargetsFor(op attempt.Op, model, region, tier, class string) []attempt.Target {
	region = cmp.Or(region, t.DefaultRegion)
	tier = ownTier(tier)
	counting := op == attempt.CountTokens // counting tokens is served on no tier
	if counting {
		tier = ""
	}
	first := attempt.Target{Model: model, Region: region, Tier: tier}
	rt := t.routes[model]
	if len(rt) == 0 {
		return []attempt.Target{first}
	}
	out := make([]attempt.Target, 0, len(rt)+1)
	out = append(out, first)
	native := op == attempt.Invoke || op == attempt.InvokeWithResponseStream || op == attempt.CountTokens
	format := BodyFormat(model)
	for _, s := range rt {
		if s.Class != "" && s.Class != class {
			continue
		}
		x := s.Target
		x.Tier = ownTier(cmp.Or(x.Tier, tier))
		if counting {
			x.Tier = ""
		}
		if slices.Contains(out, x) {
			continue
		}
		if native && (format == "" || BodyFormat(x.Model) != format) {
			continue
		}
		out = append(out, x)
	}
	return out
}

// ownTier is the Target.Tier of a tier as named: "" for the default tier,
// which Bedrock serves a call that names none on.
func ownTier(tier string) string {
	if tier == bedrock.TierDefault {
		return ""
	}
	return tier
}

// BodyFormat names the native request format InvokeModel expects for model
// ("anthropic", "nova", "llama", "titan-text", "mistral", "cohere", "ai21"),
// or "" when it cannot tell. Inference profile prefixes (us., eu., apac.,
// global., ...) and inference-profile ARNs are seen through.
func BodyFormat(model string) string {
	m := bedrock.BaseModelID(model)
	switch {
	case strings.HasPrefix(m, "anthropic."):
		return "anthropic"
	case strings.HasPrefix(m, "amazon.nova"):
		return "nova"
	case strings.HasPrefix(m, "amazon.titan-text"), strings.HasPrefix(m, "amazon.titan-tg1"):
		return "titan-text"
	case strings.HasPrefix(m, "meta.llama"):
		return "llama"
	case strings.HasPrefix(m, "mistral."):
		return "mistral"
	case strings.HasPrefix(m, "cohere.command"):
		return "cohere"
	case strings.HasPrefix(m, "ai21."):
		return "ai21"
	}
	return ""
}
