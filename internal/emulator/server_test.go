package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"go.uber.org/goleak"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/reply"
)

func newServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// serve sends one request straight to the handler.
func serve(s http.Handler, method, path, body string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

const (
	converseSonnet = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
	invokeSonnet   = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
)

func TestValidation(t *testing.T) {
	s := newServer(t, Options{})
	long := strings.Repeat("word ", 200001)
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		status  int
		code    string
		message string // a fragment of the message
	}{
		{name: "not JSON", path: converseSonnet, body: `{"messages":`, status: 400, code: "ValidationException", message: "Malformed input request"},
		{name: "no messages", path: converseSonnet, body: `{"messages":[]}`, status: 400, code: "ValidationException", message: "must start with a user message"},
		{name: "bad role", path: converseSonnet, body: `{"messages":[{"role":"system","content":[{"text":"x"}]}]}`, status: 400, code: "ValidationException", message: "Value 'system' at 'messages.1.member.role'"},
		{name: "starts with assistant", path: converseSonnet, body: `{"messages":[{"role":"assistant","content":[{"text":"x"}]}]}`, status: 400, code: "ValidationException", message: "must start with a user message"},
		{name: "roles do not alternate", path: converseSonnet, body: `{"messages":[{"role":"user","content":[{"text":"a"}]},{"role":"user","content":[{"text":"b"}]}]}`, status: 400, code: "ValidationException", message: "must alternate"},
		{name: "empty content", path: converseSonnet, body: `{"messages":[{"role":"user","content":[]}]}`, status: 400, code: "ValidationException", message: "messages.0 is empty"},
		{name: "blank text", path: converseSonnet, body: `{"messages":[{"role":"user","content":[{"text":"  "}]}]}`, status: 400, code: "ValidationException", message: "messages.0.content.0 is blank"},
		{name: "max tokens zero", path: converseSonnet, body: `{"messages":[{"role":"user","content":[{"text":"a"}]}],"inferenceConfig":{"maxTokens":0}}`, status: 400, code: "ValidationException", message: "inferenceConfig.maxTokens"},
		{name: "max tokens over the model's limit", path: converseSonnet, body: `{"messages":[{"role":"user","content":[{"text":"a"}]}],"inferenceConfig":{"maxTokens":64001}}`, status: 400, code: "ValidationException", message: "exceeds the model limit of 64000"},
		{name: "prefill ending in whitespace", path: converseSonnet, body: `{"messages":[{"role":"user","content":[{"text":"a"}]},{"role":"assistant","content":[{"text":"b "}]}]}`, status: 400, code: "ValidationException", message: "trailing whitespace"},
		{name: "input over the context window", path: converseSonnet, body: `{"messages":[{"role":"user","content":[{"text":"` + long + `"}]}]}`, status: 400, code: "ValidationException", message: "Input is too long for requested model."},
		{name: "unknown model", path: "/model/anthropic.claude-9-v1%3A0/converse", body: `{}`, status: 404, code: "ResourceNotFoundException", message: "Could not resolve the foundation model"},
		{name: "not a model id", path: "/model/sonnet/converse", body: `{}`, status: 400, code: "ValidationException", message: "The provided model identifier is invalid."},
		{name: "unknown operation", path: "/model/" + haiku3 + "/chat", body: `{}`, status: 400, code: "InvalidAction"},
		{name: "wrong method", method: "GET", path: converseSonnet, status: 400, code: "InvalidAction"},
		{name: "unknown path", path: "/nothing", status: 400, code: "InvalidAction"},
		{name: "anthropic body without version", path: invokeSonnet, body: `{"max_tokens":5,"messages":[]}`, status: 400, code: "ValidationException", message: "required key [anthropic_version] not found"},
		{name: "anthropic body with another version", path: invokeSonnet, body: `{"anthropic_version":"2023-06-01","max_tokens":5,"messages":[]}`, status: 400, code: "ValidationException", message: "#/anthropic_version"},
		{name: "anthropic body without max_tokens", path: invokeSonnet, body: `{"anthropic_version":"bedrock-2023-05-31","messages":[]}`, status: 400, code: "ValidationException", message: "required key [max_tokens] not found"},
		{name: "anthropic max_tokens too large", path: invokeSonnet, body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":64001,"messages":[{"role":"user","content":"a"}]}`, status: 400, code: "ValidationException", message: "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens for claude-sonnet-4-5-20250929"},
		{name: "anthropic empty messages", path: invokeSonnet, body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[]}`, status: 400, code: "ValidationException", message: "at least one message is required"},
		{name: "anthropic roles do not alternate", path: invokeSonnet, body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}`, status: 400, code: "ValidationException", message: `found multiple "user" roles in a row`},
		{name: "anthropic empty content", path: invokeSonnet, body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[{"role":"user","content":[]}]}`, status: 400, code: "ValidationException", message: "messages.0: all messages must have non-empty content"},
		{name: "anthropic blank string content", path: invokeSonnet, body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[{"role":"user","content":" "}]}`, status: 400, code: "ValidationException", message: "text content blocks must be non-empty"},
		{name: "anthropic prefill ending in whitespace", path: invokeSonnet, body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b\n"}]}`, status: 400, code: "ValidationException", message: "final assistant content cannot end with trailing whitespace"},
		{name: "llama without prompt", path: "/model/" + llama8b + "/invoke", body: `{"max_gen_len":5}`, status: 400, code: "ValidationException", message: "required key [prompt] not found"},
		{name: "titan over its limit", path: "/model/" + titanExp + "/invoke", body: `{"inputText":"a","textGenerationConfig":{"maxTokenCount":9000}}`, status: 400, code: "ValidationException", message: "maxTokenCount: 9000 is not between 1 and 8192"},
		{name: "count tokens on a model without it", path: "/model/" + llama8b + "/count-tokens", body: `{"input":{"converse":{"messages":[{"role":"user","content":[{"text":"a"}]}]}}}`, status: 400, code: "ValidationException", message: "doesn't support counting tokens"},
		{name: "count tokens without input", path: "/model/" + haiku3 + "/count-tokens", body: `{}`, status: 400, code: "ValidationException", message: "'input'"},
		{name: "unknown foundation model", method: "GET", path: "/foundation-models/anthropic.nope-v1:0", status: 404, code: "ResourceNotFoundException"},
		{name: "profile page of zero", method: "GET", path: "/inference-profiles?maxResults=0", status: 400, code: "ValidationException", message: "'maxResults'"},
		{name: "profile page token not ours", method: "GET", path: "/inference-profiles?nextToken=abc", status: 400, code: "ValidationException", message: "pagination token is invalid"},
		{name: "unknown profile type", method: "GET", path: "/inference-profiles?type=MINE", status: 400, code: "ValidationException", message: "[SYSTEM_DEFINED, APPLICATION]"},
		{name: "unknown profile", method: "GET", path: "/inference-profiles/us.anthropic.nope", status: 404, code: "ResourceNotFoundException", message: "Inference profile us.anthropic.nope does not exist."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "POST"
			}
			w := serve(s, method, tt.path, tt.body)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			if got := w.Header().Get("X-Amzn-ErrorType"); !strings.HasPrefix(got, tt.code+":http://internal.amazon.com/coral/") {
				t.Errorf("X-Amzn-ErrorType %q, want %s with its namespace", got, tt.code)
			}
			var body struct{ Message string }
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if !strings.Contains(body.Message, tt.message) {
				t.Errorf("message %q, want it to contain %q", body.Message, tt.message)
			}
			if w.Header().Get("X-Amzn-RequestId") == "" || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", w.Header())
			}
		})
	}
}

