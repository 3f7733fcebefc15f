// Package route turns a call's model into the ordered list of targets keel
// may try: the model itself, then the fallbacks its route names (the same
// model in other regions, cross-region inference profiles, alternate models).
//
// Converse takes one request shape for every model, so a Converse call may fall
// back to any target. InvokeModel carries the model's native body, so it only
// falls back to targets whose models take the same body format.
package route

import (
	"cmp"
	"strings"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/bedrock"
)

// Table maps a model to its route. The zero Table routes every model to
// itself alone. A Table is read-only once built and safe for concurrent use.
type Table struct {
	// DefaultRegion fills a target with no region.
	DefaultRegion string
	routes        map[string][]attempt.Target
}

// New returns a table with the given routes; each key is a model id as callers
// name it, each value its targets in order. Targets with no region get
// defaultRegion.
func New(defaultRegion string, routes map[string][]attempt.Target) *Table {
	t := &Table{DefaultRegion: defaultRegion, routes: make(map[string][]attempt.Target, len(routes))}
	for m, ts := range routes {
		out := make([]attempt.Target, 0, len(ts))
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
	region = cmp.Or(region, t.DefaultRegion)
	first := attempt.Target{Model: model, Region: region}
	rt := t.routes[model]
	if len(rt) == 0 {
		return []attempt.Target{first}
	}
	out := make([]attempt.Target, 0, len(rt)+1)
	out = append(out, first)
	native := op == attempt.Invoke || op == attempt.InvokeWithResponseStream || op == attempt.CountTokens
	format := BodyFormat(model)
	for _, x := range rt {
		if x == first {
			continue
		}
		if native && (format == "" || BodyFormat(x.Model) != format) {
			continue
		}
		out = append(out, x)
	}
	return out
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
