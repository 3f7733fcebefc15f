package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/scenario"
)

// DefaultTiersModel is the model of the tiers bench: a current Claude model
// Bedrock serves on the priority and flex tiers as well as the default.
const DefaultTiersModel = "us.anthropic.claude-sonnet-4-6"

// Defaults of TiersConfig: a run of well under a minute.
const (
	// defaultTiersThrottle is the share of default-tier calls the storm
	// throttles: hard enough that three attempts on default often fail.
	defaultTiersThrottle = 0.9
	// defaultFlexLatency is what the emulator adds to a flex call: flex is
	// served after the other tiers, so it is slower under load.
	defaultFlexLatency = 500 * time.Millisecond
)

// tiersContenders are keel with and without a route step to the flex tier,
// every call of Batch priority; and keel without the step or the quota
// governor, whose retries alone face the storm.
var tiersContenders = []Contender{
	{Name: "no-tier-fallback", Description: "official SDK client + keel, defaults; calls of Batch priority on the default tier",
		client: tieredClient(false, false)},
	{Name: "flex-fallback", Description: "the same with a route step MODEL (tier flex, Batch calls only) after the call's own target",
		client: tieredClient(true, false)},
	{Name: "no-fallback-ungoverned", Description: "keel without the step and with the quota governor off: retries alone",
		client: tieredClient(false, true)},
}

func tieredClient(flex, ungoverned bool) func(context.Context, Endpoint) (*bedrockruntime.Client, error) {
	return func(_ context.Context, e Endpoint) (*bedrockruntime.Client, error) {
		cfg := awsConfig(e)
		o := keel.Options{Endpoint: e.URL}
		o.Quotas.Disabled = ungoverned
		if flex {
			o.Routes = []keel.Route{{Name: "tiers", Models: []string{e.Model},
				Targets: []keel.Target{{Model: e.Model, Region: e.Region, Tier: keel.TierFlex, Priority: new(keel.Batch)}}}}
		}
		k, err := keel.New(cfg, o)
		if err != nil {
			return nil, err
		}
		return bedrockruntime.NewFromConfig(cfg, k.ClientOptions, func(o *bedrockruntime.Options) { o.BaseEndpoint = aws.String(e.URL) }), nil
	}
}

// TiersConfig configures a tiers bench. The zero value of each field means
// its default.
type TiersConfig struct {
	// Duration is how long calls arrive for. Zero: 20 s.
	Duration time.Duration
	// Rate is the mean arrival rate, calls per second, of a Poisson
	// stream. Zero: 4.
	Rate float64
	// Deadline bounds each call from its arrival. Zero: 15 s.
	Deadline time.Duration
	// MaxTokens is every call's max tokens. Zero: 200.
	MaxTokens int
	// Throttle is the share of calls on the default tier the emulator
	// throttles (ThrottlingException). Zero: 0.9; it must be below 1.
	Throttle float64
	// FlexLatency is added to every call on the flex tier. Zero: 500 ms.
	FlexLatency time.Duration
	// Speed scales the emulated model's latency (1 is real time). Zero: 0.1.
	Speed float64
	// Seed draws the arrivals, the prompts, the replies and the throttles.
	Seed int64
	// Model is the model every call names; it must offer the flex tier.
	// Empty: DefaultTiersModel.
	Model string
}

func (c TiersConfig) withDefaults() TiersConfig {
	c.Duration = cmp.Or(c.Duration, 20*time.Second)
	c.Rate = cmp.Or(c.Rate, 4)
	c.Deadline = cmp.Or(c.Deadline, 15*time.Second)
	c.MaxTokens = cmp.Or(c.MaxTokens, 200)
	c.Throttle = cmp.Or(c.Throttle, defaultTiersThrottle)
	c.FlexLatency = cmp.Or(c.FlexLatency, defaultFlexLatency)
	c.Speed = cmp.Or(c.Speed, 0.1)
	c.Model = cmp.Or(c.Model, DefaultTiersModel)
	return c
}

// CheckTiers reports what is wrong with cfg, as RunTiers would, without
// running anything.
func CheckTiers(cfg TiersConfig) error {
	_, _, err := checkTiers(cfg)
	return err
}

func checkTiers(cfg TiersConfig) (TiersConfig, Model, error) {
	cfg = cfg.withDefaults()
	m, err := checkArrivals(OutageConfig{Duration: cfg.Duration, Rate: cfg.Rate, Deadline: cfg.Deadline, Speed: cfg.Speed,
		Model: cfg.Model, MaxTokens: cfg.MaxTokens})
	switch {
	case err != nil:
		return cfg, Model{}, err
	case math.IsNaN(cfg.Throttle) || cfg.Throttle < 0 || cfg.Throttle >= 1:
		return cfg, Model{}, fmt.Errorf("bench: throttle %v: want a share from 0 to below 1", cfg.Throttle)
	case cfg.FlexLatency < 0 || cfg.FlexLatency > MaxDeadline:
		return cfg, Model{}, fmt.Errorf("bench: flex latency %s: want from 0 to %s", cfg.FlexLatency, MaxDeadline)
	case !slices.Contains(m.Base.ServiceTiers, bedrock.TierFlex):
		return cfg, Model{}, fmt.Errorf("bench: model %s does not offer the flex tier; try %s", m.ID, DefaultTiersModel)
	}
	return cfg, m, nil
}

