package quotas_test

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"

	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/quotas"
)

// Reading the quota each target draws on, from an emulator whose quota
// table limits Claude Sonnet 4.5's cross-region and global profiles. A
// caller with several targets lists once and picks for each.
func ExampleFor() {
	rn, _ := emulator.Start(emulator.Options{Quota: func(model, region string) (int64, int64) {
		switch model {
		case "us.anthropic.claude-sonnet-4-5-20250929-v1:0":
			return 200_000, 0
		case "global.anthropic.claude-sonnet-4-5-20250929-v1:0":
			return 500_000, 0
		}
		return 0, 0
	}})
	defer rn.Close()
	client := servicequotas.New(servicequotas.Options{Region: "us-west-2", BaseEndpoint: aws.String(rn.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})

	qs, err := quotas.List(context.Background(), client)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, id := range []string{"us.anthropic.claude-sonnet-4-5-20250929-v1:0", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "amazon.nova-lite-v1:0"} {
		q := quotas.For(qs, id).TokensPerMinute
		fmt.Printf("%s: %s %d (%s)\n", id, quotas.KindOf(id), q.Int(), q.Name)
	}
	// Output:
	// us.anthropic.claude-sonnet-4-5-20250929-v1:0: cross-region 200000 (Cross-Region InvokeModel tokens per minute for Anthropic Claude Sonnet 4.5)
	// global.anthropic.claude-sonnet-4-5-20250929-v1:0: global 500000 (Global cross-Region InvokeModel tokens per minute for Anthropic Claude Sonnet 4.5)
	// amazon.nova-lite-v1:0: on-demand 0 ()
}
