package bedrock

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Anthropic Messages API versions an InvokeModel body can name in its
// anthropic_version field.
const (
	// AnthropicVersionBedrock is the version every Claude model on Bedrock
	// takes.
	AnthropicVersionBedrock = "bedrock-2023-05-31"
	// AnthropicVersion20261021 is the Messages API version of October 2026,
	// which the Anthropic SDKs send from their 2026 majors on; Bedrock takes
	// it on Claude 4.7 and later. It removes temperature, top_p and top_k.
	AnthropicVersion20261021 = "2026-10-21"
)

// AnthropicVersions lists every anthropic_version value some model takes,
// oldest first.
func AnthropicVersions() []string {
	return []string{AnthropicVersionBedrock, AnthropicVersion20261021}
}

// Service tiers a model can be invoked on (Converse serviceTier.type, the
// X-Amzn-Bedrock-Service-Tier header).
const (
	TierDefault  = "default"
	TierPriority = "priority"
	TierFlex     = "flex"
	TierReserved = "reserved"
)

// Tiers lists the service tiers Bedrock knows, in the order its API
// reference lists them.
func Tiers() []string { return []string{TierPriority, TierDefault, TierFlex, TierReserved} }

// ValidTier reports whether t is a service tier Bedrock knows.
func ValidTier(t string) bool {
	return t == TierDefault || t == TierPriority || t == TierFlex || t == TierReserved
}

// ModelInfo is one row of the model table: what keel and its emulator know
// about a foundation model Bedrock serves. The table is models.json in this
// package, the one place these facts are written down; docs/emulator.md
// cites where each came from.
type ModelInfo struct {
	// ID is the foundation model id: dated and versioned before Claude 4.6
	// ("anthropic.claude-sonnet-4-5-20250929-v1:0"), undated after
	// ("anthropic.claude-sonnet-4-6").
	ID string `json:"id"`
	// Name and Provider are the display names ListFoundationModels reports.
	Name     string `json:"name"`
	Provider string `json:"provider"`
	// Format is the InvokeModel body format: "anthropic", "nova", "llama"
	// or "titan".
	Format string `json:"format"`
	// Profiles lists the geographies of the cross-region inference profiles
	// that serve the model ("us", "eu", "apac", "jp", "au", "global"); the
	// profile id is the geography, a dot and ID.
	Profiles []string `json:"profiles,omitempty"`
	// ProfileOnly reports that on-demand calls must go through an inference
	// profile: the bare ID is refused.
	ProfileOnly bool `json:"profileOnly,omitempty"`
	// ContextWindow is the most input tokens a request may carry.
	ContextWindow int `json:"contextWindow"`
	// MaxOutput is the largest output a request may ask for, and what
	// Bedrock reserves against the quota when a request sets none.
	MaxOutput int `json:"maxOutput"`
	// Burndown is how many quota tokens one output token costs.
	Burndown float64 `json:"burndown"`
	// Prefill reports that the model continues a conversation ending in a
	// partial assistant message. Claude 4.6 and later refuse one.
	Prefill bool `json:"prefill,omitempty"`
	// AnthropicVersions lists the anthropic_version values an InvokeModel
	// body may name; empty for models of other formats.
	AnthropicVersions []string `json:"anthropicVersions,omitempty"`
	// ServiceTiers lists the service tiers the model can be invoked on.
	ServiceTiers []string `json:"serviceTiers"`
	// Images reports that the model reads images.
	Images bool `json:"images,omitempty"`
	// PromptCacheMin is the fewest tokens a cached prefix needs; zero means
	// the model has no prompt caching.
	PromptCacheMin int `json:"promptCacheMin,omitempty"`
	// TTFTMillis and TokensPerSecond are rough public ballparks of latency
	// and speed, for the emulator's simulated timing; not measurements.
	TTFTMillis      int     `json:"ttftMs"`
	TokensPerSecond float64 `json:"tokensPerSecond"`
}

// AcceptsVersion reports whether an InvokeModel body for the model may name
// the anthropic_version v.
func (m *ModelInfo) AcceptsVersion(v string) bool { return slices.Contains(m.AnthropicVersions, v) }

// RefusesPrefill reports whether the model refuses a conversation that
// ends in an assistant message: an Anthropic model that takes no prefill
// (Claude 4.6 and later). Models of other formats without Prefill are not
// known to continue one, which is not the same as refusing it.
func (m *ModelInfo) RefusesPrefill() bool { return m.Format == "anthropic" && !m.Prefill }

// SupportsTier reports whether the model can be invoked on the service tier.
func (m *ModelInfo) SupportsTier(tier string) bool { return slices.Contains(m.ServiceTiers, tier) }

//go:embed models.json
var modelsJSON []byte