// TiersScenario is the throttle storm of a tiers bench: the default tier
// throttles a share of calls, the flex tier serves them a little slower.
func TiersScenario(throttle float64, flexLatency time.Duration) *scenario.Scenario {
	s := &scenario.Scenario{Description: "a throttle storm on the default tier; flex has room",
		Rules: []scenario.Rule{
			{Name: "default-storm", Tier: bedrock.TierDefault,
				Errors: []scenario.ErrorFault{{Code: catalog.CodeThrottling, Probability: throttle}}},
		}}
	if flexLatency > 0 {
		s.Rules = append(s.Rules, scenario.Rule{Name: "flex-slower", Tier: bedrock.TierFlex,
			Latency: scenario.Latency{Fixed: flexLatency, Probability: 1}})
	}
	return s
}

// TiersResult is what a tiers bench measured.
type TiersResult struct {
	Model       string        `json:"model"`
	Throttle    float64       `json:"defaultTierThrottleShare"`
	FlexLatency time.Duration `json:"-"`
	Rate        float64       `json:"ratePerSecond"`
	Calls       int           `json:"calls"`
	MaxTokens   int           `json:"maxTokens"`
	Seed        int64         `json:"seed"`
	Speed       float64       `json:"speed"`
	Duration    time.Duration `json:"-"`
	Deadline    time.Duration `json:"-"`
	Wall        time.Duration `json:"-"`
	Contenders  []TierOutcome `json:"contenders"`
}

// TierOutcome is one contender's measures.
type TierOutcome struct {
	Name      string `json:"name"`
	Calls     int    `json:"calls"`
	Completed int    `json:"completed"`
	Failed    int    `json:"failed"`
	// Failures counts failed calls by cause (a catalog code, "deadline").
	Failures map[string]int `json:"failures"`
	// Goodput is completed calls per second of arrivals.
	Goodput float64 `json:"goodputPerSecond"`
	// Throttles counts attempts Bedrock throttled; Attempts counts the
	// attempts sent.
	Throttles int `json:"throttles"`
	Attempts  int `json:"attempts"`
	// ViaFlex is the share of completed calls the flex tier served.
	ViaFlex float64 `json:"servedByFlex"`
	// P50, P99 and Max are the latency of completed calls, arrival to reply.
	P50, P99, Max time.Duration `json:"-"`
}

// MarshalJSON writes durations in milliseconds.
func (o TierOutcome) MarshalJSON() ([]byte, error) {
	type plain TierOutcome
	return json.Marshal(struct {
		plain
		P50 int64 `json:"p50Ms"`
		P99 int64 `json:"p99Ms"`
		Max int64 `json:"maxMs"`
	}{plain(o), o.P50.Milliseconds(), o.P99.Milliseconds(), o.Max.Milliseconds()})
}

// MarshalJSON writes durations in milliseconds.
func (r *TiersResult) MarshalJSON() ([]byte, error) {
	type plain TiersResult
	return json.Marshal(struct {
		*plain
		FlexLatency int64 `json:"flexLatencyMs"`
		Duration    int64 `json:"durationMs"`
		Deadline    int64 `json:"deadlineMs"`
		Wall        int64 `json:"wallMs"`
	}{(*plain)(r), r.FlexLatency.Milliseconds(), r.Duration.Milliseconds(), r.Deadline.Milliseconds(), r.Wall.Milliseconds()})
}

// tierCall is what happened to one call.
type tierCall struct {
	done, ok  bool
	latency   time.Duration
	failure   string
	flex      bool // the flex tier answered
	attempts  int
	throttles int
}

