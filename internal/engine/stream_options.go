package engine

import (
	"fmt"
	"time"
)

// This file holds the streaming options and their defaults.

// Stream defaults. docs/streaming.md explains the choice.
const (
	// DefaultFirstEventTimeout bounds the wait from sending a streaming
	// attempt to its first event, response headers included. Bedrock
	// sends the first event once the prompt is processed: seconds usually,
	// tens of seconds for a prompt of 200k tokens on a loaded model. A
	// stall found too early costs a whole prompt again, so the limit is
	// generous.
	DefaultFirstEventTimeout = 2 * time.Minute
	// DefaultIdleTimeout bounds the wait for each later event. Bedrock
	// streams extended thinking as reasoning deltas, so a healthy stream
	// is rarely silent for long; 60 s is also the read timeout every boto3
	// stream lives under by default.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxResumes bounds the continuations of one call.
	DefaultMaxResumes = 2
	// MaxMaxResumes is the largest MaxResumes accepted.
	MaxMaxResumes = 10
)

// StreamOptions configure streaming calls. The zero value means all
// defaults; each field says what its zero value does.
type StreamOptions struct {
	// FirstEventTimeout bounds the wait from sending an attempt to its first
	// event (headers included). Zero: DefaultFirstEventTimeout.
	FirstEventTimeout time.Duration
	// IdleTimeout bounds the wait for each later event. It counts only while
	// keel waits on Bedrock, never while the reader is busy. Zero:
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// DisableResume turns resume by continuation off: a stream that breaks
	// after its first content ends with the typed error.
	DisableResume bool
	// DisableContinueTurn turns off resuming the streams of models that
	// refuse a prefill (Claude 4.6 and later, and models that answered a
	// prefill with a ValidationException) by a continuation that ends in a
	// user turn asking the model to go on (stream.ContinueTurn). Their
	// streams are then not resumed, unless Resume names the model, which
	// makes keel send a prefill.
	DisableContinueTurn bool
	// MaxResumes bounds the continuations of one call. Zero:
	// DefaultMaxResumes.
	MaxResumes int
	// Resume overrides, per model id as callers name it, whether its
	// streams are resumed, over DisableResume: true even for a model keel
	// does not know to accept a prefill, false never. Models not listed are
	// resumed when keel knows they take a prefill (Claude up to 4.5, Nova)
	// or knows they refuse one (Claude 4.6 and later: by ContinueTurn).
	Resume map[string]bool
}

func (o *StreamOptions) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"FirstEventTimeout", o.FirstEventTimeout}, {"IdleTimeout", o.IdleTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("engine: Streaming.%s must not be negative, got %v", d.name, d.v)
		}
	}
	if o.MaxResumes < 0 || o.MaxResumes > MaxMaxResumes {
		return fmt.Errorf("engine: Streaming.MaxResumes must be between 1 and %d (0 = default %d), got %d", MaxMaxResumes, DefaultMaxResumes, o.MaxResumes)
	}
	return nil
}

func (o *StreamOptions) firstEvent() time.Duration {
	return orDefault(o.FirstEventTimeout, DefaultFirstEventTimeout)
}
func (o *StreamOptions) idle() time.Duration { return orDefault(o.IdleTimeout, DefaultIdleTimeout) }
func (o *StreamOptions) maxResumes() int {
	if o.MaxResumes <= 0 {
		return DefaultMaxResumes
	}
	return o.MaxResumes
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
