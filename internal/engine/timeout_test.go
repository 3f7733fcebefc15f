package engine

import (
	"fmt"
	"testing"
	"time"
)

func TestAttemptTimeoutLearned(t *testing.T) {
	const model = "anthropic.claude-3-haiku-20240307-v1:0"
	tests := []struct {
		name      string
		fixed     time.Duration
		replies   []time.Duration // observed at maxTokens
		maxTokens int
		input     int
		left      time.Duration
		more      bool
		want      time.Duration
		soft      bool // the deadline share cut a prior: no evidence of ill health
	}{
		{name: "fixed wins", fixed: 7 * time.Second, replies: repeat(time.Minute, 20), maxTokens: 100, want: 7 * time.Second},
		{name: "no history, max tokens set: the prior", maxTokens: 1000, want: priorBase + 1000*priorPerToken},
		{name: "no history, max tokens unset: the ceiling", want: DefaultAttemptTimeoutCeiling},
		{name: "too few replies: still the prior", replies: repeat(2*time.Second, replySamplesMin-1), maxTokens: 1000,
			want: priorBase + 1000*priorPerToken},
		{name: "learned: 4 × p99", replies: append(repeat(time.Second, 98), 5*time.Second, 5*time.Second), maxTokens: 1000, want: 20 * time.Second},
		{name: "learned, fast replies: the floor", replies: repeat(10*time.Millisecond, 50), maxTokens: 1000, want: DefaultAttemptTimeoutFloor},
		{name: "learned in another size class does not count", replies: repeat(time.Second, 50), maxTokens: 20000,
			want: priorBase + 20000*priorPerToken},
		{name: "huge max tokens: the ceiling", maxTokens: 1 << 30, want: DefaultAttemptTimeoutCeiling},
		{name: "targets after it: half the time left", maxTokens: 1000, left: 30 * time.Second, more: true, want: 15 * time.Second, soft: true},
		{name: "targets after it, learned: half the time left, firm", replies: repeat(time.Second, 20), maxTokens: 1000,
			left: 10 * time.Second, more: true, want: 5 * time.Second},
		{name: "a long prompt: more time", replies: repeat(5*time.Second, 20), maxTokens: 1000, input: 100000,
			want: 20*time.Second + 100000*perInputToken},
		{name: "no max tokens: never learned", replies: repeat(time.Second, 50), maxTokens: 0, want: DefaultAttemptTimeoutCeiling},
		{name: "last target: the deadline alone bounds it", maxTokens: 1000, left: 30 * time.Second, want: priorBase + 1000*priorPerToken},
		{name: "half the time left, never below the p99", replies: repeat(12*time.Second, 20), maxTokens: 1000, left: 20 * time.Second,
			more: true, want: 12 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReplyTimes(tt.fixed)
			for _, d := range tt.replies {
				r.observe(model, 1000, d)
				r.observe(model, 0, d) // calls with no max tokens teach nothing
			}
			if got, firm := r.timeout(model, tt.maxTokens, tt.input, tt.left, tt.more); got != tt.want || firm == tt.soft {
				t.Fatalf("timeout = %v (firm %v), want %v (firm %v)", got, firm, tt.want, !tt.soft)
			}
		})
	}
}

func TestReplyClasses(t *testing.T) {
	tests := []struct {
		a, b int
		same bool
	}{
		{0, 0, true}, {0, 1, false}, {1, 2, false}, {2, 4, true}, {5, 16, true}, {16, 17, false}, {65, 256, true},
		{256, 257, false}, {1000, 1024, true}, {1024, 1025, false}, {4096, 4000, true}, {64000, 65536, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d~%d", tt.a, tt.b), func(t *testing.T) {
			if same := classOf("m", tt.a) == classOf("m", tt.b); same != tt.same {
				t.Fatalf("same class = %v, want %v (%v, %v)", same, tt.same, classOf("m", tt.a), classOf("m", tt.b))
			}
		})
	}
	if classOf("a", 10) == classOf("b", 10) {
		t.Fatal("two models share a class")
	}
}

func TestReplyTimesBounded(t *testing.T) {
	r := newReplyTimes(0)
	for i := range maxReplyClasses + 10 {
		r.observe(fmt.Sprintf("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/%d", i), 100, time.Second)
	}
	if n := len(r.classes); n > maxReplyClasses {
		t.Fatalf("%d classes kept, want at most %d", n, maxReplyClasses)
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}
