package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/gateway"
)

// cacheHeader makes a client's calls send X-Keel-Cache: v.
func cacheHeader(v string) func(*bedrockruntime.Options) {
	return func(o *bedrockruntime.Options) {
		o.APIOptions = append(o.APIOptions, smithyhttp.SetHeaderValue("X-Keel-Cache", v))
	}
}

// coldConverse is converseInput asking for deterministic output.
func coldConverse() *bedrockruntime.ConverseInput {
	in := converseInput(haiku)
	in.InferenceConfig.Temperature = aws.Float32(0)
	return in
}

func cachedHarness(t *testing.T, plan func(int, fault.Request) fault.Plan, shared bool, callers bool) *harness {
	su := setup{plan: plan, keel: func(o *keel.Options) {
		o.Cache = keel.CacheOptions{Mode: "deterministic", Shared: shared}
	}}
	if callers {
		// The caller is whom the request's X-Test-Caller names.
		su.gateway = func(o *gateway.Options) {
			o.Authenticate = func(r *http.Request, _ string, _ []byte) (gateway.Caller, error) {
				return gateway.Caller{Name: r.Header.Get("X-Test-Caller")}, nil
			}
		}
	}
	return newHarness(t, su)
}

func TestGatewayCacheRepeatedRequestReachesUpstreamOnce(t *testing.T) {
	h := cachedHarness(t, nil, false, false)
	ctx := context.Background()
	var texts []string
	for i, want := range []string{"miss", "hit", "hit"} {
		out, err := h.client.Converse(ctx, coldConverse())
		if err != nil {
			t.Fatal(err)
		}
		if got := rawHeader(t, out.ResultMetadata).Get("X-Keel-Cache"); got != want {
			t.Errorf("call %d: X-Keel-Cache %q, want %q", i, got, want)
		}
		texts = append(texts, out.Output.(*types.ConverseOutputMemberMessage).Value.Content[0].(*types.ContentBlockMemberText).Value)
	}
	if texts[1] != texts[0] || texts[2] != texts[0] || h.script.n.Load() != 1 {
		t.Errorf("replies %q, %d upstream requests; want one reply, one request", texts, h.script.n.Load())
	}
	for _, tt := range []struct{ header, want string }{{"bypass", ""}, {"refresh", "miss"}} {
		before := h.script.n.Load()
		out, err := h.client.Converse(ctx, coldConverse(), cacheHeader(tt.header))
		if err != nil {
			t.Fatal(err)
		}
		if got := rawHeader(t, out.ResultMetadata).Get("X-Keel-Cache"); got != tt.want || h.script.n.Load() != before+1 {
			t.Errorf("X-Keel-Cache: %s: answered %q with %d upstream requests; want %q and one more request",
				tt.header, got, h.script.n.Load()-before, tt.want)
		}
	}
	_, err := h.client.Converse(ctx, coldConverse(), cacheHeader("sometimes"))
	var ve *types.ValidationException
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), `X-Keel-Cache: "sometimes": want bypass or refresh`) {
		t.Errorf("a bad X-Keel-Cache: %v; want a ValidationException naming it", err)
	}
}

func TestGatewayCache20ConcurrentRequestsReachUpstreamOnce(t *testing.T) {
	release := make(chan struct{})
	h := cachedHarness(t, func(int, fault.Request) fault.Plan { <-release; return fault.Plan{} }, false, false)
	const n = 20
	headers := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out, err := h.client.Converse(context.Background(), coldConverse())
			if err != nil {
				t.Error(err)
				return
			}
			headers[i] = rawHeader(t, out.ResultMetadata).Get("X-Keel-Cache")
		})
	}
	for h.eng.CacheWaiting() < n-1 { // bounded by the test's deadline
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	count := map[string]int{}
	for _, v := range headers {
		count[v]++
	}
	if h.script.n.Load() != 1 || count["miss"] != 1 || count["coalesced"] != n-1 {
		t.Errorf("%d upstream requests, answers %v; want 1 request, 1 miss and %d coalesced", h.script.n.Load(), count, n-1)
	}
}

func TestGatewayCacheTenancy(t *testing.T) {
	for _, tt := range []struct {
		shared   bool
		requests int64
	}{{false, 2}, {true, 1}} {
		h := cachedHarness(t, nil, tt.shared, true)
		for _, caller := range []string{"alice", "bob", "alice", "bob"} {
			as := func(o *bedrockruntime.Options) {
				o.APIOptions = append(o.APIOptions, smithyhttp.SetHeaderValue("X-Test-Caller", caller))
			}
			if _, err := h.client.Converse(context.Background(), coldConverse(), as); err != nil {
				t.Fatal(err)
			}
		}
		if got := h.script.n.Load(); got != tt.requests {
			t.Errorf("shared %v: %d upstream requests for two callers asking twice; want %d", tt.shared, got, tt.requests)
		}
	}
}

// TestGatewayCacheChargesNoBudgetForHits: a caller's budget is charged for
// the call that went upstream, not for the hit that followed.
func TestGatewayCacheChargesNoBudgetForHits(t *testing.T) {
	used := make(chan int, 2)
	h := newHarness(t, setup{
		keel: func(o *keel.Options) { o.Cache = keel.CacheOptions{Mode: "deterministic"} },
		gateway: func(o *gateway.Options) {
			o.Limit = func(_ context.Context, _, _ string, _ int) (func(int), error) {
				return func(n int) { used <- n }, nil
			}
		},
	})
	var got []int
	for range 2 {
		if _, err := h.client.Converse(context.Background(), coldConverse()); err != nil {
			t.Fatal(err)
		}
		got = append(got, <-used) // released when the handler ends, maybe after the reply reached the client
	}
	if got[0] == 0 || got[1] != 0 {
		t.Errorf("released %v; want the miss's tokens, then 0 for the hit", got)
	}
}
