package cache

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/keel-run/keel/internal/jsonscan"
)

// Mode says which requests are cached.
type Mode int

// Modes. The zero Mode is ModeOff.
const (
	// ModeOff caches nothing and coalesces nothing.
	ModeOff Mode = iota
	// ModeDeterministic caches the requests that ask for deterministic
	// output (Deterministic).
	ModeDeterministic
	// ModeAll caches every request whose body is JSON.
	ModeAll
)

// ParseMode reads "off", "deterministic" or "all"; "" is off.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "off":
		return ModeOff, nil
	case "deterministic":
		return ModeDeterministic, nil
	case "all":
		return ModeAll, nil
	}
	return ModeOff, fmt.Errorf("cache: mode %q: want off, deterministic or all", s)
}

// String returns the mode as the configuration spells it.
func (m Mode) String() string {
	switch m {
	case ModeDeterministic:
		return "deterministic"
	case ModeAll:
		return "all"
	}
	return "off"
}

// Deterministic reports whether a request body of the operation family
// ("converse", "invoke", or their "-stream" families) asks for deterministic output: it sets a
// temperature, and that temperature is 0. The temperature is read where each
// body format keeps it: Converse's inferenceConfig.temperature; for
// InvokeModel, the top-level temperature (Anthropic, Meta Llama, Mistral,
// Cohere, AI21, DeepSeek), inferenceConfig.temperature (Amazon Nova) or
// textGenerationConfig.temperature (Amazon Titan).
//
// A body that sets no temperature is not deterministic: every model on
// Bedrock samples at a temperature above 0 by default (Anthropic's
// default is 1.0; Converse's default "is the default value for the model"),
// so the same request may get another reply, and a cache would freeze one
// draw. docs/cache.md has the sources.
func Deterministic(family string, body []byte) bool {
	s := jsonscan.New(body, 0)
	// Every temperature the body sets must be 0; a null, another type or
	// another number is not.
	set, zero := false, true
	read := func() {
		set = true
		if c := s.Peek(); c == '-' || '0' <= c && c <= '9' {
			f, err := strconv.ParseFloat(string(s.Number()), 64)
			zero = zero && err == nil && f == 0
			return
		}
		zero = false
	}
	nested := func(field string) func(key []byte) {
		return func(key []byte) {
			if string(key) == field && s.Peek() == '{' {
				s.Object(func(k []byte) {
					if string(k) == "temperature" {
						read()
					}
				})
			}
		}
	}
	invoke := strings.HasPrefix(family, "invoke")
	conf := nested("inferenceConfig")
	titan := nested("textGenerationConfig")
	s.Object(func(key []byte) {
		switch {
		case string(key) == "temperature" && invoke:
			read()
		case string(key) == "inferenceConfig":
			conf(key)
		case string(key) == "textGenerationConfig" && invoke:
			titan(key)
		}
	})
	s.End()
	return !s.Failed() && set && zero
}
