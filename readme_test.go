package keel_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/keel-run/keel"
)

// The Go snippets of README.md and docs/policies.md, compiled: each
// ```go block there must appear here, line for line (indentation aside);
// TestDocGoSnippets checks it.

func readmeUse(ctx context.Context, input *bedrockruntime.ConverseInput) {
	cfg, err := config.LoadDefaultConfig(ctx)                      // aws-sdk-go-v2/config, as before
	k, err := keel.New(cfg, keel.Options{ConfigFile: "keel.yaml"}) // "" for all defaults
	client := bedrockruntime.NewFromConfig(cfg, k.ClientOptions)   // keel is now the client's HTTP client

	out, err := client.Converse(ctx, input)
	var throttled *types.ThrottlingException
	if errors.As(err, &throttled) {
		// still works: the SDK's typed errors are kept
	}
	if errors.Is(err, keel.ErrThrottled) {
		// or ErrCircuitOpen, ErrNoQuotaBeforeDeadline, ErrOverloaded, ErrAttemptTimeout,
		// ErrResponseTooLarge, ErrBudgetExhausted; context.Canceled when the caller cancelled
	}
	if entry, report, ok := keel.Details(err); ok {
		// entry: the catalog entry; entry.Code is one of the Code constants (keel.CodeThrottlingException, ...),
		// with its status, category, retry class, cause and fix.
		// report.Attempts: every attempt with target, status, code, delay before it, duration; report.Total.
		fmt.Println(entry.Code == keel.CodeThrottlingException, report.Sent(), report.Total)
	}
	var ke *keel.Error
	if errors.As(err, &ke) && ke.Failure() != nil {
		fmt.Println(ke.Failure().GaveUp) // why keel stopped, typed: keel.GaveUpBudgetExhausted, keel.GaveUpDeadline, ...
	}
	if err == nil {
		report := keel.ReportOf(out.ResultMetadata) // also for successful calls
		fmt.Println(report.Target, report.Fallbacks)
	}
}

func policiesInGo(ctx context.Context, cfg aws.Config) (context.Context, *keel.Keel, error) {
	const haiku = "anthropic.claude-3-haiku-20240307-v1:0"
	k, err := keel.New(cfg, keel.Options{
		ConfigFile: "keel.yaml", // optional: a field set here wins over the file's
		Routes: []keel.Route{{Models: []string{haiku},
			Targets: []keel.Target{{Model: haiku, Region: "us-west-2"}}}},
		Retry:   keel.RetryOptions{MaxAttempts: 2, AttemptTimeout: 30 * time.Second},
		Budget:  keel.BudgetOptions{Ratio: 0.2},
		Breaker: keel.BreakerOptions{Cooldown: 10 * time.Second},
		Quotas:  keel.QuotaOptions{Targets: []keel.Quota{{Model: haiku, TokensPerMinute: 400_000}}},
	})
	ctx = keel.WithPriority(ctx, keel.Batch) // calls with this context queue behind interactive ones
	return ctx, k, err
}

var _, _ = readmeUse, policiesInGo

func TestDocGoSnippets(t *testing.T) {
	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	code := "\n" + squash(string(src)) + "\n"
	for _, doc := range []string{"README.md", "docs/policies.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		blocks := 0
		for _, block := range goBlocks(string(b)) {
			if !strings.Contains(block, "keel.") {
				continue // the internal packages' snippets
			}
			blocks++
			if !strings.Contains(code, "\n"+squash(block)+"\n") {
				t.Errorf("%s: this Go snippet is not in readme_test.go, so nothing compiles it:\n%s", doc, block)
			}
		}
		if blocks == 0 {
			t.Errorf("%s has no Go snippet of package keel", doc)
		}
	}
}

// goBlocks returns the bodies of md's ```go blocks.
func goBlocks(md string) []string {
	var out []string
	for {
		_, after, ok := strings.Cut(md, "```go\n")
		if !ok {
			return out
		}
		block, rest, _ := strings.Cut(after, "```")
		out = append(out, block)
		md = rest
	}
}

// squash trims every line and drops empty ones, so that indentation and
// gofmt's alignment of comments do not count.
func squash(s string) string {
	var lines []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}
