package emulator

// Acceptance tests: the official aws-sdk-go-v2 clients, pointed at the
// emulator with fake static credentials, must not be able to tell it from
// Bedrock.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	bedrocktypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/reply"
)

func TestSDKConverse(t *testing.T) {
	var h hooks
	opts := Options{Seed: testSeed}
	h.install(&opts)
	rn := start(t, opts)
	c := client(rn, "us-west-2")

	out, err := c.Converse(bg(), &bedrockruntime.ConverseInput{
		ModelId:  aws.String(sonnet45US),
		System:   []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: "Answer plainly."}},
		Messages: []types.Message{userMsg("What is a harbor?")},
	})
	if err != nil {
		t.Fatalf("Converse: %v", err)
	}
	w := want(sonnet45, "Answer plainly.", 64000, nil, user("What is a harbor?"))
	msg := out.Output.(*types.ConverseOutputMemberMessage).Value
	if got := msg.Content[0].(*types.ContentBlockMemberText).Value; got != w.Text {
		t.Errorf("text = %q\nwant %q", got, w.Text)
	}
	if msg.Role != types.ConversationRoleAssistant || out.StopReason != types.StopReasonEndTurn {
		t.Errorf("role %q, stop reason %q; want assistant, end_turn", msg.Role, out.StopReason)
	}
	u := out.Usage
	if int(*u.InputTokens) != w.InputTokens || int(*u.OutputTokens) != w.OutputTokens || int(*u.TotalTokens) != w.InputTokens+w.OutputTokens {
		t.Errorf("usage = %d/%d/%d, want %d/%d/%d", *u.InputTokens, *u.OutputTokens, *u.TotalTokens, w.InputTokens, w.OutputTokens, w.InputTokens+w.OutputTokens)
	}
	if out.Metrics == nil || out.Metrics.LatencyMs == nil {
		t.Error("metrics.latencyMs missing")
	}
	if id, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata); len(id) != 36 {
		t.Errorf("request id %q, want a UUID", id)
	}
	s := h.lastSettle(t)
	if s.InputTokens != int(*u.InputTokens) || s.OutputTokens != int(*u.OutputTokens) || s.Burndown != 5 || s.MaxTokens != 64000 ||
		s.Model != sonnet45US || s.BaseModel != sonnet45 || s.Region != "us-west-2" || s.Operation != OpConverse {
		t.Errorf("settled %+v, want the usage the SDK read (%d in, %d out), burndown 5, max 64000", s, *u.InputTokens, *u.OutputTokens)
	}
	if a := h.admits[0]; a.InputTokens != w.InputTokens || a.MaxTokens != 64000 || a.RequestID != s.RequestID {
		t.Errorf("admitted %+v", a)
	}
}

func TestSDKConverseLimits(t *testing.T) {
	rn := start(t, Options{Seed: testSeed})
	c := client(rn, "us-east-1")
	full := want(haiku3, "", 0, nil, user("Tell me about rivers."))
	stopWord := full.Text[reply.Cut(full.Text, 4):reply.Cut(full.Text, 5)]
	tests := []struct {
		name      string
		maxTokens int32
		stops     []string
		reason    types.StopReason
	}{
		{name: "end turn", reason: types.StopReasonEndTurn},
		{name: "max tokens", maxTokens: 3, reason: types.StopReasonMaxTokens},
		{name: "stop sequence", stops: []string{stopWord}, reason: types.StopReasonStopSequence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &bedrockruntime.ConverseInput{ModelId: aws.String(haiku3), Messages: []types.Message{userMsg("Tell me about rivers.")},
				InferenceConfig: &types.InferenceConfiguration{StopSequences: tt.stops}}
			if tt.maxTokens > 0 {
				in.InferenceConfig.MaxTokens = aws.Int32(tt.maxTokens)
			}
			out, err := c.Converse(bg(), in)
			if err != nil {
				t.Fatal(err)
			}
			w := want(haiku3, "", int(tt.maxTokens), tt.stops, user("Tell me about rivers."))
			got := out.Output.(*types.ConverseOutputMemberMessage).Value.Content[0].(*types.ContentBlockMemberText).Value
			if got != w.Text || out.StopReason != tt.reason || int(*out.Usage.OutputTokens) != w.OutputTokens {
				t.Errorf("got %q (%s, %d tokens), want %q (%s, %d tokens)", got, out.StopReason, *out.Usage.OutputTokens, w.Text, tt.reason, w.OutputTokens)
			}
			if tt.maxTokens > 0 && *out.Usage.OutputTokens != tt.maxTokens {
				t.Errorf("output tokens %d, want the limit %d", *out.Usage.OutputTokens, tt.maxTokens)
			}
			if tt.reason == types.StopReasonStopSequence {
				var fields map[string]string
				if err := out.AdditionalModelResponseFields.UnmarshalSmithyDocument(&fields); err != nil || fields["stop_sequence"] != stopWord {
					t.Errorf("additionalModelResponseFields = %v (%v), want stop_sequence %q", fields, err, stopWord)
				}
			}
		})
	}
}