func TestRequestIDs(t *testing.T) {
	s := newServer(t, Options{})
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := serve(s, "GET", "/nothing", "").Header().Get("X-Amzn-RequestId")
		if !uuid.MatchString(id) || seen[id] {
			t.Fatalf("request id %q: not a fresh v4 UUID", id)
		}
		seen[id] = true
	}
}

func TestOptionsErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "negative speed", opts: Options{Speed: -1}, want: "Speed -1"},
		{name: "empty model list", opts: Options{Models: []Model{}}, want: "Models is empty"},
		{name: "bad region", opts: Options{DefaultRegion: "mars"}, want: `DefaultRegion "mars"`},
		{name: "bad reply length", opts: Options{ReplyLength: reply.Range{Min: 10, Max: 5}}, want: "ReplyLength 10..5"},
		{name: "model without id", opts: Options{Models: []Model{{Format: FormatNova, MaxOutputTokens: 1, ContextWindow: 1}}}, want: "ID must be"},
		{name: "unknown format", opts: Options{Models: []Model{{ID: "a.b", Format: "gpt", MaxOutputTokens: 1, ContextWindow: 1}}}, want: `Format "gpt"`},
		{name: "unknown anthropic version", opts: Options{Models: []Model{{ID: "a.b", Format: FormatAnthropic, MaxOutputTokens: 1, ContextWindow: 1, AnthropicVersions: []string{"2023-06-01"}}}}, want: `anthropic_version "2023-06-01" is not one of bedrock-2023-05-31, 2026-10-21`},
		{name: "anthropic version on another format", opts: Options{Models: []Model{{ID: "a.b", Format: FormatNova, MaxOutputTokens: 1, ContextWindow: 1, AnthropicVersions: []string{"2026-10-21"}}}}, want: "only anthropic bodies name one"},
		{name: "no output", opts: Options{Models: []Model{{ID: "a.b", Format: FormatNova, ContextWindow: 1}}}, want: "MaxOutputTokens 0"},
		{name: "duplicate", opts: Options{Models: []Model{
			{ID: "a.b", Format: FormatNova, MaxOutputTokens: 1, ContextWindow: 1},
			{ID: "a.b", Format: FormatNova, MaxOutputTokens: 1, ContextWindow: 1}}}, want: "listed twice"},
		{name: "bad geography", opts: Options{Models: []Model{{ID: "a.b", Format: FormatNova, MaxOutputTokens: 1, ContextWindow: 1, Profiles: []string{"mars"}}}}, want: `geography "mars"`},
		{name: "profile only without profiles", opts: Options{Models: []Model{{ID: "a.b", Format: FormatNova, MaxOutputTokens: 1, ContextWindow: 1, ProfileOnly: true}}}, want: "ProfileOnly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "emulator: ") {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDefaultModels(t *testing.T) {
	ms := DefaultModels()
	ms[0].Profiles[0] = "changed"
	if DefaultModels()[0].Profiles[0] == "changed" {
		t.Error("DefaultModels returns the built-in list itself, not a copy")
	}
	// Burndown 5: Claude 3.7 Sonnet and every Sonnet and Opus since.
	burndown5 := func(id string) bool {
		return strings.HasPrefix(id, "anthropic.claude-3-7-sonnet") ||
			strings.HasPrefix(id, "anthropic.claude-sonnet-") || strings.HasPrefix(id, "anthropic.claude-opus-")
	}
	for _, m := range DefaultModels() {
		if want := map[bool]float64{true: 5, false: 1}[burndown5(m.ID)]; m.Burndown != want {
			t.Errorf("%s: burndown %v, want %v", m.ID, m.Burndown, want)
		}
		if m.TimeToFirstToken <= 0 || m.TokensPerSecond <= 0 {
			t.Errorf("%s: no latency model", m.ID)
		}
	}
	if _, err := checkModels(DefaultModels()); err != nil {
		t.Errorf("built-in models do not pass their own check: %v", err)
	}
}

