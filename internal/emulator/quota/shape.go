package quota

import (
	"encoding/json"
	"fmt"
	"time"
)

// Shape is how a per-minute bucket (tokens per minute, requests per minute)
// holds and regains its quota. Bedrock does not publish its own; the
// emulator can play several so that a client can be measured against each.
// The per-day bucket always holds a whole day and refills continuously.
type Shape struct {
	// Burst is the bucket's capacity in time of quota: it holds
	// limit × Burst / 1m. DefaultShape holds a whole minute.
	Burst time.Duration
	// StartLevel is how full a bucket is when it is made (on a pair's first
	// request, after Reset, or when SetTable first limits it), from 0
	// (empty) to 1 (full).
	StartLevel float64
	// RefillEvery is the refill granularity. Zero refills continuously, at
	// limit/60 a second. Above zero, the bucket gains limit × RefillEvery / 1m
	// at once each time the clock crosses a multiple of RefillEvery counted
	// from the Unix epoch (so 1m refills on wall-clock minute boundaries),
	// never past its capacity.
	RefillEvery time.Duration
}

// Bounds of a Shape, checked by Validate.
const (
	// MinBurst keeps a bucket big enough to mean something at the limits
	// people test with: at 1s, 60,000 tokens/min holds 1,000 tokens.
	MinBurst = time.Second
	// MaxBurst bounds how long a client can run above its limit on what
	// a bucket saved; an hour is far past any quota shape worth testing.
	MaxBurst = time.Hour
	// MinRefillEvery keeps stepped refills coarser than the continuous
	// bucket's rounding; finer steps are the continuous bucket in practice.
	MinRefillEvery = time.Second
	// MaxRefillEvery matches MaxBurst: one step never needs to be longer
	// than the longest bucket.
	MaxRefillEvery = time.Hour
)

// DefaultShape is the shape of a rule whose Limits.Shape is nil: a bucket
// that holds a whole minute of quota, starts full and refills continuously.
func DefaultShape() Shape { return Shape{Burst: time.Minute, StartLevel: 1} }

// Validate reports the first field of s out of bounds.
func (s Shape) Validate() error {
	switch {
	case s.Burst < MinBurst || s.Burst > MaxBurst:
		return fmt.Errorf("burst %v is not between %v and %v", s.Burst, MinBurst, MaxBurst)
	case !(s.StartLevel >= 0 && s.StartLevel <= 1): // NaN fails too
		return fmt.Errorf("start level %v is not between 0 and 1", s.StartLevel)
	case s.RefillEvery != 0 && (s.RefillEvery < MinRefillEvery || s.RefillEvery > MaxRefillEvery):
		return fmt.Errorf("refill every %v is neither 0 (continuous) nor between %v and %v",
			s.RefillEvery, MinRefillEvery, MaxRefillEvery)
	}
	return nil
}

// shapeJSON is Shape on the wire, with durations written as Go durations
// ("10s", "1m0s") rather than nanoseconds.
type shapeJSON struct {
	Burst       string  `json:"burst"`
	StartLevel  float64 `json:"start_level"`
	RefillEvery string  `json:"refill_every"`
}

// MarshalJSON writes s with the scenario file's key names.
func (s Shape) MarshalJSON() ([]byte, error) {
	return json.Marshal(shapeJSON{Burst: s.Burst.String(), StartLevel: s.StartLevel, RefillEvery: s.RefillEvery.String()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Shape) UnmarshalJSON(b []byte) error {
	var j shapeJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	burst, err := time.ParseDuration(j.Burst)
	if err != nil {
		return fmt.Errorf("quota: shape: burst: %w", err)
	}
	every, err := time.ParseDuration(j.RefillEvery)
	if err != nil {
		return fmt.Errorf("quota: shape: refill_every: %w", err)
	}
	*s = Shape{Burst: burst, StartLevel: j.StartLevel, RefillEvery: every}
	return nil
}

// bucket is a token bucket of a given shape. A zero limit means unlimited:
// fits is always true and take and give do nothing.
type bucket struct {
	limit    int64 // per period
	capacity float64
	perNano  float64       // continuous refill rate, when every is 0
	every    time.Duration // refill step; 0 refills continuously
	perStep  float64       // what each step adds
	level    float64
	last     time.Time
}

func (b *bucket) limited() bool { return b.limit > 0 }

// reshape sets a new limit per period and shape. A bucket that was unlimited
// starts at s.StartLevel; one that was limited keeps its level, cut to the
// new capacity.
func (b *bucket) reshape(limit int64, period time.Duration, s Shape, now time.Time) {
	was := b.limited()
	b.limit = limit
	// The ratio first, so that a burst of a whole period gives exactly limit.
	b.capacity = float64(limit) * (float64(s.Burst) / float64(period))
	b.perNano = float64(limit) / float64(period)
	b.every = s.RefillEvery
	b.perStep = float64(limit) * (float64(s.RefillEvery) / float64(period))
	if !was {
		b.level = s.StartLevel * b.capacity
	}
	b.level = min(b.level, b.capacity)
	b.last = now
}

func (b *bucket) refill(now time.Time) {
	if !b.limited() || !now.After(b.last) {
		return
	}
	gain := float64(now.Sub(b.last)) * b.perNano
	if b.every > 0 {
		step := int64(b.every)
		gain = float64(floorDiv(now.UnixNano(), step)-floorDiv(b.last.UnixNano(), step)) * b.perStep
	}
	b.level = min(b.capacity, b.level+gain)
	b.last = now
}

// floorDiv is a / b rounded towards minus infinity, for b > 0, so that
// steps stay aligned to the epoch for times before it too.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

func (b *bucket) fits(n float64) bool { return !b.limited() || n <= b.level }

func (b *bucket) take(n float64) {
	if b.limited() {
		b.level -= n
	}
}

func (b *bucket) give(n float64) {
	if b.limited() {
		b.level = min(b.capacity, b.level+n)
	}
}
