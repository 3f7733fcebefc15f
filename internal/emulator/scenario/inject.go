package scenario

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/scenario/glob"
)

// An Injector decides a fault.Plan for each request from a Scenario. Most
// callers make one when the emulator starts and pass its Plan method to the
// server. An Injector is safe for concurrent use.
//
// Each plan is made by walking the rules that match the request, in file
// order. Rules outside their from/to window are skipped. Latencies of all
// matching rules add up. The request gets at most one other fault: the first
// to fire, taking a rule's parts in the order outages, cold start, errors,
// refuse, hang, stream. A rule draws its random numbers whether or not an
// earlier rule has already decided, so editing one rule's probabilities does
// not reshuffle what the others decide.
//
// Randomness comes from one stream per (model, region), seeded from the
// Injector's seed and the pair, so the same seed and the same sequence of
// requests to a model and region give the same plans, however requests to
// other pairs interleave with them. An Injector keeps a stream and
// cold-start state for at most 1,024 pairs; the pairs seen after those share
// one stream and one cold-start state (their rules still match as written),
// so a client inventing model ids or regions cannot grow it without bound.
type Injector struct {
	clk   clock.Clock
	seed  uint64
	start time.Time
	cur   atomic.Pointer[compiled]
	mu    sync.Mutex // serialises adding key states
}

// NewInjector returns an Injector that plans by s (nil: never misbehave),
// draws random numbers from seed and reads time from clk (nil: the wall
// clock). The rules' from/to windows count from the moment NewInjector is
// called, which stands for emulator start. s must come from Parse or Load,
// or have passed Validate.
func NewInjector(s *Scenario, seed int64, clk clock.Clock) *Injector {
	if clk == nil {
		clk = clock.Real{}
	}
	in := &Injector{clk: clk, seed: uint64(seed), start: clk.Now()}
	in.cur.Store(compile(s))
	return in
}

// Replace makes s (nil: never misbehave) the scenario for requests from now
// on. The emulator's start time stays; cold-start state and random streams
// start afresh from the seed. s must come from Parse or Load, or have passed
// Validate.
func (in *Injector) Replace(s *Scenario) {
	in.cur.Store(compile(s))
}

// Scenario returns the scenario in force.
func (in *Injector) Scenario() *Scenario { return in.cur.Load().s }

// ClockSkew returns the clock skew of the scenario in force
// (Scenario.ClockSkew).
func (in *Injector) ClockSkew() time.Duration { return in.cur.Load().s.ClockSkew }

// Start returns the time the rules' from/to windows count from.
func (in *Injector) Start() time.Time { return in.start }

