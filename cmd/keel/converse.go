package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/config"
)

func init() {
	register(command{name: "converse", summary: "send one prompt through keel's engine and print the reply", run: runConverse})
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type converseFlags struct {
	model, prompt, system, region, endpoint, configFile string
	fallbacks                                           multiFlag
	maxTokens                                           int
	temperature                                         float64 // -1: the model's
	timeout                                             time.Duration
	jsonOut, logs, emulated, stream                     bool
	scenario                                            string
	seed                                                int64
	cache                                               keel.CacheMode // --cache: this call's use of the response cache
}

func runConverse(args []string, stdout, stderr io.Writer) int {
	var f converseFlags
	fs := flag.NewFlagSet("keel converse", flag.ContinueOnError)
	// A word in backquotes is the flag's argument name in the help
	// (flag.UnquoteUsage): only placeholders are quoted.
	fs.StringVar(&f.model, "model", "", "model id, inference profile id or ARN `ID` (required)")
	fs.StringVar(&f.prompt, "prompt", "", "the user message `TEXT` (required; - reads standard input)")
	fs.StringVar(&f.system, "system", "", "an optional system prompt `TEXT`")
	fs.StringVar(&f.region, "region", "", "`REGION` of the first target (default: the config file's, else AWS_REGION, else us-east-1)")
	fs.StringVar(&f.endpoint, "endpoint", "", "a Bedrock-compatible base `URL`, such as the address keel emulate listens on (fake credentials are fine)")
	fs.Var(&f.fallbacks, "fallback", "a fallback target `MODEL[@REGION]`, tried in order (repeatable)")
	fs.BoolVar(&f.emulated, "emulator", false, "start keel emulate in-process and send the prompt there (no AWS account needed)")
	fs.StringVar(&f.scenario, "scenario", "", "with --emulator: a scenario `FILE` that makes the emulator misbehave")
	fs.Int64Var(&f.seed, "seed", 1, "with --emulator: the emulator's seed `N`")
	fs.StringVar(&f.configFile, "config", "", "a keel YAML configuration `FILE`")
	fs.IntVar(&f.maxTokens, "max-tokens", 0, "maximum output tokens `N` (default: the model's)")
	f.temperature = -1
	fs.Func("temperature", "sampling temperature `T`, 0 or more (default: the model's)", func(v string) error {
		t, err := strconv.ParseFloat(v, 64)
		if err != nil || t < 0 {
			return fmt.Errorf("want a number, 0 or more, got %q", v)
		}
		f.temperature = t
		return nil
	})
	fs.Func("cache", "this call's use of the response cache of --config: `MODE` bypass (neither read nor written) or refresh (go upstream and replace the stored reply)", func(v string) error {
		m, ok := cacheModes[v]
		if !ok {
			return fmt.Errorf("want bypass or refresh, got %q", v)
		}
		f.cache = m
		return nil
	})
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "give up after this long `D`, retries and fallbacks included")
	fs.BoolVar(&f.jsonOut, "json", false, "print the reply, usage, attempt history and the quota governor's view of each target as JSON (docs/json.md)")
	fs.BoolVar(&f.logs, "log", false, "write keel's JSON logs (one line per attempt and outcome) to stderr")
	fs.BoolVar(&f.stream, "stream", false, "use ConverseStream: print the reply as it arrives, then the attempts and resumes (stderr)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: keel converse --model ID --prompt TEXT [--region R] [--endpoint URL | --emulator [--scenario FILE]] [--fallback ID[@REGION] ...] [--config FILE [--cache bypass|refresh]] [--stream] [--json]\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keel converse: unexpected argument %q (quote the prompt and pass it with --prompt)\n", fs.Arg(0))
		return 2
	}
	if f.model == "" || f.prompt == "" {
		fmt.Fprintln(stderr, "keel converse: --model and --prompt are required")
		fs.Usage()
		return 2
	}
	if f.prompt == "-" {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			fmt.Fprintf(stderr, "keel converse: reading the prompt from standard input: %v\n", err)
			return 2
		}
		f.prompt = string(b)
	}
	if f.maxTokens < 0 {
		fmt.Fprintf(stderr, "keel converse: --max-tokens must be positive, got %d\n", f.maxTokens)
		return 2
	}
	if f.emulated && f.endpoint != "" {
		fmt.Fprintln(stderr, "keel converse: --emulator and --endpoint both name where to send; choose one")
		return 2
	}
	if f.scenario != "" && !f.emulated {
		fmt.Fprintln(stderr, "keel converse: --scenario needs --emulator")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	if f.emulated {
		s, err := buildEmulator(emulateConfig{scenario: f.scenario, seed: f.seed, region: "us-east-1"})
		if err != nil {
			fmt.Fprintf(stderr, "keel converse: starting the emulator: %v\n", err)
			return 2
		}
		rn, err := s.Listen("127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(stderr, "keel converse: starting the emulator: %v\n", err)
			return 2
		}
		defer rn.Close()
		f.endpoint = rn.URL
	}
	client, k, err := converseClient(ctx, &f, stderr)
	if err != nil {
		if f.jsonOut {
			// A script asked for JSON: a setup failure (no credentials, a
			// bad config file) is a JSON error document too.
			reportFailure(err, nil, true, stdout, stderr)
			return 2
		}
		fmt.Fprintf(stderr, "keel converse: %v\n", err)
		return 2
	}
	if f.cache != keel.CacheDefault {
		if _, on := k.Cache(ctx); !on {
			fmt.Fprintln(stderr, "keel converse: --cache needs a response cache: set cache.mode in the --config file (docs/cache.md)")
			return 2
		}
		ctx = keel.WithCache(ctx, f.cache)
	}
	in := &bedrockruntime.ConverseInput{
		ModelId:  aws.String(f.model),
		Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: f.prompt}}}},
	}
	if f.system != "" {
		in.System = []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: f.system}}
	}
	if f.maxTokens > 0 || f.temperature >= 0 {
		in.InferenceConfig = &types.InferenceConfiguration{}
		if f.maxTokens > 0 {
			in.InferenceConfig.MaxTokens = aws.Int32(int32(f.maxTokens))
		}
		if f.temperature >= 0 {
			in.InferenceConfig.Temperature = aws.Float32(float32(f.temperature))
		}
	}
	if f.stream {
		return converseStream(ctx, client, k, in, f.jsonOut, stdout, stderr)
	}
	out, err := client.Converse(ctx, in)
	if err != nil {
		return reportFailure(err, k, f.jsonOut, stdout, stderr)
	}
	text := replyText(out)
	rep := keel.ReportOf(out.ResultMetadata)
	if f.jsonOut {
		res := map[string]any{"reply": text, "stopReason": string(out.StopReason), "attempts": attemptsJSON(rep)}
		if out.Usage != nil {
			res["usage"] = map[string]any{"inputTokens": aws.ToInt32(out.Usage.InputTokens), "outputTokens": aws.ToInt32(out.Usage.OutputTokens), "totalTokens": aws.ToInt32(out.Usage.TotalTokens)}
		}
		if rep != nil {
			if rep.Target.Model != "" { // none answered a reply from the cache
				res["target"] = rep.Target.String()
			}
			res["totalMs"] = rep.Total.Milliseconds()
			res["fallbacks"] = rep.Fallbacks
			res["degraded"] = rep.Degraded
		}
		addCache(res, rep)
		addQuota(res, k, rep)
		return writeJSON(stdout, stderr, res, 0)
	}
	fmt.Fprintln(stdout, text)
	switch {
	case rep == nil:
	case fromCache(rep):
		fmt.Fprintf(stderr, "keel: answered from the response cache (%s), %s\n", rep.Cache, rep.Total.Round(time.Millisecond))
	case rep.Sent() > 1 || rep.Fallbacks > 0:
		fmt.Fprintf(stderr, "keel: answered by %s after %d attempt(s), %d fallback(s), %s\n", rep.Target, rep.Sent(), rep.Fallbacks, rep.Total.Round(time.Millisecond))
	}
	return 0
}

