package emulator

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/bedrock"
)

// Body formats of InvokeModel and InvokeModelWithResponseStream: the JSON a
// model family reads and writes in the request and response bodies.
const (
	// FormatAnthropic is the Anthropic Messages API body (anthropic_version
	// "bedrock-2023-05-31", max_tokens, messages, system, stop_sequences).
	FormatAnthropic = "anthropic"
	// FormatNova is the Amazon Nova messages body (schemaVersion
	// "messages-v1", messages, system, inferenceConfig).
	FormatNova = "nova"
	// FormatLlama is the Meta Llama body (prompt, max_gen_len).
	FormatLlama = "llama"
	// FormatTitan is the Amazon Titan Text body (inputText, textGenerationConfig).
	FormatTitan = "titan"
)

// Inference profile geographies: a cross-region inference profile id is one
// of these, a dot, and the foundation model id
// ("us.anthropic.claude-sonnet-4-5-20250929-v1:0").
const (
	GeoUS     = "us"
	GeoEU     = "eu"
	GeoAPAC   = "apac"
	GeoJP     = "jp"     // Japanese regions only
	GeoAU     = "au"     // Australian regions only
	GeoGlobal = "global" // callable from any region
)

// geos lists the geographies a Model's Profiles may name.
var geos = []string{GeoUS, GeoEU, GeoAPAC, GeoJP, GeoAU, GeoGlobal}

// Model is one foundation model the emulator serves.
type Model struct {
	// ID is the foundation model id, such as "anthropic.claude-sonnet-4-5-20250929-v1:0".
	ID string
	// Name and Provider are what ListFoundationModels reports ("Claude
	// Sonnet 4.5", "Anthropic").
	Name, Provider string
	// Format is the InvokeModel body format: FormatAnthropic, FormatNova,
	// FormatLlama or FormatTitan.
	Format string
	// MaxOutputTokens is the largest maxTokens a request may ask for, and the
	// limit applied when a Converse request sets none.
	MaxOutputTokens int
	// ContextWindow is the most input tokens a request may carry.
	ContextWindow int
	// Burndown is how many quota tokens one output token costs (5 for the
	// Claude models Bedrock meters that way, else 1). It is passed to the
	// Settle hook; the emulator itself does not meter.
	Burndown float64
	// TimeToFirstToken and TokensPerSecond drive the simulated latency, scaled
	// by Options.Speed.
	TimeToFirstToken time.Duration
	TokensPerSecond  float64
	// Profiles lists the geographies (GeoUS, GeoEU, GeoAPAC, GeoJP, GeoAU,
	// GeoGlobal) that have a cross-region inference profile for this model.
	Profiles []string
	// ProfileOnly reports that the model can only be invoked through an
	// inference profile: invoking the bare ID fails with the
	// ValidationException Bedrock sends for on-demand throughput.
	ProfileOnly bool
	// Images reports that the model reads images (for ListFoundationModels).
	Images bool
	// PromptCacheMin is the fewest tokens a prefix needs to be cached when
	// a request marks a cache point (Converse cachePoint, Anthropic
	// cache_control); zero means the model has no prompt caching.
	PromptCacheMin int
	// NoPrefill reports that the model refuses a conversation ending in an
	// assistant message (Claude 4.6 and later), as Bedrock does with a
	// ValidationException.
	NoPrefill bool
	// AnthropicVersions lists the anthropic_version values an InvokeModel
	// body may name (FormatAnthropic only); nil means
	// bedrock-2023-05-31 alone.
	AnthropicVersions []string
	// ServiceTiers lists the service tiers a request may name; nil means the
	// default tier alone. A request naming another tier is refused with a
	// ValidationException.
	ServiceTiers []string
	// NoBatch reports that the model does not take batch inference jobs:
	// CreateModelInvocationJob naming it is refused with a
	// ValidationException.
	NoBatch bool
}

// DefaultModels returns the built-in model list, read from keel's model
// table (internal/bedrock/models.json): a copy the caller may modify.
// Context windows and output limits are the published ones; latency
// figures are rough public ballparks, there to make timing realistic, not
// measurements.
func DefaultModels() []Model {
	table := bedrock.Models()
	out := make([]Model, len(table))
	for i, m := range table {
		out[i] = Model{ID: m.ID, Name: m.Name, Provider: m.Provider, Format: m.Format,
			MaxOutputTokens: m.MaxOutput, ContextWindow: m.ContextWindow, Burndown: m.Burndown,
			TimeToFirstToken: time.Duration(m.TTFTMillis) * time.Millisecond, TokensPerSecond: m.TokensPerSecond,
			Profiles: m.Profiles, ProfileOnly: m.ProfileOnly, Images: m.Images, PromptCacheMin: m.PromptCacheMin,
			NoPrefill: !m.Prefill && m.Format == FormatAnthropic, AnthropicVersions: m.AnthropicVersions,
			ServiceTiers: m.ServiceTiers}
	}
	return out
}

// target is what a model id in a request resolves to.
type target struct {
	model   *Model
	profile string // the inference profile's geography; "" for the bare model
}

