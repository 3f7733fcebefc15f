package quotas

import (
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/keel-run/keel/internal/bedrock"
)

// ServiceCode is Bedrock's service code in Service Quotas.
const ServiceCode = "bedrock"

// Kind is which of a model's quotas a quota name is.
type Kind int

// Kinds of per-model quota. The zero Kind is none.
const (
	None        Kind = iota
	OnDemand         // tokens per minute of the bare model id in one region
	CrossRegion      // tokens per minute through a geographic inference profile
	Global           // tokens per minute through the global inference profile
	PerDay           // tokens per day, however the model is called
)

func (k Kind) String() string {
	switch k {
	case OnDemand:
		return "on-demand"
	case CrossRegion:
		return "cross-region"
	case Global:
		return "global"
	case PerDay:
		return "per-day"
	}
	return "none"
}

// prefixes are the quota names' beginnings, longest first where one
// begins another ("global cross-region" before "cross-region").
var prefixes = []struct {
	kind   Kind
	prefix string // lower case, up to and including " for "
	name   string // as Bedrock spells it
}{
	{Global, "global cross-region invokemodel tokens per minute for ", "Global cross-Region InvokeModel tokens per minute for "},
	{CrossRegion, "cross-region invokemodel tokens per minute for ", "Cross-Region InvokeModel tokens per minute for "},
	{OnDemand, "on-demand invokemodel tokens per minute for ", "On-demand InvokeModel tokens per minute for "},
	{PerDay, "model invocation max tokens per day for ", "Model invocation max tokens per day for "},
}

// Name returns the quota name Bedrock gives the quota of kind for the
// model of display name model ("Anthropic Claude Sonnet 4.5"), or "" for
// None.
func Name(kind Kind, model string) string {
	for _, p := range prefixes {
		if p.kind == kind {
			return p.name + model
		}
	}
	return ""
}

// Parse splits a quota name into its kind and the model it names; kind is
// None for a quota that is not a per-model token quota (Cross-Model Max
// Tokens Per Day, batch quotas, ...). Case does not matter.
func Parse(name string) (kind Kind, model string) {
	lower := strings.ToLower(name)
	for _, p := range prefixes {
		if strings.HasPrefix(lower, p.prefix) {
			return p.kind, strings.TrimSpace(name[len(p.prefix):])
		}
	}
	return None, ""
}

// KindOf returns the tokens-per-minute quota a call naming id draws on:
// Global for a global inference profile, CrossRegion for a geographic one,
// OnDemand for a bare model id or a foundation-model ARN.
func KindOf(id string) Kind {
	if strings.HasPrefix(id, "arn:") {
		if !strings.Contains(id, ":inference-profile/") {
			return OnDemand
		}
		id = id[strings.LastIndexByte(id, '/')+1:]
	}
	base := bedrock.BaseModelID(id)
	switch {
	case base == id:
		return OnDemand
	case strings.HasPrefix(id, "global."):
		return Global
	}
	return CrossRegion
}

// DisplayName is the model name Bedrock's quota names use for the model
// id names ("Anthropic Claude Sonnet 4.5"), from keel's model table; ok is
// false for a model the table does not know.
func DisplayName(id string) (name string, ok bool) {
	m, ok := bedrock.LookupModel(id)
	if !ok {
		return "", false
	}
	return m.Provider + " " + m.Name, true
}

// Match reports whether the model part of a quota name (what Parse
// returns) names the model of id: its provider and display name, without
// case, with or without a trailing " V1".
func Match(quotaModel, id string) bool {
	m, ok := bedrock.LookupModel(id)
	if !ok {
		return false
	}
	q := strings.Join(strings.Fields(strings.ToLower(quotaModel)), " ")
	q = strings.TrimSuffix(q, " v1")
	full := strings.ToLower(m.Provider + " " + m.Name)
	return q == full || q == strings.ToLower(m.Name)
}

// Code returns a stable quota code for a quota name, shaped like Service
// Quotas' own ("L-" and eight hexadecimal digits), for an emulator that
// has no table of AWS's codes.
func Code(name string) string {
	h := fnv.New32a()
	h.Write([]byte(strings.ToLower(name)))
	s := strconv.FormatUint(uint64(h.Sum32()), 16)
	return "L-" + strings.ToUpper(strings.Repeat("0", 8-len(s))+s)
}
