package emulator

import (
	"fmt"
	"strings"
	"time"
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
	GeoGlobal = "global" // callable from any region
)

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
	// Profiles lists the geographies (GeoUS, GeoEU, GeoAPAC, GeoGlobal) that
	// have a cross-region inference profile for this model.
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
}

// DefaultModels returns the built-in model list: a copy the caller may
// modify. Context windows and output limits are the published ones; latency
// figures are rough public ballparks, there to make timing realistic, not
// measurements.
func DefaultModels() []Model {
	out := make([]Model, len(builtin))
	copy(out, builtin)
	for i := range out {
		out[i].Profiles = append([]string(nil), builtin[i].Profiles...)
	}
	return out
}

var (
	usEUAPAC       = []string{GeoUS, GeoEU, GeoAPAC}
	usEUAPACGlobal = []string{GeoUS, GeoEU, GeoAPAC, GeoGlobal}
	usOnly         = []string{GeoUS}
)

func claude(id, name string, maxOut int, burndown float64, ttft time.Duration, tps float64, profiles []string, profileOnly bool, cacheMin int) Model {
	return Model{ID: id, Name: name, Provider: "Anthropic", Format: FormatAnthropic, MaxOutputTokens: maxOut,
		ContextWindow: 200000, Burndown: burndown, TimeToFirstToken: ttft, TokensPerSecond: tps,
		Profiles: profiles, ProfileOnly: profileOnly, Images: true, PromptCacheMin: cacheMin}
}

