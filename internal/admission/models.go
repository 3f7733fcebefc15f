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

// Built-in model facts, most specific first: the first entry whose Match is
// in the id wins. The output limits are the published ones (and the ones the
// emulator serves); Options.Models adds or overrides entries.
var builtinModels = []Model{
	// Burndown 5: Claude 3.7 Sonnet, Sonnet 4 and 4.5, Opus 4 and its point releases.
	{Match: "claude-3-7-sonnet", MaxOutputTokens: 64000, Burndown: 5},
	{Match: "claude-sonnet-4", MaxOutputTokens: 64000, Burndown: 5},
	{Match: "claude-opus-4-5", MaxOutputTokens: 64000, Burndown: 5},
	{Match: "claude-opus-4", MaxOutputTokens: 32000, Burndown: 5},

	{Match: "claude-haiku-4-5", MaxOutputTokens: 64000, Burndown: 1},
	{Match: "claude-3-5-haiku", MaxOutputTokens: 8192, Burndown: 1},
	{Match: "claude-3-5-sonnet", MaxOutputTokens: 8192, Burndown: 1},
	{Match: "claude-3-haiku", MaxOutputTokens: 4096, Burndown: 1},
	{Match: "claude-3-sonnet", MaxOutputTokens: 4096, Burndown: 1},
	{Match: "claude-3-opus", MaxOutputTokens: 4096, Burndown: 1},
	{Match: "claude", MaxOutputTokens: 4096, Burndown: 1}, // Claude 2, Instant

	{Match: "nova-premier", MaxOutputTokens: 32000, Burndown: 1},
	{Match: "nova", MaxOutputTokens: 5000, Burndown: 1},
	{Match: "llama", MaxOutputTokens: 2048, Burndown: 1},
	{Match: "titan-text-express", MaxOutputTokens: 8192, Burndown: 1},
	{Match: "titan-text-lite", MaxOutputTokens: 4096, Burndown: 1},
	{Match: "titan-text-premier", MaxOutputTokens: 3072, Burndown: 1},
	{Match: "mistral", MaxOutputTokens: 8192, Burndown: 1},
	{Match: "deepseek", MaxOutputTokens: 32768, Burndown: 1},
}

// unknownModel is used for a model no entry matches. Its output limit errs
// high: holding too much for a while costs a little throughput until the
// request settles, holding too little gets it throttled.
var unknownModel = Model{MaxOutputTokens: 8192, Burndown: 1}

func lookupModel(extra []Model, id string) (Model, bool) {
	base := bedrock.BaseModelID(id)
	for _, list := range [2][]Model{extra, builtinModels} {
		for _, m := range list {
			if strings.Contains(base, m.Match) {
				return m, true
			}
		}
	}
	return unknownModel, false
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
