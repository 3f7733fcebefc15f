package retry

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/catalog"
)

// Test entries of our own: the real table is filled elsewhere, and the policy
// must depend only on the fields it reads.
var (
	internalErr   = &catalog.Entry{Code: "InternalServerException", Status: 500, Retry: catalog.Backoff, Unhealthy: true}
	notReady      = &catalog.Entry{Code: "ModelNotReadyException", Status: 429, Retry: catalog.Backoff, Unhealthy: true}
	throttled     = &catalog.Entry{Code: "ThrottlingException", Status: 429, Retry: catalog.Throttled}
	validation    = &catalog.Entry{Code: "ValidationException", Status: 400, Retry: catalog.Never}
	accessDenied  = &catalog.Entry{Code: "AccessDeniedException", Status: 403, Retry: catalog.Never}
	notFound      = &catalog.Entry{Code: "ResourceNotFoundException", Status: 404, Retry: catalog.Fallback, FallbackOK: true}
	agreement     = &catalog.Entry{Code: "MPAgreementBeingCreated", Status: 403, Retry: catalog.LongWait, Wait: 15 * time.Minute}
	unknownClass  = &catalog.Entry{Code: "Odd", Retry: catalog.RetryClass("sometimes")}
	emptyRetryCls = &catalog.Entry{Code: "Blank"}
)

// maxRand always returns the largest value, so the jittered delay equals the
// backoff ceiling and a test can check the ceiling exactly.
type maxRand struct{}

func (maxRand) Int64N(n int64) int64 { return n - 1 }

// zeroRand always returns 0: the shortest possible jittered delay.
type zeroRand struct{}

func (zeroRand) Int64N(int64) int64 { return 0 }