func TestRegionFromPath(t *testing.T) {
	var mu sync.Mutex
	var got []fault.Request
	s := newServer(t, Options{Planner: func(r fault.Request) fault.Plan {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		return fault.Plan{}
	}})
	body := `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	tests := []struct {
		name   string
		path   string
		auth   string
		region string
	}{
		{name: "default", path: "/model/" + haiku3 + "/converse", region: "us-east-1"},
		{name: "path prefix", path: "/region/eu-west-2/model/" + haiku3 + "/converse", region: "eu-west-2"},
		{name: "credential scope", path: "/model/" + haiku3 + "/converse", region: "ap-southeast-2",
			auth: "AWS4-HMAC-SHA256 Credential=AKID/20250101/ap-southeast-2/bedrock/aws4_request, SignedHeaders=host, Signature=abc"},
		{name: "credential scope beats the path", path: "/region/eu-west-2/model/" + haiku3 + "/converse", region: "us-west-2",
			auth: "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-west-2/bedrock/aws4_request, SignedHeaders=host, Signature=abc"},
		{name: "malformed scope ignored", path: "/model/" + haiku3 + "/converse", region: "us-east-1", auth: "AWS4-HMAC-SHA256 Credential=AKID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			w := serve(s, "POST", tt.path, body, "Authorization", tt.auth)
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if len(got) != 1 || got[0].Region != tt.region || got[0].Model != haiku3 {
				t.Errorf("planner saw %+v, want region %s", got, tt.region)
			}
		})
	}
}

func TestHooks(t *testing.T) {
	body := `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	tests := []struct {
		name   string
		opts   Options
		status int
		code   string
		msg    string
	}{
		{name: "admit rejects", opts: Options{Admit: func(AdmitRequest) *Rejection {
			return &Rejection{Code: catalog.CodeThrottling, Message: "Too many tokens, please wait before trying again."}
		}}, status: 429, code: "ThrottlingException", msg: "Too many tokens, please wait before trying again."},
		{name: "verify rejects with the default message", opts: Options{Verify: func(r *http.Request, body []byte) *Rejection {
			if !strings.Contains(string(body), "hi") {
				return nil // Verify sees the body
			}
			return &Rejection{Code: catalog.CodeInvalidSignature}
		}}, status: 403, code: "InvalidSignatureException"},
		{name: "verify runs before the planned error", opts: Options{
			Verify:  func(*http.Request, []byte) *Rejection { return &Rejection{Code: catalog.CodeUnrecognizedClient} },
			Planner: always(fault.Plan{Error: catalog.CodeThrottling}),
		}, status: 403, code: "UnrecognizedClientException"},
		{name: "planned error before validation", opts: Options{Planner: always(fault.Plan{Error: catalog.CodeModelNotReady})}, status: 429, code: "ModelNotReadyException"},
		{name: "code the catalog does not know", opts: Options{Planner: always(fault.Plan{Error: "NoSuchThing"})}, status: 500, code: "InternalServerException", msg: `"NoSuchThing" is not a catalog code`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			settled := 0
			tt.opts.Settle = func(SettleRequest) { settled++ }
			w := serve(newServer(t, tt.opts), "POST", "/model/"+haiku3+"/converse", body)
			if w.Code != tt.status || !strings.HasPrefix(w.Header().Get("X-Amzn-ErrorType"), tt.code+":") {
				t.Errorf("got %d %s, want %d %s", w.Code, w.Header().Get("X-Amzn-ErrorType"), tt.status, tt.code)
			}
			var body struct{ Message string }
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %s: %v", w.Body, err)
			}
			e, _ := catalog.Lookup(tt.code)
			if msg := tt.msg; (msg != "" && !strings.Contains(body.Message, msg)) || (msg == "" && body.Message != e.DefaultMessage) {
				t.Errorf("message %q, want %q (or the catalog's default %q)", body.Message, msg, e.DefaultMessage)
			}
			if settled != 0 {
				t.Errorf("a request that was never admitted was settled %d times", settled)
			}
		})
	}
}

