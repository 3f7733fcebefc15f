package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
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

const anthropicBody = `{"anthropic_version":"bedrock-2023-05-31","max_tokens":50,"messages":[{"role":"user","content":"Tell me about keels."}]}`

func TestEveryOperation(t *testing.T) {
	h := newHarness(t, setup{})
	ctx := context.Background()
	tests := []struct {
		name string
		run  func() (middleware.Metadata, error)
	}{
		{"converse", func() (middleware.Metadata, error) {
			out, err := h.client.Converse(ctx, converseInput(haiku))
			if err != nil {
				return middleware.Metadata{}, err
			}
			return out.ResultMetadata, nil
		}},
		{"converse-stream", func() (middleware.Metadata, error) {
			out, err := h.client.ConverseStream(ctx, converseStreamInput(sonnet))
			if err != nil {
				return middleware.Metadata{}, err
			}
			if r := readConverseStream(out); r.err != nil || !r.stop || r.text == "" {
				return middleware.Metadata{}, fmt.Errorf("stream read %+v", r)
			}
			return out.ResultMetadata, nil
		}},
		{"invoke", func() (middleware.Metadata, error) {
			out, err := h.client.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku),
				ContentType: aws.String("application/json"), Body: []byte(anthropicBody)})
			if err != nil {
				return middleware.Metadata{}, err
			}
			if hd := rawHeader(t, out.ResultMetadata); hd.Get("X-Amzn-Bedrock-Output-Token-Count") == "" || hd.Get("X-Amzn-Bedrock-Input-Token-Count") == "" {
				return middleware.Metadata{}, fmt.Errorf("the upstream's x-amzn-bedrock-* headers are missing: %v", hd)
			}
			var reply struct {
				Content []struct{ Text string }
			}
			if err := json.Unmarshal(out.Body, &reply); err != nil || len(reply.Content) == 0 || reply.Content[0].Text == "" {
				return middleware.Metadata{}, fmt.Errorf("invoke reply %s: %v", out.Body, err)
			}
			return out.ResultMetadata, nil
		}},
		{"invoke-with-response-stream", func() (middleware.Metadata, error) {
			out, err := h.client.InvokeModelWithResponseStream(ctx, &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: aws.String(haiku),
				ContentType: aws.String("application/json"), Body: []byte(anthropicBody)})
			if err != nil {
				return middleware.Metadata{}, err
			}
			s := out.GetStream()
			defer s.Close()
			chunks := 0
			for ev := range s.Events() {
				if _, ok := ev.(*types.ResponseStreamMemberChunk); ok {
					chunks++
				}
			}
			if s.Err() != nil || chunks < 3 {
				return middleware.Metadata{}, fmt.Errorf("%d chunks, err %v", chunks, s.Err())
			}
			return out.ResultMetadata, nil
		}},
		{"count-tokens", func() (middleware.Metadata, error) {
			out, err := h.client.CountTokens(ctx, &bedrockruntime.CountTokensInput{ModelId: aws.String("anthropic.claude-sonnet-4-5-20250929-v1:0"),
				Input: &types.CountTokensInputMemberConverse{Value: types.ConverseTokensRequest{
					Messages: converseInput(haiku).Messages}}})
			if err != nil {
				return middleware.Metadata{}, err
			}
			if aws.ToInt32(out.InputTokens) <= 0 {
				return middleware.Metadata{}, fmt.Errorf("input tokens %d", aws.ToInt32(out.InputTokens))
			}
			return out.ResultMetadata, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md, err := tt.run()
			if err != nil {
				t.Fatal(err)
			}
			if hd := rawHeader(t, md); hd.Get("X-Amzn-Requestid") == "" {
				t.Fatalf("no request id: %v", hd)
			}
		})
	}
}

func TestStreamTrailers(t *testing.T) {
	h := newHarness(t, setup{})
	resp := h.rawPost(t, "/model/"+sonnet+"/converse-stream", "application/json",
		[]byte(`{"messages":[{"role":"user","content":[{"text":"Tell me about keels."}]}],"inferenceConfig":{"maxTokens":50}}`))
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.amazon.eventstream" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	if got := resp.Trailer.Get("X-Keel-Attempts"); got != "1" {
		t.Fatalf("trailer X-Keel-Attempts = %q (trailers %v)", got, resp.Trailer)
	}
}

func TestMidStreamExceptionTyped(t *testing.T) {
	tests := []struct {
		name  string
		code  string
		check func(error) bool
	}{
		{"throttling", catalog.CodeThrottling, func(err error) bool { var e *types.ThrottlingException; return errors.As(err, &e) }},
		{"model stream error", catalog.CodeModelStreamError, func(err error) bool { var e *types.ModelStreamErrorException; return errors.As(err, &e) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every attempt breaks after some content, and resumes are off:
			// the failure reaches the caller mid-stream.
			h := newHarness(t, setup{keel: func(o *keel.Options) { o.Streaming.DisableResume = true },
				plan: func(int, fault.Request) fault.Plan {
					return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 6, Code: tt.code}}
				}})
			out, err := h.client.ConverseStream(context.Background(), converseStreamInput(sonnet))
			if err != nil {
				t.Fatal(err)
			}
			r := readConverseStream(out)
			if r.events == 0 || !tt.check(r.err) {
				t.Fatalf("read %d events, err %v (%T)", r.events, r.err, r.err)
			}
		})
	}
}

func TestMidStreamBreakWithoutFrameTyped(t *testing.T) {
	h := newHarness(t, setup{keel: func(o *keel.Options) { o.Streaming.DisableResume = true },
		plan: func(int, fault.Request) fault.Plan {
			return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Truncate, After: 6}}
		}})
	out, err := h.client.ConverseStream(context.Background(), converseStreamInput(sonnet))
	if err != nil {
		t.Fatal(err)
	}
	r := readConverseStream(out)
	var e *types.ModelStreamErrorException
	if r.events == 0 || !errors.As(r.err, &e) || !strings.Contains(e.ErrorMessage(), catalog.CodeStreamTruncated) {
		t.Fatalf("read %d events, err %v (%T)", r.events, r.err, r.err)
	}
}

func TestResumeSpliced(t *testing.T) {
	whole := newHarness(t, setup{})
	out, err := whole.client.ConverseStream(context.Background(), converseStreamInput(sonnet))
	if err != nil {
		t.Fatal(err)
	}
	want := readConverseStream(out)
	if want.err != nil || !want.stop {
		t.Fatalf("unbroken stream %+v", want)
	}
	// The first attempt is cut mid-reply; keel resumes it, and the caller
	// reads one whole stream.
	h := newHarness(t, setup{plan: func(n int, _ fault.Request) fault.Plan {
		if n == 0 {
			return fault.Plan{MidStream: &fault.MidStream{Kind: fault.Truncate, After: 12}}
		}
		return fault.Plan{}
	}})
	out, err = h.client.ConverseStream(context.Background(), converseStreamInput(sonnet))
	if err != nil {
		t.Fatal(err)
	}
	got := readConverseStream(out)
	if got.err != nil || !got.stop || got.text == "" {
		t.Fatalf("read %+v: %v (gateway %s, upstream %s)", got, got.err, h.url, h.emu.URL)
	}
	if h.script.n.Load() != 2 {
		t.Fatalf("upstream saw %d requests, want 2 (the call and its continuation)", h.script.n.Load())
	}
	if got.text != want.text {
		t.Fatalf("spliced text %q is not the unbroken reply %q", got.text, want.text)
	}
}
