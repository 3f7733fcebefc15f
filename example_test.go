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
	"github.com/keel-run/keel/internal/config"
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
	k, err := keel.New(cfg, keel.Options{Endpoint: emu.URL, Config: &config.Config{
		Routes: []config.Route{{Models: []string{haiku}, Targets: []config.Target{{Model: haiku, Region: "us-west-2"}}}},
		// Short backoffs keep the example quick; the defaults wait seconds.
		Retry:  config.Retry{ThrottleBase: config.Duration(time.Millisecond), ThrottleCap: config.Duration(2 * time.Millisecond)},
		Quotas: config.Quotas{Disabled: true},
	}})
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
	// Output:
	// true true
	// ThrottlingException throttled 6 attempts
}