func TestSettleOnce(t *testing.T) {
	var settles []SettleRequest
	s := newServer(t, Options{Seed: 3, Settle: func(r SettleRequest) { settles = append(settles, r) }})
	w := serve(s, "POST", "/model/"+haiku3+"/invoke", string(anthropicJSON(12, user("hi"))))
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	wr := reply.Generate(&reply.Request{Seed: 3, Model: haiku3, Messages: []reply.Message{user("hi")}, MaxTokens: 12})
	if len(settles) != 1 || settles[0].OutputTokens != wr.OutputTokens || settles[0].InputTokens != wr.InputTokens || settles[0].MaxTokens != 12 {
		t.Errorf("settles %+v, want one with %d in, %d out", settles, wr.InputTokens, wr.OutputTokens)
	}
}

// TestLatency checks the latency model on a fake clock: nothing is sent
// before the time to first token, then one token per 1/tokens-per-second,
// all scaled by Speed.
func TestLatency(t *testing.T) {
	tests := []struct {
		name  string
		speed float64
	}{
		{name: "real time", speed: 1},
		{name: "ten times faster", speed: 0.1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fk := clock.NewFake(time.Unix(1_700_000_000, 0))
			rn := start(t, Options{Seed: testSeed, Speed: tt.speed, Clock: fk})
			c := client(rn, "us-east-1")
			m := DefaultModels()[0] // Claude 3 Haiku
			ttft := time.Duration(float64(m.TimeToFirstToken) * tt.speed)
			per := time.Duration(float64(time.Second) / m.TokensPerSecond * tt.speed)
			const limit = 6
			w := want(haiku3, "", limit, nil, user("hi"))

			// Non-streaming: one wait for the whole reply.
			done := make(chan *bedrockruntime.ConverseOutput)
			go func() {
				out, err := c.Converse(bg(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku3), Messages: []types.Message{userMsg("hi")},
					InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(limit)}})
				if err != nil {
					t.Error(err)
				}
				done <- out
			}()
			fk.WaitForTimers(1)
			total := ttft + (limit-1)*per // the first token, then the other five
			fk.Advance(total - time.Nanosecond)
			select {
			case <-done:
				t.Fatal("reply arrived before its latency had passed")
			default:
			}
			fk.Advance(time.Nanosecond)
			out := <-done
			if out == nil {
				return
			}
			if got := *out.Metrics.LatencyMs; got != total.Milliseconds() {
				t.Errorf("latencyMs %d, want %d", got, total.Milliseconds())
			}

			// Streaming: messageStart and the first token after the time
			// to first token, then one token per step.
			so, err := c.ConverseStream(bg(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku3), Messages: []types.Message{userMsg("hi")},
				InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(limit)}})
			if err != nil {
				t.Fatal(err)
			}
			events := so.GetStream().Events()
			fk.WaitForTimers(1)
			fk.Advance(ttft)
			if _, ok := (<-events).(*types.ConverseStreamOutputMemberMessageStart); !ok {
				t.Fatal("first event is not messageStart")
			}
			var text string
			for i := 0; i < limit; i++ {
				if i > 0 {
					fk.WaitForTimers(1)
					fk.Advance(per)
				}
				d, ok := (<-events).(*types.ConverseStreamOutputMemberContentBlockDelta)
				if !ok {
					t.Fatalf("event %d is not a delta", i+1)
				}
				text += d.Value.Delta.(*types.ContentBlockDeltaMemberText).Value
				if n := fk.Pending(); n > 1 {
					t.Fatalf("%d timers pending", n)
				}
			}
			var meta *types.ConverseStreamMetadataEvent
			for ev := range events {
				if m, ok := ev.(*types.ConverseStreamOutputMemberMetadata); ok {
					meta = &m.Value
				}
			}
			if err := so.GetStream().Err(); err != nil || text != w.Text || meta == nil || *meta.Metrics.LatencyMs != total.Milliseconds() {
				t.Errorf("stream: err %v, text %q (want %q), metadata %+v (latency want %d)", err, text, w.Text, meta, total.Milliseconds())
			}
		})
	}
}

