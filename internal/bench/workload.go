package bench

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/reply"
)

// The workload's mix. Prompt sizes are log-uniform within each band; max
// tokens are drawn from a short list, as applications set them. Replies end
// on their own after ReplyLength tokens unless max tokens cut them. The
// figures are a judgement of what a mixed chat/RAG/document service sends,
// not a measurement; docs/bench.md shows them.
var (
	inputBands = []struct {
		weight float64
		lo, hi int
	}{
		{0.40, 150, 1_000},     // chat turns
		{0.35, 1_000, 4_000},   // retrieval-augmented questions
		{0.20, 4_000, 12_000},  // long documents
		{0.05, 12_000, 30_000}, // whole reports
	}
	maxTokenChoices = []struct {
		weight float64
		tokens int // 0: unset, so the model's maximum is reserved
	}{
		{0.20, 256},
		{0.30, 1_024},
		{0.30, 4_096},
		{0.15, 8_192},
		{0.05, 0},
	}
	// ReplyLength is how long replies that end on their own are, in tokens.
	ReplyLength = reply.Range{Min: 30, Max: 600}
)

// maxCalls bounds a workload's size, so a typo in --quota cannot start a
// million goroutines.
const maxCalls = 20_000

// minCalls is the fewest calls whose quarters mean something.
const minCalls = 20

// Model is what the bench needs to know about the model it calls.
type Model struct {
	// ID is the id the calls name (an inference profile id or a model id).
	ID string
	// Region is where the calls go: one the profile serves.
	Region string
	// Base is the emulator's foundation model: output limit, burndown,
	// latency.
	Base emulator.Model
}

// ResolveModel finds the emulator's model for id, a foundation model id or a
// geographic or global inference profile id, and the region to call it in.
func ResolveModel(id string) (Model, error) {
	geo, base := "", id
	if g, rest, ok := strings.Cut(id, "."); ok {
		switch g {
		case emulator.GeoUS, emulator.GeoEU, emulator.GeoAPAC, emulator.GeoJP, emulator.GeoAU, emulator.GeoGlobal:
			geo, base = g, rest
		}
	}
	region := map[string]string{"": "us-east-1", emulator.GeoUS: "us-east-1", emulator.GeoEU: "eu-west-1",
		emulator.GeoAPAC: "ap-northeast-1", emulator.GeoJP: "ap-northeast-1", emulator.GeoAU: "ap-southeast-2",
		emulator.GeoGlobal: "us-east-1"}[geo]
	for _, m := range emulator.DefaultModels() {
		if m.ID != base {
			continue
		}
		switch {
		case geo == "" && m.ProfileOnly:
			return Model{}, fmt.Errorf("bench: model %s is only served through an inference profile; try %s.%s", id, m.Profiles[0], id)
		case geo != "" && !slices.Contains(m.Profiles, geo):
			return Model{}, fmt.Errorf("bench: model %s has no %q inference profile (it has %s)", base, geo, strings.Join(m.Profiles, ", "))
		}
		return Model{ID: id, Region: region, Base: m}, nil
	}
	ids := make([]string, 0, 32)
	for _, m := range emulator.DefaultModels() {
		ids = append(ids, m.ID)
	}
	return Model{}, fmt.Errorf("bench: unknown model %q; the emulator serves %s (prefix us., eu., apac. or global. for a profile)", id, strings.Join(ids, ", "))
}

// maxTokensFor clamps a max tokens choice to what the model allows (an unset
// choice stays unset).
func (m Model) maxTokensFor(n int) int { return min(n, m.Base.MaxOutputTokens) }

// maxInput is the largest prompt the mix may send to the model: the top of
// the largest band, less than the context window with room for the reply.
func (m Model) maxInput() int {
	return min(inputBands[len(inputBands)-1].hi, m.Base.ContextWindow-m.Base.MaxOutputTokens)
}

// LargestReservation is the most tokens one call of the mix can reserve.
func (m Model) LargestReservation() int { return m.maxInput() + m.Base.MaxOutputTokens }