func TestDecide(t *testing.T) {
	tests := []struct {
		name       string
		policy     Policy
		attempt    int
		entry      *catalog.Entry
		retryAfter time.Duration
		rnd        Rand
		want       Decision
	}{
		{name: "5xx first retry waits up to Base", attempt: 1, entry: internalErr, rnd: maxRand{},
			want: Decision{Retry: true, Delay: DefaultBase, Reason: ReasonTransient}},
		{name: "5xx second retry waits up to 2 Base", attempt: 2, entry: internalErr, rnd: maxRand{},
			want: Decision{Retry: true, Delay: 2 * DefaultBase, Reason: ReasonTransient}},
		{name: "5xx after the last attempt", attempt: 3, entry: internalErr, rnd: maxRand{},
			want: Decision{Reason: ReasonExhausted}},
		{name: "5xx past the last attempt", attempt: 7, entry: internalErr, rnd: maxRand{},
			want: Decision{Reason: ReasonExhausted}},
		{name: "ModelNotReady is retried", attempt: 1, entry: notReady, rnd: maxRand{},
			want: Decision{Retry: true, Delay: DefaultBase, Reason: ReasonTransient}},
		{name: "throttling first retry waits up to ThrottleBase", attempt: 1, entry: throttled, rnd: maxRand{},
			want: Decision{Retry: true, Delay: DefaultThrottleBase, Reason: ReasonThrottled}},
		{name: "throttling second retry waits up to 2 ThrottleBase", attempt: 2, entry: throttled, rnd: maxRand{},
			want: Decision{Retry: true, Delay: 2 * DefaultThrottleBase, Reason: ReasonThrottled}},
		{name: "throttling reaches ThrottleCap", policy: Policy{MaxAttempts: 20}, attempt: 10, entry: throttled, rnd: maxRand{},
			want: Decision{Retry: true, Delay: DefaultThrottleCap, Reason: ReasonThrottled}},
		{name: "5xx reaches Cap", policy: Policy{MaxAttempts: 20}, attempt: 19, entry: internalErr, rnd: maxRand{},
			want: Decision{Retry: true, Delay: DefaultCap, Reason: ReasonTransient}},
		{name: "jitter can reach zero", attempt: 2, entry: internalErr, rnd: zeroRand{},
			want: Decision{Retry: true, Delay: 0, Reason: ReasonTransient}},
		{name: "validation is never retried", attempt: 1, entry: validation, rnd: maxRand{},
			want: Decision{Reason: ReasonNever}},
		{name: "access denied is never retried", attempt: 1, entry: accessDenied, rnd: maxRand{},
			want: Decision{Reason: ReasonNever}},
		{name: "not found goes to fallback, not retry", attempt: 1, entry: notFound, rnd: maxRand{},
			want: Decision{Reason: ReasonFallback}},
		{name: "long wait is not retried inline", attempt: 1, entry: agreement, retryAfter: time.Second, rnd: maxRand{},
			want: Decision{Reason: ReasonLongWait}},
		{name: "unknown retry class is not retried", attempt: 1, entry: unknownClass, rnd: maxRand{},
			want: Decision{Reason: ReasonUnknownClass}},
		{name: "empty retry class is not retried", attempt: 1, entry: emptyRetryCls, rnd: maxRand{},
			want: Decision{Reason: ReasonUnknownClass}},
		{name: "nil entry is not retried", attempt: 1, entry: nil, rnd: maxRand{},
			want: Decision{Reason: ReasonNoEntry}},
		{name: "retry-after is a floor over short jitter", attempt: 1, entry: throttled, retryAfter: 3 * time.Second, rnd: zeroRand{},
			want: Decision{Retry: true, Delay: 3 * time.Second, Reason: ReasonRetryAfter}},
		{name: "retry-after below the jitter changes nothing", attempt: 2, entry: throttled, retryAfter: 500 * time.Millisecond, rnd: maxRand{},
			want: Decision{Retry: true, Delay: 2 * time.Second, Reason: ReasonThrottled}},
		{name: "retry-after is capped by MaxRetryAfter", attempt: 1, entry: throttled, retryAfter: time.Hour, rnd: zeroRand{},
			want: Decision{Retry: true, Delay: DefaultMaxRetryAfter, Reason: ReasonRetryAfter}},
		{name: "retry-after with a custom cap", policy: Policy{MaxRetryAfter: 2 * time.Second}, attempt: 1, entry: internalErr, retryAfter: time.Minute, rnd: zeroRand{},
			want: Decision{Retry: true, Delay: 2 * time.Second, Reason: ReasonRetryAfter}},
		{name: "retry-after does not override attempts used up", attempt: 3, entry: throttled, retryAfter: time.Second, rnd: zeroRand{},
			want: Decision{Reason: ReasonExhausted}},
		{name: "negative retry-after is ignored", attempt: 1, entry: internalErr, retryAfter: -time.Second, rnd: zeroRand{},
			want: Decision{Retry: true, Delay: 0, Reason: ReasonTransient}},
		{name: "MaxAttempts 1 disables retries", policy: Policy{MaxAttempts: 1}, attempt: 1, entry: internalErr, rnd: maxRand{},
			want: Decision{Reason: ReasonExhausted}},
		{name: "custom base and cap", policy: Policy{MaxAttempts: 5, Base: 100 * time.Millisecond, Cap: 300 * time.Millisecond}, attempt: 4, entry: internalErr, rnd: maxRand{},
			want: Decision{Retry: true, Delay: 300 * time.Millisecond, Reason: ReasonTransient}},
		{name: "cap below base acts as base", policy: Policy{Base: time.Second, Cap: time.Millisecond}, attempt: 2, entry: internalErr, rnd: maxRand{},
			want: Decision{Retry: true, Delay: time.Second, Reason: ReasonTransient}},
		{name: "invalid negative fields take defaults", policy: Policy{MaxAttempts: -1, Base: -time.Second, Cap: -time.Second}, attempt: 2, entry: internalErr, rnd: maxRand{},
			want: Decision{Retry: true, Delay: 2 * DefaultBase, Reason: ReasonTransient}},
		{name: "attempt below 1 counts as the first", attempt: 0, entry: internalErr, rnd: maxRand{},
			want: Decision{Retry: true, Delay: DefaultBase, Reason: ReasonTransient}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.Decide(tt.attempt, tt.entry, tt.retryAfter, tt.rnd)
			if got != tt.want {
				t.Fatalf("Decide(%d, %v, %v) = %+v, want %+v", tt.attempt, tt.entry, tt.retryAfter, got, tt.want)
			}
		})
	}
}