// RunTiers runs a tiers bench: the contenders at once, each against its
// own emulator playing the same throttle storm, offered the same calls of
// Batch priority at the same moments. It returns when every call has
// completed or failed (at most Duration + Deadline), or with ctx's error.
func RunTiers(ctx context.Context, cfg TiersConfig) (*TiersResult, error) {
	cfg, m, err := checkTiers(cfg)
	if err != nil {
		return nil, err
	}
	calls := outageCalls(OutageConfig{Seed: cfg.Seed, Rate: cfg.Rate, Duration: cfg.Duration, MaxTokens: cfg.MaxTokens})
	sc := TiersScenario(cfg.Throttle, cfg.FlexLatency)
	arenas, err := startArenas[tierCall](ctx, sc, tiersContenders, cfg.Seed, cfg.Speed,
		Endpoint{Model: m.ID, Region: m.Region, Deadline: cfg.Deadline}, len(calls))
	defer closeArenas(arenas)
	if err != nil {
		return nil, err
	}
	start := arenas[0].in.Start()
	var sent atomic.Int64
	playArenas(ctx, arenas, calls, func(a *scenarioArena[tierCall], c Call, arrived time.Time) tierCall {
		defer sent.Add(1)
		return tierSend(ctx, a.client, arrived, c, m.ID, cfg.Deadline)
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n := int(sent.Load()); n != len(calls)*len(arenas) {
		return nil, errors.New("bench: the run ended before every call was sent")
	}
	res := &TiersResult{Model: m.ID, Throttle: cfg.Throttle, FlexLatency: cfg.FlexLatency, Rate: cfg.Rate, Calls: len(calls),
		MaxTokens: cfg.MaxTokens, Seed: cfg.Seed, Speed: cfg.Speed, Duration: cfg.Duration, Deadline: cfg.Deadline, Wall: time.Since(start)}
	for _, a := range arenas {
		res.Contenders = append(res.Contenders, tierOutcome(a.c.Name, a.results, cfg.Duration))
	}
	return res, nil
}

// tierSend sends one call of Batch priority and reads keel's report of it.
func tierSend(ctx context.Context, client *bedrockruntime.Client, arrived time.Time, c Call, model string, deadline time.Duration) tierCall {
	ctx, cancel := context.WithDeadline(keel.WithPriority(ctx, keel.Batch), arrived.Add(deadline))
	defer cancel()
	out, err := client.Converse(ctx, &bedrockruntime.ConverseInput{
		ModelId:         aws.String(model),
		Messages:        []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: c.Prompt}}}},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(int32(c.MaxTokens))},
	})
	r := tierCall{done: true, latency: time.Since(arrived)}
	var rep *keel.Report
	if err == nil {
		r.ok = true
		rep = keel.ReportOf(out.ResultMetadata)
		r.flex = out.ServiceTier != nil && out.ServiceTier.Type == types.ServiceTierTypeFlex
	} else {
		r.failure = failureOf(ctx, err)
		_, rep, _ = keel.Details(err)
	}
	if rep != nil {
		for _, a := range rep.Attempts {
			if !a.Skipped {
				r.attempts++
			}
			if a.Code == catalog.CodeThrottling {
				r.throttles++
			}
		}
	}
	return r
}

func tierOutcome(name string, calls []tierCall, d time.Duration) TierOutcome {
	o := TierOutcome{Name: name, Calls: len(calls), Failures: map[string]int{}}
	var lat []time.Duration
	for _, c := range calls {
		o.Attempts += c.attempts
		o.Throttles += c.throttles
		switch {
		case c.ok:
			o.Completed++
			lat = append(lat, c.latency)
			if c.flex {
				o.ViaFlex++
			}
		default:
			o.Failed++
			o.Failures[cmp.Or(c.failure, "not sent")]++
		}
	}
	slices.Sort(lat)
	o.P50, o.P99 = percentile(lat, 50), percentile(lat, 99)
	if n := len(lat); n > 0 {
		o.Max = lat[n-1]
		o.ViaFlex /= float64(n)
	}
	o.Goodput = float64(o.Completed) / d.Seconds()
	return o
}

// WriteTable prints the result as a table, a row per contender, under a
// line that says what was run.
func (r *TiersResult) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "keel bench tiers: %s, %.0f%% of default-tier calls throttled, flex +%s, every call of Batch priority\n",
		r.Model, 100*r.Throttle, r.FlexLatency)
	fmt.Fprintf(w, "%d calls over %s (Poisson, %g a second), max tokens %d, deadline %s per call, seed %d, model latency x%g, run took %s\n\n",
		r.Calls, r.Duration, r.Rate, r.MaxTokens, r.Deadline, r.Seed, r.Speed, r.Wall.Round(100*time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "contender\tcalls\tcompleted\tfailed\tgoodput/s\tvia flex\tattempts\tthrottles\tp50\tp99\tmax\t\n")
	for _, c := range r.Contenders {
		some := c.Completed > 0
		via := "-"
		if some {
			via = fmt.Sprintf("%.0f%%", 100*c.ViaFlex)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%s\t%d\t%d\t%s\t%s\t%s\t\n", c.Name, c.Calls, c.Completed, c.Failed, c.Goodput, via,
			c.Attempts, c.Throttles, latency(c.P50, some), latency(c.P99, some), latency(c.Max, some))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nfailed calls by cause:")
	for _, c := range r.Contenders {
		if c.Failed > 0 {
			fmt.Fprintf(w, "  %-22s %s\n", c.Name, failures(c.Failures))
		}
	}
	_, err := fmt.Fprintln(w, "\ngoodput: completed calls per second of arrivals. latency: arrival to reply, completed calls only.\n"+
		"throttles: attempts answered ThrottlingException; attempts: attempts sent, on any tier.")
	return err
}