// longestReply is how long the emulator takes to answer with the longest
// reply of the mix at speed.
func (m Model) longestReply(speed float64) time.Duration {
	d := m.Base.TimeToFirstToken
	if m.Base.TokensPerSecond > 0 {
		d += time.Duration(float64(ReplyLength.Max) / m.Base.TokensPerSecond * float64(time.Second))
	}
	return time.Duration(float64(d) * speed).Round(time.Millisecond)
}

// Call is one call of a workload.
type Call struct {
	// Index is the call's place in arrival order.
	Index int
	// At is when the call arrives, after the start.
	At time.Duration
	// InputTokens is the prompt's size, as the emulator counts it.
	InputTokens int
	// MaxTokens is the call's maxTokens; 0 means unset.
	MaxTokens int
	// Reserve is what the quota reserves when the call starts: input + max
	// tokens (the model's maximum when unset).
	Reserve int
	// Cost is what the quota settles when the call is served: input +
	// output × burndown, the output being the emulator's reply.
	Cost int
	// Prompt is the user message, InputTokens tokens long.
	Prompt string
}

// Workload is a seeded schedule of calls.
type Workload struct {
	Model Model
	// Rate is the expected arrival rate, calls per second, from MeanCost.
	Rate float64
	// MeanCost is the mix's expected settled tokens per call, from which Rate
	// was set.
	MeanCost float64
	// Calls are in arrival order.
	Calls []Call
	// Duration is how long calls arrive for.
	Duration time.Duration
}

// NewWorkload draws the calls that arrive over d: calls from the mix until
// what they would settle, were all served, reaches load × quota tokens per
// minute over d; then their arrival times, uniform over d and sorted, which
// is a Poisson stream conditioned on its count. So the offered load is what
// was asked for, not a Poisson draw around it. The same seed gives the same
// calls; times and contents come from separate streams.
func NewWorkload(m Model, quota int64, load float64, d time.Duration, seed int64) (*Workload, error) {
	w := &Workload{Model: m, MeanCost: meanCost(m), Duration: d}
	w.Rate = load * float64(quota) / 60 / w.MeanCost
	if err := checkCount(w.Rate, d); err != nil {
		return nil, err
	}
	target := load * float64(quota) * d.Minutes()
	contents := rand.New(rand.NewPCG(uint64(seed), 0xc0de))
	var offered float64
	for i := 0; offered < target; i++ {
		if i == maxCalls {
			return nil, fmt.Errorf("bench: more than %d calls needed to offer %.0f tokens; lower the quota, the load or the duration", maxCalls, target)
		}
		c := m.drawCall(contents, i, seed)
		offered += float64(c.Cost)
		w.Calls = append(w.Calls, c)
	}
	if len(w.Calls) < minCalls {
		return nil, fmt.Errorf("bench: the workload has %d calls, fewer than %d; raise the quota, the load or the duration",
			len(w.Calls), minCalls)
	}
	times := rand.New(rand.NewPCG(uint64(seed), 0xa771))
	at := make([]time.Duration, len(w.Calls))
	for i := range at {
		at[i] = time.Duration(times.Int64N(int64(d)))
	}
	slices.Sort(at)
	for i := range w.Calls {
		w.Calls[i].At = at[i]
	}
	return w, nil
}

// checkCount checks that a workload of rate calls a second over d has
// enough calls to measure and not too many to run.
func checkCount(rate float64, d time.Duration) error {
	switch expected := rate * d.Seconds(); {
	case expected > maxCalls:
		return fmt.Errorf("bench: %.0f calls expected (%.1f a second for %s); at most %d: lower the quota, the load or the duration",
			expected, rate, d, maxCalls)
	case expected < minCalls:
		return fmt.Errorf("bench: %.0f calls expected (%.2f a second for %s), fewer than %d; raise the quota, the load or the duration",
			expected, rate, d, minCalls)
	}
	return nil
}