// Plan decides what the emulator does with r. The plan's MidStream, when
// set, is shared with other plans and must not be modified.
func (in *Injector) Plan(r fault.Request) fault.Plan {
	c := in.cur.Load()
	for i, d := range c.s.Deny {
		if glob.Match(orStar(d.Model), r.Model) && glob.Match(orStar(d.Region), r.Region) {
			return fault.Plan{Error: d.Code, ErrorMessage: d.Message, Rule: c.denyNames[i]}
		}
	}
	if len(c.rules) == 0 {
		return fault.Plan{}
	}
	ks := in.keyState(c, r.Model, r.Region)
	opi := opIndex(r.Operation)
	rules := ks.other
	if opi >= 0 && !ks.shared {
		rules = ks.byOp[opi]
	}
	if len(rules) == 0 {
		return fault.Plan{}
	}
	now := in.clk.Now()
	t := now.Sub(in.start)
	streaming := r.Streaming()

	ks.mu.Lock()
	defer ks.mu.Unlock()
	var p fault.Plan
	decided := false // an outcome other than latency is chosen
	latencyRule := ""
	for _, cr := range rules {
		if ks.shared && (!glob.Match(cr.model, r.Model) || !glob.Match(cr.region, r.Region)) {
			continue
		}
		if (opi < 0 || ks.shared) && !glob.Match(cr.op, r.Operation) {
			continue
		}
		if t < cr.from || (cr.to > 0 && t >= cr.to) {
			continue
		}
		if cr.tier != "" && cr.tier != cmp.Or(r.Tier, bedrock.TierDefault) {
			continue
		}
		for i := range cr.outages {
			o := &cr.outages[i]
			if !decided && t >= o.from && (o.to == 0 || t < o.to) {
				p.Refuse, p.Hang, p.Error, p.ErrorMessage = o.refuse, o.hang, o.code, o.message
				p.Rule, decided = cr.name, true
			}
		}
		if cr.cold != nil {
			st := &ks.cold[cr.idx]
			if !st.seen || now.Sub(st.last) >= cr.cold.Idle {
				st.episode, st.left = now, cr.cold.Requests
			}
			st.seen, st.last = true, now
			if !decided && st.left > 0 && now.Sub(st.episode) < cr.cold.Within {
				st.left--
				p.Error, p.ErrorMessage = cr.coldCode, cr.cold.Message
				p.Rule, decided = cr.name, true
			}
		}
		for i := range cr.errors {
			e := &cr.errors[i]
			if u := ks.rng.Float64(); !decided && u < e.p {
				p.Error, p.ErrorMessage = e.code, e.message
				p.Rule, decided = cr.name, true
			}
		}
		if cr.refuse > 0 {
			if u := ks.rng.Float64(); !decided && u < cr.refuse {
				p.Refuse, p.Rule, decided = true, cr.name, true
			}
		}
		if cr.hang > 0 {
			if u := ks.rng.Float64(); !decided && u < cr.hang {
				p.Hang, p.Rule, decided = true, cr.name, true
			}
		}
		if l := &cr.latency; l.Fixed > 0 || l.Jitter > 0 {
			u := ks.rng.Float64()
			var jitter time.Duration
			if l.Jitter > 0 {
				jitter = time.Duration(ks.rng.Uint64N(uint64(l.Jitter) + 1))
			}
			if u < l.Probability {
				p.Latency = addSat(addSat(p.Latency, l.Fixed), jitter)
				if latencyRule == "" {
					latencyRule = cr.name
				}
			}
		}
		for i := range cr.stream {
			f := &cr.stream[i]
			if u := ks.rng.Float64(); !decided && u < f.p && (streaming || !f.streamOnly) {
				p.MidStream, p.Rule, decided = f.ms, cr.name, true
			}
		}
	}
	if p.Rule == "" {
		p.Rule = latencyRule
	}
	return p
}