var builtin = []Model{
	claude("anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku", 4096, 1, 400*time.Millisecond, 120, usEUAPAC, false, 0),
	claude("anthropic.claude-3-sonnet-20240229-v1:0", "Claude 3 Sonnet", 4096, 1, 800*time.Millisecond, 60, usEUAPAC, false, 0),
	claude("anthropic.claude-3-opus-20240229-v1:0", "Claude 3 Opus", 4096, 1, 1500*time.Millisecond, 25, usOnly, false, 0),
	claude("anthropic.claude-3-5-haiku-20241022-v1:0", "Claude 3.5 Haiku", 8192, 1, 500*time.Millisecond, 90, usOnly, false, 2048),
	claude("anthropic.claude-3-5-sonnet-20240620-v1:0", "Claude 3.5 Sonnet", 8192, 1, 700*time.Millisecond, 70, usEUAPAC, false, 0),
	claude("anthropic.claude-3-5-sonnet-20241022-v2:0", "Claude 3.5 Sonnet v2", 8192, 1, 700*time.Millisecond, 70, []string{GeoUS, GeoAPAC}, false, 0),
	claude("anthropic.claude-3-7-sonnet-20250219-v1:0", "Claude 3.7 Sonnet", 64000, 5, 900*time.Millisecond, 65, usEUAPAC, true, 1024),
	claude("anthropic.claude-sonnet-4-20250514-v1:0", "Claude Sonnet 4", 64000, 5, 1000*time.Millisecond, 60, usEUAPACGlobal, true, 1024),
	claude("anthropic.claude-opus-4-20250514-v1:0", "Claude Opus 4", 32000, 5, 1800*time.Millisecond, 35, usOnly, true, 1024),
	claude("anthropic.claude-opus-4-1-20250805-v1:0", "Claude Opus 4.1", 32000, 5, 1800*time.Millisecond, 35, usOnly, true, 1024),
	claude("anthropic.claude-sonnet-4-5-20250929-v1:0", "Claude Sonnet 4.5", 64000, 5, 1000*time.Millisecond, 65, usEUAPACGlobal, true, 1024),
	claude("anthropic.claude-haiku-4-5-20251001-v1:0", "Claude Haiku 4.5", 64000, 1, 500*time.Millisecond, 130, []string{GeoUS, GeoEU, GeoGlobal}, true, 2048),

	{ID: "amazon.nova-micro-v1:0", Name: "Nova Micro", Provider: "Amazon", Format: FormatNova, MaxOutputTokens: 5000,
		ContextWindow: 128000, Burndown: 1, TimeToFirstToken: 300 * time.Millisecond, TokensPerSecond: 200, Profiles: usEUAPAC, PromptCacheMin: 1000},
	{ID: "amazon.nova-lite-v1:0", Name: "Nova Lite", Provider: "Amazon", Format: FormatNova, MaxOutputTokens: 5000,
		ContextWindow: 300000, Burndown: 1, TimeToFirstToken: 350 * time.Millisecond, TokensPerSecond: 150, Profiles: usEUAPAC, Images: true, PromptCacheMin: 1000},
	{ID: "amazon.nova-pro-v1:0", Name: "Nova Pro", Provider: "Amazon", Format: FormatNova, MaxOutputTokens: 5000,
		ContextWindow: 300000, Burndown: 1, TimeToFirstToken: 500 * time.Millisecond, TokensPerSecond: 90, Profiles: usEUAPAC, Images: true, PromptCacheMin: 1000},

	{ID: "meta.llama3-1-8b-instruct-v1:0", Name: "Llama 3.1 8B Instruct", Provider: "Meta", Format: FormatLlama, MaxOutputTokens: 2048,
		ContextWindow: 128000, Burndown: 1, TimeToFirstToken: 300 * time.Millisecond, TokensPerSecond: 150, Profiles: usOnly},
	{ID: "meta.llama3-1-70b-instruct-v1:0", Name: "Llama 3.1 70B Instruct", Provider: "Meta", Format: FormatLlama, MaxOutputTokens: 2048,
		ContextWindow: 128000, Burndown: 1, TimeToFirstToken: 600 * time.Millisecond, TokensPerSecond: 50, Profiles: usOnly},
	{ID: "meta.llama3-3-70b-instruct-v1:0", Name: "Llama 3.3 70B Instruct", Provider: "Meta", Format: FormatLlama, MaxOutputTokens: 2048,
		ContextWindow: 128000, Burndown: 1, TimeToFirstToken: 600 * time.Millisecond, TokensPerSecond: 50, Profiles: usOnly, ProfileOnly: true},

	{ID: "amazon.titan-text-express-v1", Name: "Titan Text G1 - Express", Provider: "Amazon", Format: FormatTitan, MaxOutputTokens: 8192,
		ContextWindow: 8192, Burndown: 1, TimeToFirstToken: 500 * time.Millisecond, TokensPerSecond: 80},
	{ID: "amazon.titan-text-lite-v1", Name: "Titan Text G1 - Lite", Provider: "Amazon", Format: FormatTitan, MaxOutputTokens: 4096,
		ContextWindow: 4096, Burndown: 1, TimeToFirstToken: 400 * time.Millisecond, TokensPerSecond: 100},
	{ID: "amazon.titan-text-premier-v1:0", Name: "Titan Text G1 - Premier", Provider: "Amazon", Format: FormatTitan, MaxOutputTokens: 3072,
		ContextWindow: 32000, Burndown: 1, TimeToFirstToken: 600 * time.Millisecond, TokensPerSecond: 60},
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
		}
		if _, dup := index[m.ID]; dup {
			return nil, fmt.Errorf("%s: listed twice", where)
		}
		index[m.ID] = target{model: m}
		for _, geo := range m.Profiles {
			if geo != GeoUS && geo != GeoEU && geo != GeoAPAC && geo != GeoGlobal {
				return nil, fmt.Errorf("%s: profile geography %q is not one of us, eu, apac, global", where, geo)
			}
			index[geo+"."+m.ID] = target{model: m, profile: geo}
		}
	}
	return index, nil
}

// geography returns the inference profile geography a region belongs to,
// or "" for a region no geographic profile serves.
func geography(region string) string {
	switch {
	case strings.HasPrefix(region, "us-gov-"):
		return ""
	case strings.HasPrefix(region, "us-"):
		return GeoUS
	case strings.HasPrefix(region, "eu-"):
		return GeoEU
	case strings.HasPrefix(region, "ap-"):
		return GeoAPAC
	}
	return ""
}

// wireName is the model name the Anthropic Messages API reports in its
// "model" field: the id without the provider prefix and version suffix
// ("claude-sonnet-4-5-20250929").
func wireName(id string) string {
	id = strings.TrimPrefix(id, "anthropic.")
	if i := strings.LastIndex(id, "-v"); i > 0 && strings.Contains(id[i:], ":") {
		id = id[:i]
	}
	return id
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