func TestSDKConverseStream(t *testing.T) {
	var h hooks
	opts := Options{Seed: testSeed}
	h.install(&opts)
	rn := start(t, opts)
	out, err := client(rn, "eu-west-1").ConverseStream(bg(), &bedrockruntime.ConverseStreamInput{
		ModelId:  aws.String("eu." + sonnet45),
		Messages: []types.Message{userMsg("Describe a quiet valley.")},
	})
	if err != nil {
		t.Fatalf("ConverseStream: %v", err)
	}
	ev := readConverse(out)
	if ev.err != nil {
		t.Fatalf("stream error: %v", ev.err)
	}
	w := want(sonnet45, "", 0, nil, user("Describe a quiet valley."))
	if ev.text() != w.Text {
		t.Errorf("streamed text = %q\nwant %q", ev.text(), w.Text)
	}
	// Deltas are token-sized: one token each, in order.
	rest := w.Text
	for i, d := range ev.deltas {
		if n := reply.Next(rest); d != rest[:n] {
			t.Fatalf("delta %d = %q, want the token %q", i, d, rest[:n])
		}
		rest = rest[len(d):]
	}
	if len(ev.deltas) != w.OutputTokens {
		t.Errorf("%d deltas, want one per output token (%d)", len(ev.deltas), w.OutputTokens)
	}
	if ev.start == nil || ev.start.Role != types.ConversationRoleAssistant || ev.stop == nil || ev.stop.StopReason != types.StopReasonEndTurn || ev.meta == nil {
		t.Fatalf("messageStart %+v, messageStop %+v, metadata %+v", ev.start, ev.stop, ev.meta)
	}
	u := ev.meta.Usage
	if int(*u.InputTokens) != w.InputTokens || int(*u.OutputTokens) != w.OutputTokens || int(*u.TotalTokens) != w.InputTokens+w.OutputTokens {
		t.Errorf("metadata usage %d/%d/%d, want %d/%d", *u.InputTokens, *u.OutputTokens, *u.TotalTokens, w.InputTokens, w.OutputTokens)
	}
	if ev.meta.Metrics == nil || ev.meta.Metrics.LatencyMs == nil {
		t.Error("metadata metrics.latencyMs missing")
	}
	if want := 3 + w.OutputTokens + 1; ev.n != want {
		t.Errorf("%d events, want %d (start, deltas, block stop, stop, metadata)", ev.n, want)
	}
	if s := h.lastSettle(t); s.InputTokens != int(*u.InputTokens) || s.OutputTokens != int(*u.OutputTokens) || s.Region != "eu-west-1" {
		t.Errorf("settled %+v, want the usage the SDK read", s)
	}
}

func TestSDKInvokeModelAnthropic(t *testing.T) {
	var h hooks
	opts := Options{Seed: testSeed}
	h.install(&opts)
	rn := start(t, opts)
	c := client(rn, "us-east-1")
	msgs := []reply.Message{user("Name three rivers."), assistant("The"), user("Go on.")}
	out, err := c.InvokeModel(bg(), &bedrockruntime.InvokeModelInput{
		ModelId: aws.String(haiku3), ContentType: aws.String("application/json"), Accept: aws.String("application/json"),
		Body: anthropicJSON(50, msgs...),
	})
	if err != nil {
		t.Fatalf("InvokeModel: %v", err)
	}
	w := want(haiku3, "", 50, nil, msgs...)
	var body struct {
		ID, Type, Role, Model string
		Content               []struct{ Type, Text string }
		StopReason            string  `json:"stop_reason"`
		StopSequence          *string `json:"stop_sequence"`
		Usage                 struct {
			In  int `json:"input_tokens"`
			Out int `json:"output_tokens"`
		}
	}
	if err := json.Unmarshal(out.Body, &body); err != nil {
		t.Fatalf("body %s: %v", out.Body, err)
	}
	if !strings.HasPrefix(body.ID, "msg_bdrk_01") || body.Type != "message" || body.Role != "assistant" || body.Model != "claude-3-haiku-20240307" {
		t.Errorf("envelope %+v", body)
	}
	if len(body.Content) != 1 || body.Content[0].Type != "text" || body.Content[0].Text != w.Text {
		t.Errorf("content %+v, want one text block %q", body.Content, w.Text)
	}
	if body.StopReason != string(w.StopReason) || body.StopSequence != nil || body.Usage.In != w.InputTokens || body.Usage.Out != w.OutputTokens {
		t.Errorf("stop %q, usage %+v; want %q, %d/%d", body.StopReason, body.Usage, w.StopReason, w.InputTokens, w.OutputTokens)
	}
	if aws.ToString(out.ContentType) != "application/json" {
		t.Errorf("content type %q", aws.ToString(out.ContentType))
	}
	hdr := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response).Header
	if hdr.Get("X-Amzn-Bedrock-Input-Token-Count") != strconv.Itoa(w.InputTokens) ||
		hdr.Get("X-Amzn-Bedrock-Output-Token-Count") != strconv.Itoa(w.OutputTokens) ||
		hdr.Get("X-Amzn-Bedrock-Invocation-Latency") == "" {
		t.Errorf("usage headers %v", hdr)
	}
	if s := h.lastSettle(t); s.InputTokens != body.Usage.In || s.OutputTokens != body.Usage.Out || s.Burndown != 1 || s.MaxTokens != 50 {
		t.Errorf("settled %+v", s)
	}
}