// TestPlanLatency checks that a plan's latency is added before the first
// byte, on the server's clock, and is not scaled by Speed.
func TestPlanLatency(t *testing.T) {
	fk := clock.NewFake(time.Unix(1_700_000_000, 0))
	rn := start(t, Options{Clock: fk, Speed: 0, Planner: always(fault.Plan{Latency: 3 * time.Second})})
	done := make(chan error)
	go func() {
		_, err := client(rn, "us-east-1").Converse(bg(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku3), Messages: []types.Message{userMsg("hi")}})
		done <- err
	}()
	fk.WaitForTimers(1)
	fk.Advance(3*time.Second - time.Millisecond)
	select {
	case <-done:
		t.Fatal("answered before the plan's latency")
	default:
	}
	fk.Advance(time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestPlanLatencyAfterTheQuota checks that a plan's latency comes after the
// quota's admission: a request the quota refuses is answered on arrival, as
// Bedrock answers a throttle, and one admitted waits the latency, settling
// what it held if the client leaves meanwhile.
func TestPlanLatencyAfterTheQuota(t *testing.T) {
	tests := []struct {
		name    string
		refuse  bool // the Admit hook refuses
		giveUp  bool // the client leaves during the latency
		settled int  // Settle calls
	}{
		{name: "refused on arrival", refuse: true},
		{name: "admitted, then the latency", settled: 1},
		{name: "admitted, and the client leaves", giveUp: true, settled: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fk := clock.NewFake(time.Unix(1_700_000_000, 0))
			var mu sync.Mutex
			var settles []SettleRequest
			rn := start(t, Options{Clock: fk, Speed: 0, Planner: always(fault.Plan{Latency: 3 * time.Second}),
				Admit: func(AdmitRequest) *Rejection {
					if tt.refuse {
						return &Rejection{Code: catalog.CodeThrottling, Message: "Too many tokens, please wait before trying again."}
					}
					return nil
				},
				Settle: func(r SettleRequest) { mu.Lock(); settles = append(settles, r); mu.Unlock() }})
			ctx, cancel := context.WithTimeout(bg(), time.Minute) // a bound on a hang, not a clock the test reads
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := client(rn, "us-east-1").Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku3), Messages: []types.Message{userMsg("hi")}})
				done <- err
			}()
			var err error
			switch {
			case tt.refuse:
				err = <-done // no timer to advance: answered on arrival
				var te *types.ThrottlingException
				if !errors.As(err, &te) {
					t.Fatalf("refused call: %v, want a ThrottlingException", err)
				}
			case tt.giveUp:
				fk.WaitForTimers(1)
				cancel()
				if err = <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("call given up: %v, want context.Canceled", err)
				}
				rn.Close() // the handler has ended once Close returns
			default:
				fk.WaitForTimers(1)
				fk.Advance(3 * time.Second)
				if err = <-done; err != nil {
					t.Fatal(err)
				}
			}
			rn.Close()
			mu.Lock()
			defer mu.Unlock()
			if len(settles) != tt.settled {
				t.Fatalf("%d settles, want %d", len(settles), tt.settled)
			}
			if tt.giveUp && (settles[0].OutputTokens != 0 || settles[0].InputTokens <= 0) {
				t.Errorf("settled %+v for a call left during the latency; want its input, no output", settles[0])
			}
		})
	}
}