// addSat adds two non-negative durations, stopping at the largest one
// rather than overflowing.
func addSat(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// maxKeys caps how many (model, region) pairs an Injector keeps a random
// stream and cold-start state for: a real run uses a handful, and a client
// inventing model ids or regions must not grow it without bound. Pairs
// beyond it share one state (see Injector).
const maxKeys = 1024

// compiled is a Scenario made ready for planning.
type compiled struct {
	s     *Scenario
	rules []*crule
	keys  atomic.Pointer[map[key]*keyState]
	// shared is the state of the pairs beyond maxKeys: it holds every rule,
	// matched against model and region at each request.
	shared *keyState
	// denyNames name the denials in plans: "deny[i]".
	denyNames []string
	// jobHits counts the creates each job fault has answered (JobFault.Times).
	jobHits []atomic.Int64
}

type key struct{ model, region string }

// crule is a Rule with its codes resolved and its faults preallocated, so
// planning allocates nothing.
type crule struct {
	idx               int
	name              string
	model, region, op string // patterns, "" made "*"
	tier              string // "" for every tier
	from, to          time.Duration
	errors            []cerror
	refuse, hang      float64
	latency           Latency
	stream            []cstream
	outages           []coutage
	cold              *ColdStart
	coldCode          string
}

type cerror struct {
	code, message string
	p             float64
}

type cstream struct {
	ms         *fault.MidStream
	p          float64
	streamOnly bool // applies to event streams only
}

type coutage struct {
	from, to      time.Duration
	refuse, hang  bool
	code, message string
}

// keyState is the planning state of one (model, region).
type keyState struct {
	// byOp holds the rules that apply, per operation index; other holds the
	// rules matching model and region, for operations outside Operations.
	// Both are fixed when the keyState is made.
	byOp  [numOps][]*crule
	other []*crule

	mu   sync.Mutex // guards rng and cold
	rng  *rand.Rand
	cold []coldState // by crule.idx

	// shared is set on the state of the pairs beyond maxKeys, whose rules
	// are matched at each request.
	shared bool
}

type coldState struct {
	seen    bool
	last    time.Time // last request
	episode time.Time // first request after the last idle period
	left    int       // rejections left in the episode
}

const numOps = 5

func opIndex(op string) int {
	switch op {
	case "converse":
		return 0
	case "converse-stream":
		return 1
	case "invoke":
		return 2
	case "invoke-with-response-stream":
		return 3
	case "count-tokens":
		return 4
	}
	return -1
}

func orStar(p string) string {
	if p == "" {
		return "*"
	}
	return p
}

// canonical returns the catalog's spelling of code, or code itself.
func canonical(code string) string {
	if e, ok := catalog.Lookup(code); ok {
		return e.Code
	}
	return code
}

func compile(s *Scenario) *compiled {
	if s == nil {
		s = &Scenario{}
	}
	c := &compiled{s: s, jobHits: jobHitCounts(s)}
	for i := range s.Deny {
		c.denyNames = append(c.denyNames, fmt.Sprintf("deny[%d]", i))
	}
	for i := range s.Rules {
		r := &s.Rules[i]
		cr := &crule{
			idx: i, name: r.Name,
			model: orStar(r.Model), region: orStar(r.Region), op: orStar(r.Operation), tier: r.Tier,
			from: r.From, to: r.To,
			refuse: r.Refuse, hang: r.Hang, latency: r.Latency,
			cold: r.ColdStart,
		}
		for _, e := range r.Errors {
			cr.errors = append(cr.errors, cerror{code: canonical(e.Code), message: e.Message, p: e.Probability})
		}
		for _, f := range r.Stream {
			ms := &fault.MidStream{Kind: f.Kind, After: f.After, Message: f.Message}
			if f.Code != "" {
				ms.Code = canonical(f.Code)
			}
			only := f.Kind == fault.Exception || f.Kind == fault.ErrorFrame || f.Kind == fault.Corrupt
			cr.stream = append(cr.stream, cstream{ms: ms, p: f.Probability, streamOnly: only})
		}
		for _, o := range r.Outages {
			co := coutage{from: o.From, to: o.To, message: o.Message}
			ans, err := checkAnswer(o.Answer)
			if err != nil {
				ans = o.Answer
			}
			switch ans {
			case AnswerRefuse:
				co.refuse = true
			case AnswerHang:
				co.hang = true
			default:
				co.code = ans
			}
			cr.outages = append(cr.outages, co)
		}
		if r.ColdStart != nil {
			cr.coldCode = canonical("ModelNotReadyException")
		}
		c.rules = append(c.rules, cr)
	}
	empty := map[key]*keyState{}
	c.keys.Store(&empty)
	c.shared = &keyState{other: c.rules, cold: make([]coldState, len(c.rules)), shared: true}
	return c
}

// keyState returns the state of (model, region) under c, making it on
// first use. The map is copied on write, so the lookup takes no lock.
func (in *Injector) keyState(c *compiled, model, region string) *keyState {
	k := key{model, region}
	if ks, ok := (*c.keys.Load())[k]; ok {
		return ks
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	cur := *c.keys.Load()
	if ks, ok := cur[k]; ok {
		return ks
	}
	if len(cur) >= maxKeys {
		if c.shared.rng == nil {
			c.shared.rng = rand.New(rand.NewPCG(in.seed, 0))
		}
		return c.shared
	}
	h := fnv.New64a()
	h.Write([]byte(model))
	h.Write([]byte{0})
	h.Write([]byte(region))
	ks := &keyState{
		rng:  rand.New(rand.NewPCG(in.seed, h.Sum64())),
		cold: make([]coldState, len(c.rules)),
	}
	for _, cr := range c.rules {
		if !glob.Match(cr.model, model) || !glob.Match(cr.region, region) {
			continue
		}
		ks.other = append(ks.other, cr)
		for i, op := range Operations {
			if glob.Match(cr.op, op) {
				ks.byOp[i] = append(ks.byOp[i], cr)
			}
		}
	}
	next := make(map[key]*keyState, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[k] = ks
	c.keys.Store(&next)
	return ks
}