func (m Model) drawCall(g *rand.Rand, i int, seed int64) Call {
	band := inputBands[pick(g, len(inputBands), func(i int) float64 { return inputBands[i].weight })]
	lo, hi := float64(band.lo), float64(min(band.hi, m.maxInput()))
	input := int(math.Round(lo * math.Exp(g.Float64()*math.Log(max(hi, lo)/lo))))
	maxTokens := maxTokenChoices[pick(g, len(maxTokenChoices), func(i int) float64 { return maxTokenChoices[i].weight })].tokens
	maxTokens = m.maxTokensFor(maxTokens)
	c := Call{Index: i, InputTokens: input, MaxTokens: maxTokens, Prompt: prompt(g, input)}
	limit := cmp.Or(maxTokens, m.Base.MaxOutputTokens)
	c.Reserve = input + limit
	r := reply.Generate(&reply.Request{Seed: seed, Model: m.Base.ID, Messages: []reply.Message{{Role: "user", Text: c.Prompt}},
		MaxTokens: limit, Length: ReplyLength})
	c.Cost = input + int(math.Ceil(float64(r.OutputTokens)*burndown(m.Base)))
	return c
}

// pick draws an index with probability weight(i) / Σ weights.
func pick(g *rand.Rand, n int, weight func(int) float64) int {
	var sum float64
	for i := range n {
		sum += weight(i)
	}
	x := g.Float64() * sum
	for i := range n {
		if x -= weight(i); x < 0 {
			return i
		}
	}
	return n - 1
}

func burndown(m emulator.Model) float64 { return max(m.Burndown, 1) }

// meanCost is the mix's expected settled tokens per call: the expected
// prompt plus burndown × the expected reply, a reply being uniform in
// ReplyLength and cut at max tokens. (Replies end on a full stop, so they
// run a little past their drawn length; Offered reports what was drawn.)
func meanCost(m Model) float64 {
	var input float64
	for _, b := range inputBands {
		lo, hi := float64(b.lo), float64(min(b.hi, m.maxInput()))
		mean := lo
		if hi > lo {
			mean = (hi - lo) / math.Log(hi/lo) // mean of a log-uniform
		}
		input += b.weight * mean
	}
	var output float64
	for _, c := range maxTokenChoices {
		limit := cmp.Or(m.maxTokensFor(c.tokens), m.Base.MaxOutputTokens)
		var sum float64
		for n := ReplyLength.Min; n <= ReplyLength.Max; n++ {
			sum += float64(min(n, limit))
		}
		output += c.weight * sum / float64(ReplyLength.Max-ReplyLength.Min+1)
	}
	return input + burndown(m.Base)*output
}

// OfferedTokens is what the calls would settle if all were served.
func (w *Workload) OfferedTokens() int64 {
	var n int64
	for _, c := range w.Calls {
		n += int64(c.Cost)
	}
	return n
}

// Quarters returns the indexes of the quarter of calls with the smallest
// reservations and of the quarter with the largest (ties in arrival order).
// Reservations decide admission, so they are what a quota-aware client must
// handle for large calls to get through.
func (w *Workload) Quarters() (small, large []int) {
	idx := make([]int, len(w.Calls))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(w.Calls[a].Reserve, w.Calls[b].Reserve) })
	q := len(idx) / 4
	return idx[:q], idx[len(idx)-q:]
}

// words are three-letter words: with its leading space each is exactly one
// token of the emulator's tokenizer (pieces of at most four characters).
var words = strings.Fields(`the and for are but not you all any can had her was one our out day get has him his
how man new now old see two way who boy did its let put say she too use art bay bed big box car cat cup cut dog ear
eat end eye far few fit fly fun gas god gun hat hot ice job key kid lab law lay leg lie lot low map mix net oil pay
pen pet pie pin pot raw red rid row run sea set sit sky son sun tax tea tie top toy try van war web wet win yes yet`)

// prompt returns a text of exactly n tokens.
func prompt(g *rand.Rand, n int) string {
	var b strings.Builder
	b.Grow(4 * n)
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[g.IntN(len(words))])
	}
	return b.String()
}