var (
	modelTable = mustParseModels(modelsJSON)
	modelIndex = indexModels(modelTable)
)

// Models returns the model table in its file order: a copy the caller may
// modify.
func Models() []ModelInfo {
	out := make([]ModelInfo, len(modelTable))
	for i, m := range modelTable {
		m.Profiles = slices.Clone(m.Profiles)
		m.AnthropicVersions = slices.Clone(m.AnthropicVersions)
		m.ServiceTiers = slices.Clone(m.ServiceTiers)
		out[i] = m
	}
	return out
}

// LookupModel returns the table's row for id, which may be a foundation
// model id, an inference profile id or the ARN of either; false when the
// table has no such model. The returned row must not be modified.
func LookupModel(id string) (*ModelInfo, bool) {
	i, ok := modelIndex[BaseModelID(id)]
	if !ok {
		return nil, false
	}
	return &modelTable[i], true
}

func mustParseModels(data []byte) []ModelInfo {
	ms, err := ParseModels(data)
	if err != nil {
		panic(err)
	}
	return ms
}

func indexModels(ms []ModelInfo) map[string]int {
	index := make(map[string]int, len(ms))
	for i, m := range ms {
		index[m.ID] = i
	}
	return index
}

// profileGeos are the inference profile geographies a table row may list.
var profileGeos = []string{"us", "eu", "apac", "jp", "au", "ca", "us-gov", "global"}

// formats are the InvokeModel body formats a table row may name.
var formats = []string{"anthropic", "nova", "llama", "titan"}

// ParseModels reads a model table in the models.json layout
// ({"models": [...]}), rejecting unknown keys, and checks every row. It is
// exported so a test (or a tool) can check an edited table.
func ParseModels(data []byte) ([]ModelInfo, error) {
	var file struct {
		Comment string      `json:"_comment"`
		Models  []ModelInfo `json:"models"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("bedrock: model table: %w", err)
	}
	if len(file.Models) == 0 {
		return nil, fmt.Errorf("bedrock: model table: no models")
	}
	seen := make(map[string]bool, len(file.Models))
	for i := range file.Models {
		if err := checkModel(&file.Models[i]); err != nil {
			return nil, fmt.Errorf("bedrock: model table: row %d (%q): %w", i, file.Models[i].ID, err)
		}
		id := file.Models[i].ID
		if seen[id] {
			return nil, fmt.Errorf("bedrock: model table: row %d: %q is listed twice", i, id)
		}
		seen[id] = true
	}
	return file.Models, nil
}

func checkModel(m *ModelInfo) error {
	switch {
	case m.ID == "" || strings.ContainsAny(m.ID, "/ \t\n") || BaseModelID(m.ID) != m.ID:
		return fmt.Errorf("id must be a foundation model id (provider.name), without spaces, slashes or a profile prefix")
	case m.Name == "" || m.Provider == "":
		return fmt.Errorf("name and provider must be set")
	case !slices.Contains(formats, m.Format):
		return fmt.Errorf("format %q is not one of %s", m.Format, strings.Join(formats, ", "))
	case m.ContextWindow <= 0 || m.MaxOutput <= 0:
		return fmt.Errorf("contextWindow %d and maxOutput %d must be positive", m.ContextWindow, m.MaxOutput)
	case !(m.Burndown >= 1):
		return fmt.Errorf("burndown %v must be at least 1", m.Burndown)
	case m.PromptCacheMin < 0 || m.TTFTMillis < 0 || !(m.TokensPerSecond >= 0):
		return fmt.Errorf("promptCacheMin, ttftMs and tokensPerSecond must not be negative")
	case m.ProfileOnly && len(m.Profiles) == 0:
		return fmt.Errorf("profileOnly is set but profiles is empty, so nothing could invoke it")
	case len(m.ServiceTiers) == 0 || !slices.Contains(m.ServiceTiers, TierDefault):
		return fmt.Errorf("serviceTiers must include %q", TierDefault)
	case (m.Format == "anthropic") != (len(m.AnthropicVersions) > 0):
		return fmt.Errorf("anthropicVersions must be set for the anthropic format, and only for it")
	}
	for _, g := range m.Profiles {
		if !slices.Contains(profileGeos, g) {
			return fmt.Errorf("profile geography %q is not one of %s", g, strings.Join(profileGeos, ", "))
		}
	}
	for _, v := range m.AnthropicVersions {
		if !slices.Contains(AnthropicVersions(), v) {
			return fmt.Errorf("anthropic version %q is not one of %s", v, strings.Join(AnthropicVersions(), ", "))
		}
	}
	for _, t := range m.ServiceTiers {
		if !ValidTier(t) {
			return fmt.Errorf("service tier %q is not one of default, priority, flex, reserved", t)
		}
	}
	return nil
}