func TestSDKInvokeStreamAnthropic(t *testing.T) {
	var h hooks
	opts := Options{Seed: testSeed}
	h.install(&opts)
	rn := start(t, opts)
	msgs := []reply.Message{user("Write about forests.")}
	out, err := client(rn, "us-east-1").InvokeModelWithResponseStream(bg(), &bedrockruntime.InvokeModelWithResponseStreamInput{
		ModelId: aws.String(sonnet45US), Body: anthropicJSON(30, msgs...),
	})
	if err != nil {
		t.Fatalf("InvokeModelWithResponseStream: %v", err)
	}
	if aws.ToString(out.ContentType) != "application/json" {
		t.Errorf("content type %q, want application/json", aws.ToString(out.ContentType))
	}
	ev := readInvoke(out)
	if ev.err != nil {
		t.Fatalf("stream error: %v", ev.err)
	}
	w := want(sonnet45, "", 30, nil, msgs...)
	var types []string
	var text string
	for _, c := range ev.chunks {
		types = append(types, c["type"].(string))
		if c["type"] == "content_block_delta" {
			text += c["delta"].(map[string]any)["text"].(string)
		}
	}
	wantTypes := []string{"message_start", "content_block_start"}
	for i := 0; i < w.OutputTokens; i++ {
		wantTypes = append(wantTypes, "content_block_delta")
	}
	wantTypes = append(wantTypes, "content_block_stop", "message_delta", "message_stop")
	if strings.Join(types, ",") != strings.Join(wantTypes, ",") {
		t.Errorf("event types %v\nwant %v", types, wantTypes)
	}
	if text != w.Text {
		t.Errorf("text %q\nwant %q", text, w.Text)
	}
	n := len(ev.chunks)
	delta := ev.chunks[n-2]
	if delta["delta"].(map[string]any)["stop_reason"] != "max_tokens" || delta["usage"].(map[string]any)["output_tokens"] != float64(30) {
		t.Errorf("message_delta %v, want stop_reason max_tokens and 30 output tokens", delta)
	}
	m, ok := ev.chunks[n-1]["amazon-bedrock-invocationMetrics"].(map[string]any)
	if !ok || m["inputTokenCount"] != float64(w.InputTokens) || m["outputTokenCount"] != float64(w.OutputTokens) ||
		m["invocationLatency"] == nil || m["firstByteLatency"] == nil {
		t.Errorf("invocation metrics %v, want %d in, %d out", ev.chunks[n-1], w.InputTokens, w.OutputTokens)
	}
	if start := ev.chunks[0]["message"].(map[string]any); start["usage"].(map[string]any)["input_tokens"] != float64(w.InputTokens) {
		t.Errorf("message_start %v", start)
	}
	if s := h.lastSettle(t); s.InputTokens != w.InputTokens || s.OutputTokens != 30 || s.Operation != OpInvokeStream {
		t.Errorf("settled %+v", s)
	}
}

// TestSDKInvokeFormats checks the other body formats, plain and streamed.
func TestSDKInvokeFormats(t *testing.T) {
	rn := start(t, Options{Seed: testSeed})
	c := client(rn, "us-east-1")
	tests := []struct {
		name   string
		model  string
		body   string
		prompt []reply.Message
		system string
		max    int
		// read pulls text and usage from a response body; chunk from one
		// stream chunk (final reports the chunk with the metrics).
		read  func(m map[string]any) (text string, in, out int)
		chunk func(m map[string]any) (text string, final bool)
	}{
		{
			name: "nova", model: "us." + novaLite, system: "Be brief.", max: 40,
			body:   `{"schemaVersion":"messages-v1","system":[{"text":"Be brief."}],"messages":[{"role":"user","content":[{"text":"Hi there"}]}],"inferenceConfig":{"maxTokens":40}}`,
			prompt: []reply.Message{user("Hi there")},
			read: func(m map[string]any) (string, int, int) {
				msg := m["output"].(map[string]any)["message"].(map[string]any)
				u := m["usage"].(map[string]any)
				return msg["content"].([]any)[0].(map[string]any)["text"].(string), int(u["inputTokens"].(float64)), int(u["outputTokens"].(float64))
			},
			chunk: func(m map[string]any) (string, bool) {
				if d, ok := m["contentBlockDelta"].(map[string]any); ok {
					return d["delta"].(map[string]any)["text"].(string), false
				}
				_, final := m["metadata"]
				return "", final
			},
		},
		{
			name: "llama", model: llama8b, max: 512,
			body:   `{"prompt":"<|begin_of_text|>Hello","temperature":0.5}`,
			prompt: []reply.Message{user("<|begin_of_text|>Hello")},
			read: func(m map[string]any) (string, int, int) {
				return m["generation"].(string), int(m["prompt_token_count"].(float64)), int(m["generation_token_count"].(float64))
			},
			chunk: func(m map[string]any) (string, bool) {
				return m["generation"].(string), m["stop_reason"] != nil
			},
		},
		{
			name: "titan", model: titanExp, max: 20,
			body:   `{"inputText":"Write a line.","textGenerationConfig":{"maxTokenCount":20}}`,
			prompt: []reply.Message{user("Write a line.")},
			read: func(m map[string]any) (string, int, int) {
				r := m["results"].([]any)[0].(map[string]any)
				return r["outputText"].(string), int(m["inputTextTokenCount"].(float64)), int(r["tokenCount"].(float64))
			},
			chunk: func(m map[string]any) (string, bool) {
				return m["outputText"].(string), m["completionReason"] != nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := strings.TrimPrefix(tt.model, "us.")
			w := want(base, tt.system, tt.max, nil, tt.prompt...)
			out, err := c.InvokeModel(bg(), &bedrockruntime.InvokeModelInput{ModelId: aws.String(tt.model), Body: []byte(tt.body)})
			if err != nil {
				t.Fatalf("InvokeModel: %v", err)
			}
			var m map[string]any
			if err := json.Unmarshal(out.Body, &m); err != nil {
				t.Fatalf("body %s: %v", out.Body, err)
			}
			text, in, outTok := tt.read(m)
			if text != w.Text || in != w.InputTokens || outTok != w.OutputTokens {
				t.Errorf("got %q %d/%d, want %q %d/%d", text, in, outTok, w.Text, w.InputTokens, w.OutputTokens)
			}

			so, err := c.InvokeModelWithResponseStream(bg(), &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: aws.String(tt.model), Body: []byte(tt.body)})
			if err != nil {
				t.Fatalf("InvokeModelWithResponseStream: %v", err)
			}
			ev := readInvoke(so)
			if ev.err != nil {
				t.Fatalf("stream: %v", ev.err)
			}
			var streamed string
			finals := 0
			for i, ch := range ev.chunks {
				s, final := tt.chunk(ch)
				streamed += s
				if final {
					finals++
					metrics, ok := ch["amazon-bedrock-invocationMetrics"].(map[string]any)
					if i != len(ev.chunks)-1 || !ok || metrics["outputTokenCount"] != float64(w.OutputTokens) {
						t.Errorf("chunk %d of %d is final with metrics %v", i, len(ev.chunks), metrics)
					}
				}
			}
			if streamed != w.Text || finals != 1 {
				t.Errorf("streamed %q (%d final chunks), want %q", streamed, finals, w.Text)
			}
		})
	}
}