// cacheModes are the values of --cache.
var cacheModes = map[string]keel.CacheMode{"bypass": keel.CacheBypass, "refresh": keel.CacheRefresh}

// addCache adds how the response cache served the call to a JSON result,
// when the cache is on.
func addCache(res map[string]any, rep *keel.Report) {
	if rep != nil && rep.Cache != "" {
		res["cache"] = rep.Cache
	}
}

// fromCache reports whether the reply came from the response cache (a
// stored reply, or an identical call's in flight) rather than upstream.
func fromCache(rep *keel.Report) bool {
	return rep.Cache == keel.CacheHit || rep.Cache == keel.CacheCoalesced
}

// converseClient builds the official SDK client with keel plugged in.
func converseClient(ctx context.Context, f *converseFlags, stderr io.Writer) (*bedrockruntime.Client, *keel.Keel, error) {
	// keel.New checks these too, but would name them as Go options.
	if f.region != "" && !config.ValidRegion(f.region) {
		return nil, nil, fmt.Errorf("--region: %q is not a region name such as us-west-2", f.region)
	}
	if u, err := url.Parse(f.endpoint); f.endpoint != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		return nil, nil, fmt.Errorf("--endpoint: %q is not an http(s) URL such as http://127.0.0.1:4000", f.endpoint)
	}
	c := &config.Config{}
	if f.configFile != "" {
		var err error
		if c, err = config.Load(f.configFile); err != nil {
			return nil, nil, err
		}
	}
	if f.endpoint != "" {
		c.Endpoint = f.endpoint
	}
	region := f.region
	if region == "" {
		region = c.Region
	}
	var logger *slog.Logger
	if f.logs {
		logger = newJSONLogger(stderr)
	}
	loadOpts := []func(*awsconfig.LoadOptions) error{awsconfig.WithLogger(sdkLogger(logger))}
	if region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(region))
	}
	fake := credentials.NewStaticCredentialsProvider("KEELFAKEACCESSKEY", "keel-fake-secret", "")
	if f.emulated {
		// The in-process emulator accepts any credentials: never look for real ones.
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(fake))
	}
	if c.Endpoint != "" {
		// A Bedrock-compatible endpoint is not AWS: do not probe the EC2
		// instance metadata service for credentials.
		loadOpts = append(loadOpts, awsconfig.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	cfg, err := loadAWSConfig(ctx, loadOpts...)
	if err != nil {
		return nil, nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if f.region != "" {
		c.Region = f.region
	}
	if c.Endpoint != "" {
		// An emulator or gateway takes any credentials: use fake ones when the
		// environment has none.
		if retrieveCredentials(ctx, cfg.Credentials) != nil {
			cfg.Credentials = fake
		}
	} else if err := retrieveCredentials(ctx, cfg.Credentials); err != nil {
		// Known before any call: not a network error to retry, nor an
		// HTTP status of the metadata service taken for Bedrock's.
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, credentialsUnavailable(err)
	}
	// The file is read again by keel.New: the flags are laid over it as Go
	// options, which win.
	opts := keel.Options{ConfigFile: f.configFile, Region: f.region, Endpoint: f.endpoint, Logger: logger}
	if len(f.fallbacks) > 0 {
		// The flags replace any route the file has for this model.
		rt := keel.Route{Name: "flags", Models: []string{f.model}, Targets: []keel.Target{{Model: f.model, Region: f.region}}}
		for _, fb := range f.fallbacks {
			t, err := config.ParseTarget(fb)
			if err != nil {
				return nil, nil, fmt.Errorf("--fallback: %w", err)
			}
			rt.Targets = append(rt.Targets, keel.Target{Model: t.Model, Region: t.Region})
		}
		opts.Routes = []keel.Route{rt}
	}
	k, err := keel.New(cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	client := bedrockruntime.NewFromConfig(cfg, k.ClientOptions, func(o *bedrockruntime.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
	})
	return client, k, nil
}

func replyText(out *bedrockruntime.ConverseOutput) string {
	msg, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok {
		return ""
	}
	var b strings.Builder
	for _, c := range msg.Value.Content {
		if t, ok := c.(*types.ContentBlockMemberText); ok {
			b.WriteString(t.Value)
		}
	}
	return b.String()
}

type attemptJSON struct {
	Target      string `json:"target"`
	Status      int    `json:"status"`
	Code        string `json:"code,omitempty"`
	RequestID   string `json:"requestId,omitempty"`
	DelayMs     int64  `json:"delayMs"`               // backoff and quota wait before it
	QuotaWaitMs int64  `json:"quotaWaitMs,omitempty"` // the part spent waiting for quota
	QuotaTokens int    `json:"quotaTokens,omitempty"` // what the quota governor held for it
	DurationMs  int64  `json:"durationMs"`
	Skipped     bool   `json:"skipped,omitempty"` // not sent: breaker open, refused by the governor, or a body the fallback's model cannot take (code says which)
	// Adapted lists the changes made to the body for a fallback's model.
	Adapted    []adaptationJSON `json:"adapted,omitempty"`
	Resume     bool             `json:"resume,omitempty"`     // a stream's continuation
	ResumeMode string           `json:"resumeMode,omitempty"` // how it carried the reply so far: prefill or continue-turn
	// OverlapDropped counts the characters a continue-turn continuation
	// repeated from the reply so far, which the reader did not get again.
	OverlapDropped int        `json:"overlapDropped,omitempty"`
	Events         int        `json:"events,omitempty"` // stream events it delivered
	Usage          *usageJSON `json:"usage,omitempty"`  // streams: what it used
}

type adaptationJSON struct {
	Field  string `json:"field"`
	Action string `json:"action"` // translated, dropped or lowered
	From   string `json:"from"`   // the caller's value, as JSON text
	To     string `json:"to,omitempty"`
}

type usageJSON struct {
	InputTokens  int  `json:"inputTokens"`
	OutputTokens int  `json:"outputTokens"`
	Estimated    bool `json:"estimated,omitempty"`
}

func attemptsJSON(rep *keel.Report) []attemptJSON {
	out := []attemptJSON{}
	if rep == nil {
		return out
	}
	for _, a := range rep.Attempts {
		j := attemptJSON{Target: a.Target.String(), Status: a.Status, Code: a.Code, RequestID: a.RequestID,
			DelayMs: a.Delay.Milliseconds(), QuotaWaitMs: a.QuotaWait.Milliseconds(), QuotaTokens: a.QuotaTokens,
			DurationMs: a.Duration.Milliseconds(), Skipped: a.Skipped, Resume: a.Resume, ResumeMode: a.ResumeMode,
			OverlapDropped: a.OverlapDropped, Events: a.Events}
		for _, c := range a.Adaptations {
			j.Adapted = append(j.Adapted, adaptationJSON(c))
		}
		if a.Usage != (keel.Usage{}) {
			j.Usage = &usageJSON{InputTokens: a.Usage.InputTokens, OutputTokens: a.Usage.OutputTokens, Estimated: a.Usage.Estimated}
		}
		out = append(out, j)
	}
	return out
}

// quotaJSON is the quota governor's view of one target a call used.
type quotaJSON struct {
	Target string `json:"target"`
	// LimitTokensPerMinute is the limit in force: the configured quota,
	// the discovered one, or what was learned from throttles; 0 while
	// unknown (nothing limited).
	LimitTokensPerMinute int64 `json:"limitTokensPerMinute"`
	// LimitSource is where the limit comes from: configured, discovered
	// (Service Quotas, quotas.discover) or learned; absent while unknown.
	LimitSource     string `json:"limitSource,omitempty"`
	Learning        bool   `json:"learning"`
	AvailableTokens int64  `json:"availableTokens"`
	InFlightTokens  int64  `json:"inFlightTokens"`
	// Reserved and settled tokens over the last minute, all calls.
	ReservedTokensPerMinute int64 `json:"reservedTokensPerMinute"`
	SettledTokensPerMinute  int64 `json:"settledTokensPerMinute"`
	// OfferedTokensPerMinute is what the calls that asked over the last
	// minute would settle (above the limit: overloaded).
	OfferedTokensPerMinute int64 `json:"offeredTokensPerMinute"`
	// QueueDepth is the calls waiting now, per priority class.
	QueueDepth map[string]int `json:"queueDepth"`
	Throttles  int64          `json:"throttles"`
	// This call's attempts on the target: how long they waited for quota
	// and what the governor held for the last of them.
	WaitedMs   int64 `json:"waitedMs"`
	HeldTokens int   `json:"heldTokens"`
}

// addQuota adds the quota governor's view of the targets rep used to a
// JSON result, when the governor is on.
func addQuota(res map[string]any, k *keel.Keel, rep *keel.Report) {
	if k == nil || rep == nil || !k.QuotaGoverned() {
		return
	}
	var out []quotaJSON
	at := map[string]int{}
	for _, a := range rep.Attempts {
		key := a.Target.String()
		i, seen := at[key]
		if !seen {
			st, ok := k.Quota(a.Target.Model, a.Target.Region)
			if !ok {
				continue
			}
			i = len(out)
			at[key] = i
			out = append(out, quotaJSON{Target: key, LimitTokensPerMinute: st.Limit, LimitSource: st.LimitSource, Learning: st.Learning, AvailableTokens: st.Available,
				InFlightTokens: st.InFlightTokens, ReservedTokensPerMinute: st.ReservedPerMinute, SettledTokensPerMinute: st.SettledPerMinute,
				OfferedTokensPerMinute: st.OfferedPerMinute,
				QueueDepth:             map[string]int{keel.Interactive.String(): st.Classes[keel.Interactive].Queued, keel.Batch.String(): st.Classes[keel.Batch].Queued},
				Throttles:              st.Throttles})
		}
		out[i].WaitedMs += a.QuotaWait.Milliseconds()
		if a.QuotaTokens > 0 {
			out[i].HeldTokens = a.QuotaTokens
		}
	}
	if out != nil {
		res["quota"] = out
	}
}

// reportFailure prints a failed call: the error, the catalog's explanation
// and the attempts; exit code 1.
func reportFailure(err error, k *keel.Keel, jsonOut bool, stdout, stderr io.Writer) int {
	entry, rep, _ := keel.Details(err)
	if entry == nil {
		entry = keel.Explain(err)
	}
	if jsonOut {
		res := map[string]any{"error": map[string]any{"message": err.Error()}, "attempts": attemptsJSON(rep)}
		if entry != nil {
			res["error"] = map[string]any{"message": err.Error(), "explanation": entryJSON(catalogEntry(entry))}
		}
		if rep != nil {
			res["totalMs"] = rep.Total.Milliseconds()
		}
		addCache(res, rep)
		addQuota(res, k, rep)
		return writeJSON(stdout, stderr, res, 1)
	}
	fmt.Fprintf(stderr, "keel converse: %v\n", err)
	if rep != nil && len(rep.Attempts) > 0 {
		fmt.Fprintf(stderr, "\nattempts (%s in all):\n", rep.Total.Round(time.Millisecond))
		for i, a := range rep.Attempts {
			state := fmt.Sprintf("HTTP %d", a.Status)
			if a.Skipped {
				state = "not sent:"
			} else if a.Status == 0 {
				state = "no response"
			}
			fmt.Fprintf(stderr, "  %d. %s  %s %s  after %s, took %s\n", i+1, a.Target, state, a.Code, a.Delay.Round(time.Millisecond), a.Duration.Round(time.Millisecond))
			for _, c := range a.Adaptations {
				fmt.Fprintf(stderr, "     body fitted to it: %s %s %s %s\n", c.Field, c.Action, c.From, c.To)
			}
		}
	}
	if entry != nil {
		fmt.Fprintln(stderr)
		writeExplanation(stderr, catalogEntry(entry))
	}
	return 1
}

// catalogEntry returns the catalog's row for a public entry: every entry
// keel hands out is one of the catalog's, under its canonical code.
func catalogEntry(e *keel.Entry) *catalog.Entry {
	if c, ok := catalog.Lookup(e.Code); ok {
		return c
	}
	return catalog.Must(catalog.CodeUnclassified)
}

func writeJSON(stdout, stderr io.Writer, v any, code int) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "keel: writing JSON: %v\n", err)
		return 1
	}
	return code
}

