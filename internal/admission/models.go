package admission

import (
	"fmt"
	"strings"

	"github.com/keel-run/keel/internal/bedrock"
)

// Model holds the facts the governor needs about a model family: how many
// output tokens Bedrock reserves when a request sets no maximum, and how many
// quota tokens one output token costs.
type Model struct {
	// Match is a substring of the model id, looked for after an ARN's
	// resource prefix and an inference profile's geography prefix are
	// removed: "claude-sonnet-4" matches
	// "us.anthropic.claude-sonnet-4-5-20250929-v1:0".
	Match string
	// MaxOutputTokens is the model's largest output, which Bedrock reserves
	// for a request that sets no max tokens.
	MaxOutputTokens int
	// Burndown is the number of quota tokens one output token costs: 5 for
	// the Claude models Bedrock meters that way, 1 for the others.
	Burndown float64
}

// familyModels are the facts for models keel's model table
// (internal/bedrock/models.json) does not list, by family, most specific
// first: the first entry whose Match is in the id wins. A newer Claude
// Sonnet or Opus is given the largest output and burndown of its family, so
// it is never under-reserved.
var familyModels = []Model{
	{Match: "claude-opus", MaxOutputTokens: 128000, Burndown: 5},
	{Match: "claude-sonnet", MaxOutputTokens: 128000, Burndown: 5},
	{Match: "claude-haiku", MaxOutputTokens: 64000, Burndown: 1},
	{Match: "claude", MaxOutputTokens: 4096, Burndown: 1}, // Claude 2, Instant

	{Match: "nova-premier", MaxOutputTokens: 32000, Burndown: 1},
	{Match: "nova", MaxOutputTokens: 5000, Burndown: 1},
	{Match: "llama", MaxOutputTokens: 2048, Burndown: 1},
	{Match: "mistral", MaxOutputTokens: 8192, Burndown: 1},
	{Match: "deepseek", MaxOutputTokens: 32768, Burndown: 1},
}

// unknownModel is used for a model no entry matches. Its output limit errs
// high: holding too much for a while costs a little throughput until the
// request settles, holding too little gets it throttled.
var unknownModel = Model{MaxOutputTokens: 8192, Burndown: 1}

// lookupModel finds the facts for a model id: Options.Models first, then
// keel's model table, then the family rules.
func lookupModel(extra []Model, id string) (Model, bool) {
	base := bedrock.BaseModelID(id)
	if m, ok := matchModel(extra, base); ok {
		return m, true
	}
	if row, ok := bedrock.LookupModel(base); ok {
		return Model{Match: row.ID, MaxOutputTokens: row.MaxOutput, Burndown: row.Burndown}, true
	}
	if m, ok := matchModel(familyModels, base); ok {
		return m, true
	}
	return unknownModel, false
}

// matchModel returns the first entry of list whose Match is in base.
func matchModel(list []Model, base string) (Model, bool) {
	for _, m := range list {
		if strings.Contains(base, m.Match) {
			return m, true
		}
	}
	return Model{}, false
}

// validateModels reports the first unusable entry of Options.Models.
func validateModels(ms []Model) error {
	for i, m := range ms {
		switch {
		case m.Match == "":
			return fmt.Errorf("admission: Models[%d]: Match is empty, so it would match every model", i)
		case m.MaxOutputTokens <= 0:
			return fmt.Errorf("admission: Models[%d] (%q): MaxOutputTokens %d must be positive", i, m.Match, m.MaxOutputTokens)
		case !(m.Burndown >= 1):
			return fmt.Errorf("admission: Models[%d] (%q): Burndown %v must be at least 1", i, m.Match, m.Burndown)
		}
	}
	return nil
}

// Model returns the facts the Governor uses for the model id (a profile id
// or an ARN too): Options.Models first, then keel's model table, then the
// model families, then cautious figures for a model none of them knows.
// A nil Governor uses no Options.Models.
func (g *Governor) Model(id string) Model {
	var extra []Model
	if g != nil {
		extra = g.opts.Models
	}
	m, _ := lookupModel(extra, id)
	return m
}