// checkModels validates a model list and indexes it by every id that can
// name a model: the bare id and each inference profile id.
func checkModels(models []Model) (map[string]target, error) {
	index := make(map[string]target, len(models)*4)
	for i := range models {
		m := &models[i]
		where := fmt.Sprintf("emulator: model %d (%q)", i, m.ID)
		switch {
		case m.ID == "" || strings.ContainsAny(m.ID, "/ \t\n"):
			return nil, fmt.Errorf("%s: ID must be a non-empty model id without spaces or slashes", where)
		case m.Format != FormatAnthropic && m.Format != FormatNova && m.Format != FormatLlama && m.Format != FormatTitan:
			return nil, fmt.Errorf("%s: Format %q is not one of anthropic, nova, llama, titan", where, m.Format)
		case m.MaxOutputTokens <= 0:
			return nil, fmt.Errorf("%s: MaxOutputTokens %d must be positive", where, m.MaxOutputTokens)
		case m.ContextWindow <= 0:
			return nil, fmt.Errorf("%s: ContextWindow %d must be positive", where, m.ContextWindow)
		case !(m.Burndown >= 0):
			return nil, fmt.Errorf("%s: Burndown %v must be zero or more", where, m.Burndown)
		case m.TimeToFirstToken < 0:
			return nil, fmt.Errorf("%s: TimeToFirstToken %v must not be negative", where, m.TimeToFirstToken)
		case !(m.TokensPerSecond >= 0):
			return nil, fmt.Errorf("%s: TokensPerSecond %v must be zero (instant) or more", where, m.TokensPerSecond)
		case m.PromptCacheMin < 0:
			return nil, fmt.Errorf("%s: PromptCacheMin %d must be zero (no caching) or more", where, m.PromptCacheMin)
		case m.ProfileOnly && len(m.Profiles) == 0:
			return nil, fmt.Errorf("%s: ProfileOnly is set but Profiles is empty, so nothing could invoke it", where)
		case len(m.AnthropicVersions) > 0 && m.Format != FormatAnthropic:
			return nil, fmt.Errorf("%s: AnthropicVersions is set on a model of format %s; only anthropic bodies name one", where, m.Format)
		}
		for _, v := range m.AnthropicVersions {
			if !slices.Contains(bedrock.AnthropicVersions(), v) {
				return nil, fmt.Errorf("%s: anthropic_version %q is not one of %s", where, v, strings.Join(bedrock.AnthropicVersions(), ", "))
			}
		}
		if _, dup := index[m.ID]; dup {
			return nil, fmt.Errorf("%s: listed twice", where)
		}
		index[m.ID] = target{model: m}
		for _, geo := range m.Profiles {
			if !slices.Contains(geos, geo) {
				return nil, fmt.Errorf("%s: profile geography %q is not one of %s", where, geo, strings.Join(geos, ", "))
			}
			index[geo+"."+m.ID] = target{model: m, profile: geo}
		}
	}
	return index, nil
}

// profileCallable reports whether an inference profile of geography geo
// can be called from region: a global profile from any region, a
// geographic one only from a region of its geography (jp from Tokyo and
// Osaka, au from Sydney and Melbourne).
func profileCallable(geo, region string) bool {
	switch geo {
	case GeoGlobal:
		return true
	case GeoUS:
		return strings.HasPrefix(region, "us-") && !strings.HasPrefix(region, "us-gov-")
	case GeoEU:
		return strings.HasPrefix(region, "eu-")
	case GeoAPAC:
		return strings.HasPrefix(region, "ap-")
	case GeoJP:
		return region == "ap-northeast-1" || region == "ap-northeast-3"
	case GeoAU:
		return region == "ap-southeast-2" || region == "ap-southeast-4"
	}
	return false
}

// wireName is the model name the Anthropic Messages API reports in its
// "model" field: the id without the provider prefix and version suffix
// ("claude-sonnet-4-5-20250929", "claude-opus-4-6" for
// "anthropic.claude-opus-4-6-v1").
func wireName(id string) string {
	id = strings.TrimPrefix(id, "anthropic.")
	if i := strings.LastIndex(id, "-v"); i > 0 && isVersionSuffix(id[i+2:]) {
		id = id[:i]
	}
	return id
}

// isVersionSuffix reports whether s is what follows "-v" in a model id's
// version suffix: digits, optionally a colon and more digits ("1", "2:0").
func isVersionSuffix(s string) bool {
	major, minor, colon := strings.Cut(s, ":")
	return allDigits(major) && (!colon || allDigits(minor))
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// looksLikeModelID reports whether id has the shape of a Bedrock model
// identifier (provider.name, a profile id, or an ARN). Bedrock answers an
// unknown id of that shape with ResourceNotFoundException and anything else
// with ValidationException.
func looksLikeModelID(id string) bool {
	if strings.HasPrefix(id, "arn:") {
		return true
	}
	dot := strings.IndexByte(id, '.')
	return dot > 0 && dot < len(id)-1
}