// newJSONLogger writes keel's structured logs as JSON lines.
func newJSONLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// converseStream sends in with ConverseStream. The reply is printed as it
// arrives (unless jsonOut), then what keel did: attempts, resumes, usage.
// A failure after part of the reply was printed leaves that part standing
// and exits 1 with the error and its explanation.
func converseStream(ctx context.Context, client *bedrockruntime.Client, k *keel.Keel, in *bedrockruntime.ConverseInput, jsonOut bool, stdout, stderr io.Writer) int {
	out, err := client.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{
		ModelId: in.ModelId, Messages: in.Messages, System: in.System, InferenceConfig: in.InferenceConfig})
	if err != nil {
		return reportFailure(err, k, jsonOut, stdout, stderr)
	}
	stream := out.GetStream()
	var text strings.Builder
	var stop string
	var usage *types.TokenUsage
	for ev := range stream.Events() {
		switch v := ev.(type) {
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			if d, ok := v.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
				text.WriteString(d.Value)
				if !jsonOut {
					io.WriteString(stdout, d.Value)
				}
			}
		case *types.ConverseStreamOutputMemberMessageStop:
			stop = string(v.Value.StopReason)
		case *types.ConverseStreamOutputMemberMetadata:
			usage = v.Value.Usage
		}
	}
	stream.Close()
	// The stream has ended: keel's report is complete.
	rep := keel.ReportOf(out.ResultMetadata)
	if err := stream.Err(); err != nil {
		if !jsonOut {
			fmt.Fprintln(stdout)
		}
		return reportStreamFailure(err, k, text.String(), jsonOut, stdout, stderr)
	}
	if jsonOut {
		res := map[string]any{"reply": text.String(), "stopReason": stop, "streamed": true, "attempts": attemptsJSON(rep)}
		if usage != nil {
			res["usage"] = map[string]any{"inputTokens": aws.ToInt32(usage.InputTokens), "outputTokens": aws.ToInt32(usage.OutputTokens), "totalTokens": aws.ToInt32(usage.TotalTokens)}
		}
		if rep != nil {
			if rep.Target.Model != "" { // none answered a reply from the cache
				res["target"] = rep.Target.String()
			}
			res["totalMs"] = rep.Total.Milliseconds()
			res["fallbacks"] = rep.Fallbacks
			res["resumes"] = rep.Resumes
			res["usageEstimated"] = rep.Usage.Estimated
		}
		addCache(res, rep)
		addQuota(res, k, rep)
		return writeJSON(stdout, stderr, res, 0)
	}
	fmt.Fprintln(stdout)
	if rep != nil && fromCache(rep) {
		fmt.Fprintf(stderr, "keel: streamed from the response cache (%s), %s", rep.Cache, rep.Total.Round(time.Millisecond))
		if usage != nil {
			fmt.Fprintf(stderr, "; %d input + %d output tokens, as stored", aws.ToInt32(usage.InputTokens), aws.ToInt32(usage.OutputTokens))
		}
		fmt.Fprintln(stderr)
	} else if rep != nil {
		fmt.Fprintf(stderr, "keel: streamed by %s: %d attempt(s), %d resume(s), %d fallback(s), %s", rep.Target, rep.Sent(), rep.Resumes, rep.Fallbacks, rep.Total.Round(time.Millisecond))
		if usage != nil {
			fmt.Fprintf(stderr, "; %d input + %d output tokens", aws.ToInt32(usage.InputTokens), aws.ToInt32(usage.OutputTokens))
			if rep.Resumes > 0 {
				fmt.Fprint(stderr, " over all attempts")
			}
		}
		fmt.Fprintln(stderr)
	}
	return 0
}