// TestDecideFullJitter checks the delays spread over the whole of
// [0, ceiling], not a band near the ceiling (that would be "equal jitter"),
// and that throttling waits longer than a transient failure on average.
func TestDecideFullJitter(t *testing.T) {
	tests := []struct {
		name    string
		entry   *catalog.Entry
		attempt int
		ceiling time.Duration
	}{
		{name: "transient first retry", entry: internalErr, attempt: 1, ceiling: DefaultBase},
		{name: "transient second retry", entry: internalErr, attempt: 2, ceiling: 2 * DefaultBase},
		{name: "throttled first retry", entry: throttled, attempt: 1, ceiling: DefaultThrottleBase},
		{name: "throttled second retry", entry: throttled, attempt: 2, ceiling: 2 * DefaultThrottleBase},
	}
	const samples = 4000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(1, 2))
			var p Policy
			lo, hi, sum := time.Duration(1<<62), time.Duration(0), time.Duration(0)
			for range samples {
				d := p.Decide(tt.attempt, tt.entry, 0, rnd)
				if !d.Retry || d.Delay < 0 || d.Delay > tt.ceiling {
					t.Fatalf("Decide = %+v, want a retry with delay in [0, %v]", d, tt.ceiling)
				}
				lo, hi, sum = min(lo, d.Delay), max(hi, d.Delay), sum+d.Delay
			}
			if lo > tt.ceiling/20 || hi < tt.ceiling*19/20 {
				t.Fatalf("delays spread over [%v, %v], want nearly all of [0, %v]", lo, hi, tt.ceiling)
			}
			mean := sum / samples
			if mean < tt.ceiling*45/100 || mean > tt.ceiling*55/100 {
				t.Fatalf("mean delay %v, want about half of %v", mean, tt.ceiling)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name          string
		attempt       int
		base, ceiling time.Duration
		want          time.Duration
	}{
		{name: "first", attempt: 1, base: time.Second, ceiling: time.Minute, want: time.Second},
		{name: "doubles", attempt: 4, base: time.Second, ceiling: time.Minute, want: 8 * time.Second},
		{name: "capped", attempt: 7, base: time.Second, ceiling: time.Minute, want: time.Minute},
		{name: "huge attempt does not overflow", attempt: 1000, base: time.Second, ceiling: time.Minute, want: time.Minute},
		{name: "shift just below overflow", attempt: 62, base: 1, ceiling: 1 << 62, want: 1 << 61},
		{name: "zero base", attempt: 3, base: 0, ceiling: time.Minute, want: 0},
		{name: "attempt zero counts as one", attempt: 0, base: time.Second, ceiling: time.Minute, want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Backoff(tt.attempt, tt.base, tt.ceiling); got != tt.want {
				t.Fatalf("Backoff(%d, %v, %v) = %v, want %v", tt.attempt, tt.base, tt.ceiling, got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		wantErr string // substring; empty means valid
	}{
		{name: "zero value", policy: Policy{}},
		{name: "all set", policy: Policy{MaxAttempts: 5, Base: time.Second, Cap: 2 * time.Second, ThrottleBase: 2 * time.Second, ThrottleCap: time.Minute, MaxRetryAfter: time.Minute}},
		{name: "negative attempts", policy: Policy{MaxAttempts: -1}, wantErr: "MaxAttempts must be between 1 and 20 (0 = default 3), got -1"},
		{name: "too many attempts", policy: Policy{MaxAttempts: 21}, wantErr: "got 21"},
		{name: "negative base", policy: Policy{Base: -time.Second}, wantErr: "Base must not be negative, got -1s"},
		{name: "negative max retry-after", policy: Policy{MaxRetryAfter: -1}, wantErr: "MaxRetryAfter must not be negative"},
		{name: "cap below base", policy: Policy{Base: time.Second, Cap: time.Millisecond}, wantErr: "Cap 1ms is below Base 1s"},
		{name: "cap below default base", policy: Policy{Cap: time.Millisecond}, wantErr: "Cap 1ms is below Base 250ms"},
		{name: "throttle cap below throttle base", policy: Policy{ThrottleBase: time.Minute}, wantErr: "ThrottleCap 20s is below ThrottleBase 1m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate() = nil, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate() = %q, want it to contain %q", err, tt.wantErr)
			case err != nil && !strings.HasPrefix(err.Error(), "retry: "):
				t.Fatalf("Validate() = %q, want the package prefix", err)
			}
		})
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	var p Policy
	rnd := rand.New(rand.NewPCG(3, 4))
	allocs := testing.AllocsPerRun(1000, func() {
		p.Decide(1, throttled, 2*time.Second, rnd)
		p.Decide(2, internalErr, 0, nil)
		p.Decide(1, validation, 0, nil)
	})
	if allocs != 0 {
		t.Fatalf("Decide allocates %.1f times per run, want 0", allocs)
	}
}

func BenchmarkDecide(b *testing.B) {
	var p Policy
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Decide(2, internalErr, 0, nil)
		}
	})
}
