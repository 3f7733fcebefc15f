package emulator_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
)

// The official SDK client talks to an in-process emulator like to Bedrock:
// only the endpoint differs, and any credentials do.
func Example() {
	emu, err := emulator.Start(emulator.Options{Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer emu.Close()

	client := bedrockruntime.New(bedrockruntime.Options{
		Region:       "us-west-2", // the emulator serves the region the request is signed for
		BaseEndpoint: aws.String(emu.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "any-secret", ""),
	})
	out, err := client.Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId: aws.String("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
		Messages: []types.Message{{Role: types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "Hello!"}}}},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(12)},
	})
	if err != nil {
		log.Fatal(err)
	}
	text := out.Output.(*types.ConverseOutputMemberMessage).Value.Content[0].(*types.ContentBlockMemberText).Value
	fmt.Printf("%q\n", text)
	fmt.Println(out.StopReason, *out.Usage.InputTokens, *out.Usage.OutputTokens)
	// Output:
	// "We two reason often after later up all"
	// max_tokens 2 12
}

// A Planner makes the emulator misbehave; here every request is throttled,
// and the SDK returns its typed error.
func Example_planner() {
	emu, err := emulator.Start(emulator.Options{
		Planner: func(r fault.Request) fault.Plan {
			return fault.Plan{Error: "ThrottlingException"}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer emu.Close()

	client := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String(emu.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""), RetryMaxAttempts: 1})
	_, err = client.Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId: aws.String("anthropic.claude-3-haiku-20240307-v1:0"),
		Messages: []types.Message{{Role: types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "Hello!"}}}},
	})
	var throttled *types.ThrottlingException
	fmt.Println(errors.As(err, &throttled), throttled.ErrorMessage())
	// Output:
	// true Too many tokens, please wait before trying again.
}