// reportStreamFailure prints a stream that failed after part of its reply:
// what arrived stands (it is on stdout already, or in the JSON), then the
// error as for any failed call.
func reportStreamFailure(err error, k *keel.Keel, partial string, jsonOut bool, stdout, stderr io.Writer) int {
	resumes := 0
	var ke *keel.Error
	if errors.As(err, &ke) && ke.Failure() != nil && ke.Failure().Stream != nil {
		resumes = ke.Failure().Stream.Resumes
	}
	if jsonOut {
		entry, rep, _ := keel.Details(err)
		if entry == nil {
			entry = keel.Explain(err)
		}
		res := map[string]any{"reply": partial, "streamed": true, "complete": false, "resumes": resumes,
			"error": map[string]any{"message": err.Error(), "explanation": entryJSON(catalogEntry(entry))}, "attempts": attemptsJSON(rep)}
		if rep != nil {
			res["totalMs"] = rep.Total.Milliseconds()
		}
		addQuota(res, k, rep)
		return writeJSON(stdout, stderr, res, 1)
	}
	fmt.Fprintf(stderr, "keel converse: the stream broke after %d characters of the reply, %d resume(s)", len(partial), resumes)
	if ke != nil && ke.Failure() != nil && ke.Failure().GaveUpDetail != "" {
		fmt.Fprintf(stderr, "; %s", ke.Failure().GaveUpDetail)
	}
	fmt.Fprintln(stderr)
	return reportFailure(err, k, false, stdout, stderr)
}
