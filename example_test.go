package keel_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
)

const haiku = "anthropic.claude-3-haiku-20240307-v1:0"

// newClient starts an in-process emulator whose us-east-1 always throttles
// (and whose us-west-2 does too when westToo is set), and returns an SDK
// client with keel plugged in, routing haiku from us-east-1 to us-west-2.
func newClient(westToo bool) (*bedrockruntime.Client, func()) {
	emu, err := emulator.Start(emulator.Options{Seed: 1, Planner: func(r fault.Request) fault.Plan {
		if r.Region == "us-east-1" || westToo {
			return fault.Plan{Error: "ThrottlingException"}
		}
		return fault.Plan{}
	}})
	if err != nil {
		panic(err)
	}
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
	k, err := keel.New(cfg, keel.Options{Endpoint: emu.URL,
		Routes: []keel.Route{{Models: []string{haiku}, Targets: []keel.Target{{Model: haiku, Region: "us-west-2"}}}},
		// Short backoffs keep the example quick; the defaults wait seconds.
		Retry:  keel.RetryOptions{ThrottleBase: time.Millisecond, ThrottleCap: 2 * time.Millisecond},
		Quotas: keel.QuotaOptions{Disabled: true},
	})
	if err != nil {
		panic(err)
	}
	return bedrockruntime.NewFromConfig(cfg, k.ClientOptions), func() { emu.Close() }
}

func converse(client *bedrockruntime.Client) (*bedrockruntime.ConverseOutput, error) {
	return client.Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId:         aws.String(haiku),
		Messages:        []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "Why do ships have keels?"}}}},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(50)},
	})
}

// A call throttled in us-east-1 is retried there, then answered by the
// route's us-west-2; ReportOf tells every attempt.
func Example() {
	client, stop := newClient(false)
	defer stop()
	out, err := converse(client)
	if err != nil {
		panic(err)
	}
	for _, a := range keel.ReportOf(out.ResultMetadata).Attempts {
		fmt.Println(a.Target, a.Status, a.Code)
	}
	// Output:
	// anthropic.claude-3-haiku-20240307-v1:0@us-east-1 429 ThrottlingException
	// anthropic.claude-3-haiku-20240307-v1:0@us-east-1 429 ThrottlingException
	// anthropic.claude-3-haiku-20240307-v1:0@us-east-1 429 ThrottlingException
	// anthropic.claude-3-haiku-20240307-v1:0@us-west-2 200
}

// A call that fails everywhere matches keel's sentinel errors and the SDK's
// own types; Details gives the catalog entry and every attempt.
func ExampleDetails() {
	client, stop := newClient(true)
	defer stop()
	_, err := converse(client)
	var throttling *types.ThrottlingException
	fmt.Println(errors.Is(err, keel.ErrThrottled), errors.As(err, &throttling))
	entry, rep, _ := keel.Details(err)
	fmt.Println(entry.Code, entry.Retry, rep.Sent(), "attempts")
	var ke *keel.Error
	if errors.As(err, &ke) {
		fmt.Println("gave up:", ke.Failure().GaveUp)
	}
	// Output:
	// true true
	// ThrottlingException throttled 6 attempts
	// gave up: attempts exhausted
}

// A route configured in Go: Claude 3 Haiku's calls fall back to Claude
// 3.5 Haiku in us-west-2 when Haiku cannot serve them (here us-east-1 has
// no capacity for it).
func ExampleRoute() {
	const fallback = "anthropic.claude-3-5-haiku-20241022-v1:0"
	emu, err := emulator.Start(emulator.Options{Seed: 1, Planner: func(r fault.Request) fault.Plan {
		if r.Model == haiku {
			return fault.Plan{Error: "ServiceUnavailableException"}
		}
		return fault.Plan{}
	}})
	if err != nil {
		panic(err)
	}
	defer emu.Close()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
	k, err := keel.New(cfg, keel.Options{Endpoint: emu.URL,
		Routes: []keel.Route{{Name: "haiku", Models: []string{haiku},
			Targets: []keel.Target{{Model: fallback, Region: "us-west-2"}}}},
		// One attempt per target: fall back at once.
		Retry: keel.RetryOptions{MaxAttempts: 1},
	})
	if err != nil {
		panic(err)
	}
	out, err := converse(bedrockruntime.NewFromConfig(cfg, k.ClientOptions))
	if err != nil {
		panic(err)
	}
	rep := keel.ReportOf(out.ResultMetadata)
	for _, a := range rep.Attempts {
		if a.Code != "" {
			fmt.Println(a.Target, a.Status, a.Code)
		} else {
			fmt.Println(a.Target, a.Status)
		}
	}
	fmt.Println("answered by", rep.Target, "after", rep.Fallbacks, "fallback")
	// Output:
	// anthropic.claude-3-haiku-20240307-v1:0@us-east-1 503 ServiceUnavailableException
	// anthropic.claude-3-5-haiku-20241022-v1:0@us-west-2 200
	// answered by anthropic.claude-3-5-haiku-20241022-v1:0@us-west-2 after 1 fallback
}

// Calls made with a Batch context queue behind Interactive ones in the
// quota governor; Keel.Quota shows the classes' figures.
func ExampleWithPriority() {
	emu, err := emulator.Start(emulator.Options{Seed: 1})
	if err != nil {
		panic(err)
	}
	defer emu.Close()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")}
	k, err := keel.New(cfg, keel.Options{Endpoint: emu.URL,
		Quotas: keel.QuotaOptions{Targets: []keel.Quota{{Model: haiku, TokensPerMinute: 200_000}}}})
	if err != nil {
		panic(err)
	}
	client := bedrockruntime.NewFromConfig(cfg, k.ClientOptions)
	ctx := keel.WithPriority(context.Background(), keel.Batch)
	if _, err := client.Converse(ctx, &bedrockruntime.ConverseInput{
		ModelId:         aws.String(haiku),
		Messages:        []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "Summarise this log line."}}}},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(50)},
	}); err != nil {
		panic(err)
	}
	st, _ := k.Quota(haiku, "us-east-1")
	for _, p := range []keel.Priority{keel.Interactive, keel.Batch} {
		fmt.Println(p, "admitted:", st.Classes[p].Admitted)
	}
	fmt.Println("limit:", st.Limit, "tokens/min")
	// Output:
	// interactive admitted: 0
	// batch admitted: 1
	// limit: 200000 tokens/min
}