func TestSDKCountTokens(t *testing.T) {
	var h hooks
	opts := Options{Seed: testSeed}
	h.install(&opts)
	rn := start(t, opts)
	c := client(rn, "us-east-1")
	w := want(sonnet45, "Be terse.", 0, nil, user("Count me, please."))
	tests := []struct {
		name  string
		model string
		input types.CountTokensInput
	}{
		{name: "converse", model: sonnet45, input: &types.CountTokensInputMemberConverse{Value: types.ConverseTokensRequest{
			System:   []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: "Be terse."}},
			Messages: []types.Message{userMsg("Count me, please.")},
		}}},
		{name: "invoke model body", model: sonnet45, input: &types.CountTokensInputMemberInvokeModel{Value: types.InvokeModelTokensRequest{
			Body: []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"system":"Be terse.","messages":[{"role":"user","content":[{"type":"text","text":"Count me, please."}]}]}`),
		}}},
		{name: "through an inference profile", model: sonnet45US, input: &types.CountTokensInputMemberConverse{Value: types.ConverseTokensRequest{
			System:   []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: "Be terse."}},
			Messages: []types.Message{userMsg("Count me, please.")},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.CountTokens(bg(), &bedrockruntime.CountTokensInput{ModelId: aws.String(tt.model), Input: tt.input})
			if err != nil {
				t.Fatalf("CountTokens: %v", err)
			}
			if int(*out.InputTokens) != w.InputTokens {
				t.Errorf("inputTokens = %d, want %d (what Converse charges)", *out.InputTokens, w.InputTokens)
			}
		})
	}
	if len(h.admits) != 0 || len(h.settles) != 0 {
		t.Errorf("CountTokens went through the quota hooks (%d admits, %d settles); Bedrock does not meter it", len(h.admits), len(h.settles))
	}
}

func TestSDKFoundationModels(t *testing.T) {
	rn := start(t, Options{})
	c := bedrock.New(bedrock.Options{Region: "eu-central-1", BaseEndpoint: aws.String(rn.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})
	tests := []struct {
		name  string
		in    bedrock.ListFoundationModelsInput
		count int
	}{
		{name: "all", count: len(DefaultModels())},
		{name: "by provider", in: bedrock.ListFoundationModelsInput{ByProvider: aws.String("meta")}, count: 3},
		{name: "by inference type", in: bedrock.ListFoundationModelsInput{ByInferenceType: bedrocktypes.InferenceTypeProvisioned}, count: 0},
		{name: "by modality", in: bedrock.ListFoundationModelsInput{ByOutputModality: bedrocktypes.ModelModalityImage}, count: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.ListFoundationModels(bg(), &tt.in)
			if err != nil {
				t.Fatalf("ListFoundationModels: %v", err)
			}
			if len(out.ModelSummaries) != tt.count {
				t.Fatalf("%d models, want %d", len(out.ModelSummaries), tt.count)
			}
			for _, m := range out.ModelSummaries {
				if *m.ModelArn != "arn:aws:bedrock:eu-central-1::foundation-model/"+*m.ModelId || m.ModelLifecycle.Status != bedrocktypes.FoundationModelLifecycleStatusActive {
					t.Errorf("summary %s: arn %s, lifecycle %v", *m.ModelId, *m.ModelArn, m.ModelLifecycle)
				}
			}
		})
	}
	got, err := c.GetFoundationModel(bg(), &bedrock.GetFoundationModelInput{ModelIdentifier: aws.String(sonnet45)})
	if err != nil {
		t.Fatalf("GetFoundationModel: %v", err)
	}
	if d := got.ModelDetails; *d.ModelName != "Claude Sonnet 4.5" || *d.ProviderName != "Anthropic" || d.InferenceTypesSupported[0] != bedrocktypes.InferenceType("INFERENCE_PROFILE") {
		t.Errorf("details %+v", d)
	}
	_, err = c.GetFoundationModel(bg(), &bedrock.GetFoundationModelInput{ModelIdentifier: aws.String("anthropic.nope-v1:0")})
	var nf *bedrocktypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("unknown model: %v, want ResourceNotFoundException", err)
	}
}

// modeled lists every exception the bedrockruntime model declares, with a
// check that an error is the SDK's typed form of it.
var modeled = []struct {
	code string
	is   func(error) bool
}{
	{catalog.CodeAccessDenied, func(err error) bool { var e *types.AccessDeniedException; return errors.As(err, &e) }},
	{catalog.CodeConflict, func(err error) bool { var e *types.ConflictException; return errors.As(err, &e) }},
	{catalog.CodeInternalServer, func(err error) bool { var e *types.InternalServerException; return errors.As(err, &e) }},
	{catalog.CodeModelError, func(err error) bool { var e *types.ModelErrorException; return errors.As(err, &e) }},
	{catalog.CodeModelNotReady, func(err error) bool { var e *types.ModelNotReadyException; return errors.As(err, &e) }},
	{catalog.CodeModelStreamError, func(err error) bool { var e *types.ModelStreamErrorException; return errors.As(err, &e) }},
	{catalog.CodeModelTimeout, func(err error) bool { var e *types.ModelTimeoutException; return errors.As(err, &e) }},
	{catalog.CodeResourceNotFound, func(err error) bool { var e *types.ResourceNotFoundException; return errors.As(err, &e) }},
	{catalog.CodeServiceQuotaExceeded, func(err error) bool { var e *types.ServiceQuotaExceededException; return errors.As(err, &e) }},
	{catalog.CodeServiceUnavailable, func(err error) bool { var e *types.ServiceUnavailableException; return errors.As(err, &e) }},
	{catalog.CodeThrottling, func(err error) bool { var e *types.ThrottlingException; return errors.As(err, &e) }},
	{catalog.CodeValidation, func(err error) bool { var e *types.ValidationException; return errors.As(err, &e) }},
}

func TestSDKErrors(t *testing.T) {
	type tcase struct {
		name    string
		code    string
		message string
		is      func(error) bool // nil: not modeled, expect a smithy.APIError with the code
	}
	var tests []tcase
	for _, m := range modeled {
		tests = append(tests, tcase{name: m.code, code: m.code, is: m.is})
	}
	tests = append(tests,
		tcase{name: "message override", code: catalog.CodeThrottling, message: "Too many requests, please wait before trying again.", is: modeled[10].is},
		tcase{name: "auth error before the service", code: catalog.CodeUnrecognizedClient},
		tcase{name: "guide code", code: catalog.CodeFTUFormNotFilled},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rn := start(t, Options{Planner: always(fault.Plan{Error: tt.code, ErrorMessage: tt.message})})
			_, err := client(rn, "us-east-1").Converse(bg(), &bedrockruntime.ConverseInput{
				ModelId: aws.String(haiku3), Messages: []types.Message{userMsg("hi")}})
			if err == nil {
				t.Fatal("Converse succeeded, want an error")
			}
			e, _ := catalog.Lookup(tt.code)
			if tt.is != nil && !tt.is(err) {
				t.Errorf("error %T %v is not the SDK's typed %s", err, err, tt.code)
			}
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != e.WireCode() {
				t.Errorf("API error code %v, want %s", api, e.WireCode())
			}
			msg := tt.message
			if msg == "" {
				msg = e.DefaultMessage
			}
			if api != nil && api.ErrorMessage() != msg {
				t.Errorf("message %q, want %q", api.ErrorMessage(), msg)
			}
			var re *smithyhttp.ResponseError
			if !errors.As(err, &re) || re.HTTPStatusCode() != e.Status {
				t.Errorf("status %v, want %d", re, e.Status)
			}
			var ae interface{ ServiceRequestID() string }
			if !errors.As(err, &ae) || len(ae.ServiceRequestID()) != 36 {
				t.Errorf("error carries no request id: %v", err)
			}
		})
	}
}

// streamable lists, per stream operation, the exceptions its event union
// models: those arrive as typed errors; any other arrives as a generic API
// error carrying the lowerCamelCase code.
var streamable = map[string]map[string]bool{
	OpConverseStream: {catalog.CodeInternalServer: true, catalog.CodeModelStreamError: true, catalog.CodeValidation: true,
		catalog.CodeThrottling: true, catalog.CodeServiceUnavailable: true},
	OpInvokeStream: {catalog.CodeInternalServer: true, catalog.CodeModelStreamError: true, catalog.CodeValidation: true,
		catalog.CodeThrottling: true, catalog.CodeModelTimeout: true, catalog.CodeServiceUnavailable: true},
}

// openStream starts op on the emulator and returns how many events arrived
// before the stream ended, whether the final event arrived, and its error.
func openStream(t *testing.T, c *bedrockruntime.Client, op string) (events int, complete bool, err error) {
	t.Helper()
	switch op {
	case OpConverseStream:
		out, err := c.ConverseStream(bg(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku3),
			Messages: []types.Message{userMsg("hi")}, InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(5)}})
		if err != nil {
			t.Fatalf("ConverseStream: %v", err)
		}
		ev := readConverse(out)
		return ev.n, ev.meta != nil, ev.err
	default:
		out, err := c.InvokeModelWithResponseStream(bg(), &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: aws.String(haiku3),
			Body: anthropicJSON(5, user("hi"))})
		if err != nil {
			t.Fatalf("InvokeModelWithResponseStream: %v", err)
		}
		ev := readInvoke(out)
		complete = len(ev.chunks) > 0 && ev.chunks[len(ev.chunks)-1]["type"] == "message_stop"
		return len(ev.chunks), complete, ev.err
	}
}

// streamEvents is the number of events of the 5-token replies openStream asks for.
var streamEvents = map[string]int{OpConverseStream: 9, OpInvokeStream: 10}

func TestSDKStreamExceptions(t *testing.T) {
	for _, op := range []string{OpConverseStream, OpInvokeStream} {
		total := streamEvents[op]
		for _, e := range catalog.All() {
			if !e.Streamable {
				continue
			}
			for _, after := range []int{0, 1, total} {
				t.Run(fmt.Sprintf("%s/%s/after %d", op, e.Code, after), func(t *testing.T) {
					rn := start(t, Options{Planner: always(fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: after, Code: e.Code}})})
					n, _, err := openStream(t, client(rn, "us-east-1"), op)
					if n != after {
						t.Errorf("%d events before the exception, want %d", n, after)
					}
					if err == nil {
						t.Fatal("stream ended without error")
					}
					var api smithy.APIError
					if !errors.As(err, &api) || api.ErrorMessage() != e.DefaultMessage {
						t.Fatalf("error %T %v, want an API error with message %q", err, err, e.DefaultMessage)
					}
					if streamable[op][e.Code] {
						for _, m := range modeled {
							if m.code == e.Code && !m.is(err) {
								t.Errorf("error %T is not the SDK's typed %s", err, e.Code)
							}
						}
					} else if api.ErrorCode() != e.StreamName() {
						t.Errorf("code %q, want %q", api.ErrorCode(), e.StreamName())
					}
				})
			}
		}
	}
}

// TestSDKBrokenStreams checks that every other mid-stream fault reaches the
// SDK reader as what it is.
func TestSDKBrokenStreams(t *testing.T) {
	tests := []struct {
		name  string
		kind  fault.MidStreamKind
		code  string
		check func(t *testing.T, events, after int, complete bool, err error)
	}{
		{name: "error frame", kind: fault.ErrorFrame, code: catalog.CodeThrottling,
			check: func(t *testing.T, events, after int, complete bool, err error) {
				var g *smithy.GenericAPIError
				if !errors.As(err, &g) || g.Code != catalog.CodeThrottling || events != after {
					t.Errorf("%d events, error %T %v; want %d events then a generic API error ThrottlingException", events, err, err, after)
				}
			}},
		{name: "corrupt", kind: fault.Corrupt,
			check: func(t *testing.T, events, after int, complete bool, err error) {
				if err == nil || !strings.Contains(err.Error(), "checksum") || events != after {
					t.Errorf("%d events, error %v; want %d events then a checksum error", events, err, after)
				}
			}},
		{name: "reset", kind: fault.Reset,
			check: func(t *testing.T, events, after int, complete bool, err error) {
				// A reset may also discard events the client had not read
				// yet, as a real one does.
				if err == nil || !strings.Contains(err.Error(), "reset") || events > after || complete {
					t.Errorf("%d events, error %v; want at most %d events then a connection reset", events, err, after)
				}
			}},
		{name: "truncate", kind: fault.Truncate,
			check: func(t *testing.T, events, after int, complete bool, err error) {
				// The SDK (smithy-go's event stream codec) treats an
				// unexpected EOF inside a frame as the end of the stream, so
				// truncation surfaces as a stream that stops early with no
				// error: the missing final event is the only sign.
				if err != nil || events != after || complete {
					t.Errorf("%d events, error %v, complete %v; want exactly %d events, no final event", events, err, complete, after)
				}
			}},
	}
	for _, tt := range tests {
		for _, op := range []string{OpConverseStream, OpInvokeStream} {
			total := streamEvents[op]
			for _, after := range []int{0, 1, total - 1} {
				t.Run(fmt.Sprintf("%s/%s/after %d", tt.name, op, after), func(t *testing.T) {
					rn := start(t, Options{Planner: always(fault.Plan{MidStream: &fault.MidStream{Kind: tt.kind, After: after, Code: tt.code}})})
					n, complete, err := openStream(t, client(rn, "us-east-1"), op)
					tt.check(t, n, after, complete, err)
				})
			}
		}
	}
}

// TestSDKBrokenBody checks faults on non-streaming replies.
func TestSDKBrokenBody(t *testing.T) {
	tests := []struct {
		name string
		plan fault.Plan
		want string // in the error text
	}{
		{name: "refuse", plan: fault.Plan{Refuse: true}, want: "connection reset"},
		{name: "truncate", plan: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Truncate}}, want: "unexpected EOF"},
		{name: "reset", plan: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Reset}}, want: "connection reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rn := start(t, Options{Planner: always(tt.plan)})
			_, err := client(rn, "us-east-1").Converse(bg(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku3), Messages: []types.Message{userMsg("hi")}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Converse error %v, want one mentioning %q", err, tt.want)
			}
			var api smithy.APIError
			if errors.As(err, &api) {
				t.Errorf("got API error %v; a broken connection has no API error", api)
			}
		})
	}
}

// TestSDKContinuation breaks a stream after n deltas and resumes it with
// the text received as a prefill: the two parts must make the unbroken
// reply, byte for byte, through both stream operations.
func TestSDKContinuation(t *testing.T) {
	const limit = 40
	question := "Tell me a story about a harbor."
	breaks := []struct {
		name string
		mid  fault.MidStream
		// lossy: the client may lose the last events sent before the break
		// (a TCP reset discards unread data), so it may resume earlier.
		lossy bool
	}{
		{name: "model stream error", mid: fault.MidStream{Kind: fault.Exception, Code: catalog.CodeModelStreamError}},
		{name: "reset", mid: fault.MidStream{Kind: fault.Reset}, lossy: true},
	}
	for _, br := range breaks {
		for _, op := range []string{OpConverseStream, OpInvokeStream} {
			for _, broken := range []int{1, 7, limit - 1} {
				t.Run(fmt.Sprintf("%s/%s/after %d tokens", br.name, op, broken), func(t *testing.T) {
					// Events before the first delta: messageStart (converse), or
					// message_start and content_block_start (invoke).
					lead := 1
					if op == OpInvokeStream {
						lead = 2
					}
					var calls atomic.Int32
					var h hooks
					opts := Options{Seed: testSeed, Planner: func(fault.Request) fault.Plan {
						if calls.Add(1) == 1 {
							mid := br.mid
							mid.After = lead + broken
							return fault.Plan{MidStream: &mid}
						}
						return fault.Plan{}
					}}
					h.install(&opts)
					rn := start(t, opts)
					c := client(rn, "us-east-1")
					unbroken := want(sonnet45, "", limit, nil, user(question)).Text

					first, _, err := streamText(t, c, op, limit, question, "")
					if err == nil {
						t.Fatal("first stream did not break")
					}
					used := reply.Count(first)
					if !strings.HasPrefix(unbroken, first) || used > broken || (!br.lossy && used != broken) {
						t.Fatalf("broken stream gave %d tokens %q, want %d tokens of %q", used, first, broken, unbroken)
					}
					rest, complete, err := streamText(t, c, op, limit-used, question, first)
					if err != nil || !complete {
						t.Fatalf("continuation: complete %v, %v", complete, err)
					}
					if first+rest != unbroken {
						t.Errorf("broken + continuation =\n%q\nwant\n%q", first+rest, unbroken)
					}
					h.mu.Lock()
					defer h.mu.Unlock()
					// The emulator settles what it sent, whatever the client
					// kept. The two requests are told apart by their limits.
					if len(h.settles) != 2 {
						t.Fatalf("%d settles, want 2", len(h.settles))
					}
					for _, st := range h.settles {
						if (st.MaxTokens == limit && st.OutputTokens != broken) || (st.MaxTokens == limit-used && st.OutputTokens != limit-used) {
							t.Errorf("settled %+v, want %d output tokens for the broken stream, %d for the continuation", st, broken, limit-used)
						}
					}
				})
			}
		}
	}
}

// streamText runs one stream request, with prefill as a trailing assistant
// message if set, and returns the text received.
func streamText(t *testing.T, c *bedrockruntime.Client, op string, maxTokens int, question, prefill string) (string, bool, error) {
	t.Helper()
	msgs := []reply.Message{user(question)}
	if prefill != "" {
		msgs = append(msgs, assistant(prefill))
	}
	if op == OpConverseStream {
		in := &bedrockruntime.ConverseStreamInput{ModelId: aws.String(sonnet45US), Messages: []types.Message{userMsg(question)},
			InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(int32(maxTokens))}}
		if prefill != "" {
			in.Messages = append(in.Messages, assistantMsg(prefill))
		}
		out, err := c.ConverseStream(bg(), in)
		if err != nil {
			t.Fatalf("ConverseStream: %v", err)
		}
		ev := readConverse(out)
		return ev.text(), ev.meta != nil, ev.err
	}
	out, err := c.InvokeModelWithResponseStream(bg(), &bedrockruntime.InvokeModelWithResponseStreamInput{
		ModelId: aws.String(sonnet45US), Body: anthropicJSON(maxTokens, msgs...)})
	if err != nil {
		t.Fatalf("InvokeModelWithResponseStream: %v", err)
	}
	ev := readInvoke(out)
	var text string
	complete := false
	for _, ch := range ev.chunks {
		if ch["type"] == "content_block_delta" {
			text += ch["delta"].(map[string]any)["text"].(string)
		}
		complete = ch["type"] == "message_stop"
	}
	return text, complete, ev.err
}

// TestSDKRegion checks that one emulator serves several regions, telling
// them apart by the SigV4 credential scope.
func TestSDKRegion(t *testing.T) {
	var h hooks
	opts := Options{DefaultRegion: "ap-south-1"}
	h.install(&opts)
	rn := start(t, opts)
	tests := []struct {
		name   string
		region string
		model  string
		err    string // wanted error code; "" for success
	}{
		{name: "us profile from us-west-2", region: "us-west-2", model: sonnet45US},
		{name: "eu profile from eu-west-3", region: "eu-west-3", model: "eu." + sonnet45},
		{name: "global profile anywhere", region: "sa-east-1", model: "global." + sonnet45},
		{name: "apac profile from ap-northeast-1", region: "ap-northeast-1", model: "apac." + sonnet45},
		{name: "eu profile from a us region", region: "us-east-1", model: "eu." + sonnet45, err: catalog.CodeValidation},
		{name: "bare id of a profile-only model", region: "us-east-1", model: sonnet45, err: catalog.CodeValidation},
		{name: "bare id of an on-demand model", region: "eu-west-1", model: haiku3},
		{name: "foundation model ARN", region: "us-east-2", model: "arn:aws:bedrock:us-east-2::foundation-model/" + haiku3},
		{name: "inference profile ARN", region: "us-east-2", model: "arn:aws:bedrock:us-east-2:123456789012:inference-profile/" + sonnet45US},
		{name: "unknown model", region: "us-east-1", model: "anthropic.claude-9-v1:0", err: catalog.CodeResourceNotFound},
		{name: "not a model id", region: "us-east-1", model: "sonnet", err: catalog.CodeValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.mu.Lock()
			h.plans = nil
			h.mu.Unlock()
			_, err := client(rn, tt.region).Converse(bg(), &bedrockruntime.ConverseInput{ModelId: aws.String(tt.model), Messages: []types.Message{userMsg("hi")}})
			var api smithy.APIError
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("Converse: %v", err)
			case tt.err != "" && (!errors.As(err, &api) || api.ErrorCode() != tt.err):
				t.Fatalf("Converse error %v, want %s", err, tt.err)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(h.plans) != 1 || h.plans[0].Region != tt.region || h.plans[0].Model != tt.model || h.plans[0].Operation != OpConverse {
				t.Errorf("planner saw %+v, want region %s, model %s", h.plans, tt.region, tt.model)
			}
		})
	}
}

// TestSDKOverHTTP2 drives the emulator over HTTP/2 without TLS (prior
// knowledge), as the AWS SDK for JavaScript v3 does: replies work, and
// connection faults become stream resets.
func TestSDKOverHTTP2(t *testing.T) {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: noWriteTo{&http.Transport{Protocols: &p}}}
	tests := []struct {
		name    string
		plan    fault.Plan
		wantErr bool
	}{
		{name: "reply"},
		{name: "exception", plan: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 1, Code: catalog.CodeThrottling}}, wantErr: true},
		{name: "reset", plan: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Reset, After: 1}}, wantErr: true},
		{name: "refuse", plan: fault.Plan{Refuse: true}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var proto string
			s := newServer(t, Options{Seed: testSeed, Planner: func(fault.Request) fault.Plan { return tt.plan }})
			s.Mount("/proto", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { proto = r.Proto }))
			rn, err := s.Listen("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer rn.Close()
			c := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String(rn.URL), HTTPClient: h2, RetryMaxAttempts: 1,
				Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})
			out, err := c.ConverseStream(bg(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku3), Messages: []types.Message{userMsg("hi")},
				InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(5)}})
			if err == nil {
				ev := readConverse(out)
				err = ev.err
				if err == nil && (ev.meta == nil || ev.text() != want(haiku3, "", 5, nil, user("hi")).Text) {
					t.Errorf("incomplete reply over HTTP/2: %+v", ev)
				}
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("error %v, want error %v", err, tt.wantErr)
			}
			if resp, err := h2.Get(rn.URL + "/proto"); err == nil {
				resp.Body.Close()
			}
			if proto != "HTTP/2.0" {
				t.Errorf("served over %q, want HTTP/2.0", proto)
			}
		})
	}
}

// TestSDKPromptCache checks prompt caching: the prefix up to a cache point
// is written to the cache on first use and read for five minutes after its
// last use, per model and region, and usage and settlement split the input
// accordingly.
func TestSDKPromptCache(t *testing.T) {
	fk := clock.NewFake(time.Unix(1_700_000_000, 0))
	var h hooks
	opts := Options{Seed: testSeed, Clock: fk}
	h.install(&opts)
	rn := start(t, opts)
	long := strings.Repeat("The harbor keeps its boats in rows. ", 300) // well over 1,024 tokens
	question := "Which boat is first?"
	prefix := reply.Count(long)
	total := prefix + reply.Count(question)

	converse := func(region, model, system string) *types.TokenUsage {
		t.Helper()
		out, err := client(rn, region).Converse(bg(), &bedrockruntime.ConverseInput{
			ModelId: aws.String(model),
			System: []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: system},
				&types.SystemContentBlockMemberCachePoint{Value: types.CachePointBlock{Type: types.CachePointTypeDefault}}},
			Messages: []types.Message{userMsg(question)},
		})
		if err != nil {
			t.Fatalf("Converse: %v", err)
		}
		return out.Usage
	}
	type usage struct{ in, read, write int }
	get := func(u *types.TokenUsage) usage {
		if u.CacheReadInputTokens == nil || u.CacheWriteInputTokens == nil {
			return usage{in: int(*u.InputTokens), read: -1, write: -1}
		}
		return usage{int(*u.InputTokens), int(*u.CacheReadInputTokens), int(*u.CacheWriteInputTokens)}
	}
	steps := []struct {
		name    string
		advance time.Duration
		region  string
		model   string
		system  string
		want    usage
	}{
		{name: "first use writes", region: "us-east-1", model: sonnet45US, system: long, want: usage{total - prefix, 0, prefix}},
		{name: "second use reads", advance: time.Minute, region: "us-east-1", model: sonnet45US, system: long, want: usage{total - prefix, prefix, 0}},
		{name: "other region writes its own", region: "us-west-2", model: sonnet45US, system: long, want: usage{total - prefix, 0, prefix}},
		{name: "read just before expiry", advance: PromptCacheTTL - time.Nanosecond, region: "us-east-1", model: sonnet45US, system: long, want: usage{total - prefix, prefix, 0}},
		{name: "expired after the TTL", advance: PromptCacheTTL, region: "us-east-1", model: sonnet45US, system: long, want: usage{total - prefix, 0, prefix}},
		{name: "prefix below the model's minimum", region: "us-east-1", model: sonnet45US, system: "Short.", want: usage{reply.Count("Short.") + reply.Count(question), 0, 0}},
		{name: "model without prompt caching", region: "us-east-1", model: haiku3, system: long, want: usage{total, -1, -1}},
	}
	for _, st := range steps {
		fk.Advance(st.advance)
		h.mu.Lock()
		h.settles = nil
		h.mu.Unlock()
		u := converse(st.region, st.model, st.system)
		if got := get(u); got != st.want {
			t.Errorf("%s: usage %+v, want %+v", st.name, got, st.want)
		}
		if want := st.want.in + max(st.want.read, 0) + max(st.want.write, 0) + int(*u.OutputTokens); int(*u.TotalTokens) != want {
			t.Errorf("%s: totalTokens %d, want %d", st.name, *u.TotalTokens, want)
		}
		if s := h.lastSettle(t); s.InputTokens != st.want.in || s.CacheReadTokens != max(st.want.read, 0) || s.CacheWriteTokens != max(st.want.write, 0) {
			t.Errorf("%s: settled %+v, want %+v", st.name, s, st.want)
		}
	}

	// The Anthropic body marks the prefix with cache_control, and InvokeModel
	// reports the split in its body and headers.
	body := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"system":[{"type":"text","text":` +
		strconv.Quote(long) + `,"cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":` + strconv.Quote(question) + `}]}`)
	for i, want := range []usage{{total - prefix, 0, prefix}, {total - prefix, prefix, 0}} {
		out, err := client(rn, "eu-west-1").InvokeModel(bg(), &bedrockruntime.InvokeModelInput{ModelId: aws.String("eu." + sonnet45), Body: body})
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Usage struct {
				In    int `json:"input_tokens"`
				Write int `json:"cache_creation_input_tokens"`
				Read  int `json:"cache_read_input_tokens"`
			}
		}
		json.Unmarshal(out.Body, &m)
		hdr := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response).Header
		if got := (usage{m.Usage.In, m.Usage.Read, m.Usage.Write}); got != want ||
			hdr.Get("X-Amzn-Bedrock-Cache-Read-Input-Token-Count") != strconv.Itoa(want.read) ||
			hdr.Get("X-Amzn-Bedrock-Cache-Write-Input-Token-Count") != strconv.Itoa(want.write) ||
			hdr.Get("X-Amzn-Bedrock-Input-Token-Count") != strconv.Itoa(want.in) {
			t.Errorf("invoke %d: usage %+v, headers %v; want %+v", i, got, hdr, want)
		}
	}
}