// TestSettledWhenClosedMidWait: an admitted request still waiting (its
// plan's latency, or its reply's pace) when the server closes, on a
// connection that cannot be hijacked (HTTP/2; here a ResponseRecorder, where
// ending the handler panics with http.ErrAbortHandler), is settled all the
// same: every admitted request is settled exactly once.
func TestSettledWhenClosedMidWait(t *testing.T) {
	tests := []struct {
		name  string
		plan  fault.Plan
		speed float64
		path  string
		body  string
	}{
		{name: "converse, in the latency", plan: fault.Plan{Latency: 3 * time.Second}, path: "/model/" + haiku3 + "/converse",
			body: `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`},
		{name: "converse, paced", speed: 1, path: "/model/" + haiku3 + "/converse",
			body: `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`},
		{name: "invoke, paced", speed: 1, path: "/model/" + haiku3 + "/invoke",
			body: `{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fk := clock.NewFake(time.Unix(1_700_000_000, 0))
			var admits, settles atomic.Int32
			s := newServer(t, Options{Clock: fk, Speed: tt.speed, Planner: always(tt.plan),
				Admit:  func(AdmitRequest) *Rejection { admits.Add(1); return nil },
				Settle: func(SettleRequest) { settles.Add(1) }})
			done := make(chan any, 1)
			go func() {
				defer func() { done <- recover() }()
				serve(s, "POST", tt.path, tt.body)
			}()
			fk.WaitForTimers(1)
			s.Close()
			if r := <-done; r != nil && r != http.ErrAbortHandler {
				t.Fatalf("panic %v", r)
			}
			if admits.Load() != 1 || settles.Load() != 1 {
				t.Errorf("admitted %d, settled %d; want 1 and 1", admits.Load(), settles.Load())
			}
		})
	}
}

// TestWaitsEnd checks that requests hanging or stalling on purpose end when
// the client gives up, and that Close ends those still waiting, leaving no
// goroutine behind.
func TestWaitsEnd(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tests := []struct {
		name   string
		plan   fault.Plan
		stream bool
	}{
		{name: "hang", plan: fault.Plan{Hang: true}},
		{name: "stall the body", plan: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall}}},
		{name: "stall the stream", plan: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Stall, After: 2}}, stream: true},
		{name: "latency", plan: fault.Plan{Latency: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, end := range []string{"client gives up", "emulator closes"} {
				// ready is signalled once the request is waiting on purpose:
				// when the plan is made, or for the stream once the events
				// before the stall have arrived.
				ready := make(chan struct{}, 1)
				rn, err := Start(Options{Planner: func(fault.Request) fault.Plan {
					if !tt.stream {
						ready <- struct{}{}
					}
					return tt.plan
				}})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(bg())
				c := client(rn, "us-east-1")
				errc := make(chan error, 1)
				go func() {
					if !tt.stream {
						_, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku3), Messages: []types.Message{userMsg("hi")}})
						errc <- err
						return
					}
					out, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku3), Messages: []types.Message{userMsg("hi")}})
					if err != nil {
						ready <- struct{}{}
						errc <- err
						return
					}
					stream := out.GetStream()
					defer stream.Close()
					n := 0
					for range stream.Events() {
						if n++; n == 2 {
							ready <- struct{}{}
						}
					}
					if n != 2 {
						t.Errorf("%d events before the stall, want 2", n)
						ready <- struct{}{}
					}
					errc <- stream.Err()
				}()
				<-ready
				if end == "client gives up" {
					cancel()
				} else {
					rn.Close()
				}
				if err := <-errc; err == nil {
					t.Errorf("%s: call succeeded, want an error", end)
				} else if end == "client gives up" && !errors.Is(err, context.Canceled) {
					t.Errorf("%s: %v, want context.Canceled", end, err)
				}
				cancel()
				rn.Close()
				testHTTPClient.CloseIdleConnections()
			}
		})
	}
}

func TestRefuseWithoutHijack(t *testing.T) {
	// A ResponseRecorder cannot be hijacked: connection faults panic with
	// http.ErrAbortHandler, which net/http's server turns into a closed
	// connection.
	s := newServer(t, Options{Planner: always(fault.Plan{Refuse: true})})
	defer func() {
		if r := recover(); r != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", r)
		}
	}()
	serve(s, "POST", "/model/"+haiku3+"/converse", `{}`)
	t.Error("Refuse answered a ResponseRecorder")
}

func TestUnknownKindStillBreaks(t *testing.T) {
	rn := start(t, Options{Planner: always(fault.Plan{MidStream: &fault.MidStream{Kind: "sideways", After: 1}})})
	n, complete, err := openStream(t, client(rn, "us-east-1"), OpConverseStream)
	if err == nil || complete || n > 1 {
		t.Errorf("%d events, complete %v, err %v; an unknown fault kind must still break the stream", n, complete, err)
	}
}

func TestStreamFaultClamped(t *testing.T) {
	// After beyond the last event: exceptions come after the last event,
	// corruption hits the last event itself.
	tests := []struct {
		name   string
		kind   fault.MidStreamKind
		events int
	}{
		{name: "exception", kind: fault.Exception, events: 9},
		{name: "corrupt", kind: fault.Corrupt, events: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rn := start(t, Options{Planner: always(fault.Plan{MidStream: &fault.MidStream{Kind: tt.kind, After: 1000, Code: catalog.CodeThrottling}})})
			n, _, err := openStream(t, client(rn, "us-east-1"), OpConverseStream)
			if n != tt.events || err == nil {
				t.Errorf("%d events, err %v; want %d events then an error", n, err, tt.events)
			}
		})
	}
}

func TestInvokeStreamHeaders(t *testing.T) {
	rn := start(t, Options{})
	req, _ := http.NewRequest("POST", rn.URL+"/model/"+haiku3+"/invoke-with-response-stream", strings.NewReader(string(anthropicJSON(3, user("hi")))))
	resp, err := testHTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.Header.Get("Content-Type") != "application/vnd.amazon.eventstream" || resp.Header.Get("X-Amzn-Bedrock-Content-Type") != "application/json" ||
		resp.Header.Get("X-Amzn-RequestId") == "" || resp.TransferEncoding == nil {
		t.Errorf("headers %v, transfer encoding %v", resp.Header, resp.TransferEncoding)
	}
}

func TestCatalogStreamNames(t *testing.T) {
	// The SDK turns an exception frame into a typed error only if
	// :exception-type names a member of the stream's union, so the catalog's
	// stream names must match the SDK model's.
	for code := range streamable[OpInvokeStream] {
		e := lookupError(code, "")
		if e.streamName != strings.ToLower(code[:1])+code[1:] {
			t.Errorf("%s: stream name %q", code, e.streamName)
		}
	}
}

// TestSettleBeforeEnd checks that a request is settled before its client
// can see it end, so a client that sends its next request at once finds the
// quota already settled.
func TestSettleBeforeEnd(t *testing.T) {
	tests := []struct {
		name string
		op   string
		plan fault.Plan
	}{
		{name: "converse", op: OpConverse},
		{name: "converse stream", op: OpConverseStream},
		{name: "invoke", op: OpInvoke},
		{name: "invoke stream", op: OpInvokeStream},
		{name: "stream broken by an exception", op: OpConverseStream,
			plan: fault.Plan{MidStream: &fault.MidStream{Kind: fault.Exception, After: 3, Code: catalog.CodeModelStreamError}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			settled, release := make(chan SettleRequest, 1), make(chan struct{})
			rn := start(t, Options{Planner: always(tt.plan), Settle: func(r SettleRequest) {
				settled <- r
				<-release
			}})
			c := client(rn, "us-east-1")
			done := make(chan struct{})
			go func() {
				defer close(done)
				switch tt.op {
				case OpConverse:
					c.Converse(bg(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku3), Messages: []types.Message{userMsg("hi")}})
				case OpInvoke:
					c.InvokeModel(bg(), &bedrockruntime.InvokeModelInput{ModelId: aws.String(haiku3), Body: anthropicJSON(5, user("hi"))})
				default:
					openStream(t, c, tt.op)
				}
			}()
			r := <-settled
			select {
			case <-done:
				t.Fatal("the client saw the end before the request was settled")
			default:
			}
			close(release)
			<-done
			if tt.plan.MidStream != nil && r.OutputTokens != 2 {
				t.Errorf("settled %d output tokens, want the 2 sent before the exception", r.OutputTokens)
			}
		})
	}
}

func TestObserve(t *testing.T) {
	mid := func(k fault.MidStreamKind) fault.Plan {
		return fault.Plan{MidStream: &fault.MidStream{Kind: k, After: 1, Code: catalog.CodeModelStreamError}}
	}
	tests := []struct {
		name   string
		plan   fault.Plan
		stream bool
		model  string
		cancel bool // the client gives up once the request waits
		code   string
	}{
		{name: "reply", code: ""},
		{name: "stream", stream: true, code: ""},
		{name: "planned error", plan: fault.Plan{Error: catalog.CodeThrottling}, code: catalog.CodeThrottling},
		{name: "validation", model: "sonnet", code: catalog.CodeValidation}, // counted as UnknownModel
		{name: "refuse", plan: fault.Plan{Refuse: true}, code: catalog.CodeConnectionReset},
		{name: "hang", plan: fault.Plan{Hang: true}, cancel: true, code: catalog.CodeClientTimeout},
		{name: "exception", plan: mid(fault.Exception), stream: true, code: catalog.CodeModelStreamError},
		{name: "error frame", plan: mid(fault.ErrorFrame), stream: true, code: catalog.CodeModelStreamError},
		{name: "truncated stream", plan: mid(fault.Truncate), stream: true, code: catalog.CodeStreamTruncated},
		{name: "corrupt stream", plan: mid(fault.Corrupt), stream: true, code: catalog.CodeStreamCorrupt},
		{name: "reset stream", plan: mid(fault.Reset), stream: true, code: catalog.CodeConnectionReset},
		{name: "stalled stream", plan: mid(fault.Stall), stream: true, cancel: true, code: catalog.CodeStreamStalled},
		{name: "truncated body", plan: mid(fault.Truncate), code: catalog.CodeConnectionReset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outcomes := make(chan Outcome, 1)
			waiting, firstEvent := make(chan struct{}, 1), make(chan struct{}, 1)
			rn := start(t, Options{
				Planner: func(fault.Request) fault.Plan { waiting <- struct{}{}; return tt.plan },
				Observe: func(o Outcome) { outcomes <- o },
			})
			model := tt.model
			if model == "" {
				model = haiku3
			}
			ctx, cancel := context.WithCancel(bg())
			defer cancel()
			c := client(rn, "eu-west-1")
			go func() {
				if !tt.stream {
					c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: []types.Message{userMsg("hi")}})
					return
				}
				out, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(model), Messages: []types.Message{userMsg("hi")}})
				if err != nil {
					return
				}
				stream := out.GetStream()
				defer stream.Close()
				for range stream.Events() {
					select {
					case firstEvent <- struct{}{}:
					default:
					}
				}
			}()
			<-waiting
			if tt.cancel {
				if tt.stream {
					<-firstEvent // the stream is stalled now
				}
				cancel()
			}
			o := <-outcomes
			want := Outcome{Model: model, Region: "eu-west-1", Operation: OpConverse, Code: tt.code}
			if tt.model == "sonnet" {
				want.Model = UnknownModel // a bogus id is not a counter of its own
			}
			if tt.stream {
				want.Operation = OpConverseStream
			}
			if o != want {
				t.Errorf("outcome %+v, want %+v", o, want)
			}
		})
	}
}

func TestMount(t *testing.T) {
	s := newServer(t, Options{})
	s.Mount("/_emulator/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "admin "+r.URL.Path) }))
	if w := serve(s, "GET", "/_emulator/counters", ""); w.Body.String() != "admin /_emulator/counters" {
		t.Errorf("mounted path answered %d %q", w.Code, w.Body)
	}
	if w := serve(s, "POST", "/model/"+haiku3+"/converse", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`); w.Code != 200 {
		t.Errorf("Bedrock path answered %d %s", w.Code, w.Body)
	}
}

// TestShutdown checks that Shutdown ends a hanging request at once (its
// client gets an error) and returns without waiting for the context.
func TestShutdown(t *testing.T) {
	arrived := make(chan struct{}, 1)
	rn, err := Start(Options{Planner: func(fault.Request) fault.Plan { arrived <- struct{}{}; return fault.Plan{Hang: true} }})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := client(rn, "us-east-1").Converse(bg(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku3), Messages: []types.Message{userMsg("hi")}})
		errc <- err
	}()
	<-arrived
	ctx, cancel := context.WithTimeout(bg(), time.Minute)
	defer cancel()
	if err := rn.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-errc; err == nil {
		t.Error("the hanging request succeeded")
	}
	if _, err := testHTTPClient.Get(rn.URL + "/foundation-models"); err == nil {
		t.Error("the emulator still answers after Shutdown")
	}
	if err := rn.Close(); err != nil {
		t.Errorf("Close after Shutdown: %v", err)
	}
}
