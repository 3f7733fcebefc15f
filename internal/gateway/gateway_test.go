package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// rawHeader returns the gateway's response headers from an SDK result's
// metadata.
func rawHeader(t *testing.T, md middleware.Metadata) http.Header {
	t.Helper()
	raw, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response)
	if !ok {
		t.Fatal("no raw response in the result's metadata")
	}
	return raw.Header
}

func TestConverseThroughTheGateway(t *testing.T) {
	h := newHarness(t, setup{})
	out, err := h.client.Converse(context.Background(), converseInput(haiku))
	if err != nil {
		t.Fatal(err)
	}
	msg, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok || len(msg.Value.Content) == 0 {
		t.Fatalf("output %#v", out.Output)
	}
	if out.Usage == nil || *out.Usage.OutputTokens == 0 {
		t.Fatalf("usage %+v", out.Usage)
	}
	hd := rawHeader(t, out.ResultMetadata)
	if hd.Get("X-Keel-Attempts") != "1" || hd.Get("X-Amzn-Requestid") == "" || hd.Get("X-Keel-Code") != "" {
		t.Fatalf("headers %v", hd)
	}
	if !h.gw.Ready() {
		t.Fatal("not ready after the upstream answered")
	}
}

func TestConverseStreamThroughTheGateway(t *testing.T) {
	h := newHarness(t, setup{})
	out, err := h.client.ConverseStream(context.Background(), converseStreamInput(sonnet))
	if err != nil {
		t.Fatal(err)
	}
	r := readConverseStream(out)
	if r.err != nil || !r.stop || r.text == "" {
		t.Fatalf("stream read %+v", r)
	}
}

func TestThrottleStormAbsorbed(t *testing.T) {
	// A storm of three throttles on a target whose quota is known: keel
	// retries through it; the caller sees one success.
	h := newHarness(t, setup{keel: func(o *keel.Options) {
		o.Retry.MaxAttempts = 4
		o.Retry.ThrottleCap = time.Second // a retry after a throttle may wait that long for quota
		o.Quotas.Default = keel.Quota{TokensPerMinute: 1_000_000}
	}, plan: func(n int, _ fault.Request) fault.Plan {
		if n < 3 {
			return fault.Plan{Error: catalog.CodeThrottling}
		}
		return fault.Plan{}
	}})
	out, err := h.client.Converse(context.Background(), converseInput(haiku))
	if err != nil {
		t.Fatal(err)
	}
	if got := rawHeader(t, out.ResultMetadata).Get("X-Keel-Attempts"); got != "4" {
		t.Fatalf("X-Keel-Attempts = %q, want 4", got)
	}
}

func TestUpstreamErrorKeepsItsType(t *testing.T) {
	h := newHarness(t, setup{plan: func(int, fault.Request) fault.Plan { return fault.Plan{Error: catalog.CodeValidation} }})
	_, err := h.client.Converse(context.Background(), converseInput(haiku))
	var ve *types.ValidationException
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a *types.ValidationException", err)
	}
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.Response.Header.Get("X-Keel-Code") != catalog.CodeValidation || re.Response.Header.Get("X-Keel-Attempts") != "1" {
		t.Fatalf("response %+v", re)
	}
}
