package emulator

import (
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/emulator/fault"
)

// TestItem11aRefusesWhatItCannotCount covers issue 15, item 11 (counters),
// at the server: a model id longer than Bedrock allows and a credential
// scope whose region is not a region are refused before any hook sees them,
// a /region/ prefix that names no region names no operation either, and an
// id that names no model reaches Observe as UnknownModel.
func TestItem11aRefusesWhatItCannotCount(t *testing.T) {
	var mu sync.Mutex
	var planned []fault.Request
	var observed []Outcome
	s := newServer(t, Options{
		Planner: func(r fault.Request) fault.Plan {
			mu.Lock()
			defer mu.Unlock()
			planned = append(planned, r)
			return fault.Plan{}
		},
		Observe: func(o Outcome) {
			mu.Lock()
			defer mu.Unlock()
			observed = append(observed, o)
		},
	})
	const body = `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	scope := func(region string) string {
		return "AWS4-HMAC-SHA256 Credential=AKID/20250101/" + region + "/bedrock/aws4_request, SignedHeaders=host, Signature=00"
	}
	bogus := func(n int) string { return "x." + strings.Repeat("y", n-2) }
	tests := []struct {
		name     string
		path     string
		auth     string
		status   int
		code     string
		message  string
		planned  bool   // the Planner saw the request
		observed string // the model Observe was told, "" for no call
	}{
		{name: "longest id Bedrock allows", path: "/model/" + bogus(maxModelIDLength) + "/converse", status: 404, code: "ResourceNotFoundException",
			planned: true, observed: UnknownModel},
		{name: "id one byte too long", path: "/model/" + bogus(maxModelIDLength+1) + "/converse", status: 400, code: "ValidationException",
			message: "Member must have length less than or equal to 2048", observed: UnknownModel},
		{name: "escaped id too long", path: "/model/" + strings.Repeat("%41", maxModelIDLength+1) + "/converse", status: 400, code: "ValidationException",
			message: "Member must have length less than or equal to 2048", observed: UnknownModel},
		{name: "20 KB id", path: "/model/" + bogus(20<<10) + "/converse", status: 400, code: "ValidationException",
			message: "less than or equal to 2048", observed: UnknownModel},
		{name: "not a model id", path: "/model/sonnet/converse", status: 400, code: "ValidationException", planned: true, observed: UnknownModel},
		{name: "known id", path: "/model/" + haiku3 + "/converse", status: 200, planned: true, observed: haiku3},
		{name: "region prefix", path: "/region/eu-west-3/model/" + haiku3 + "/converse", status: 200, planned: true, observed: haiku3},
		{name: "region prefix not a region", path: "/region/mars/model/" + haiku3 + "/converse", status: 400, code: "InvalidAction"},
		{name: "region prefix too long", path: "/region/us-" + strings.Repeat("a", maxRegionLength) + "-1/model/" + haiku3 + "/converse",
			status: 400, code: "InvalidAction"},
		{name: "scope region", path: "/model/" + haiku3 + "/converse", auth: scope("ap-south-1"), status: 200, planned: true, observed: haiku3},
		{name: "scope region not a region", path: "/model/" + haiku3 + "/converse", auth: scope("moon-1"), status: 403, code: "InvalidSignatureException",
			message: "Credential should be scoped to a valid region, not 'moon-1'."},
		{name: "scope region too long", path: "/model/" + haiku3 + "/converse", auth: scope("us-" + strings.Repeat("a", 20<<10) + "-1"), status: 403,
			code: "InvalidSignatureException", message: "Credential should be scoped to a valid region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			planned, observed = nil, nil
			mu.Unlock()
			w := serve(s, "POST", tt.path, body, "Authorization", tt.auth)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d; body %.200s", w.Code, tt.status, w.Body)
			}
			if tt.code != "" && !strings.HasPrefix(w.Header().Get("X-Amzn-ErrorType"), tt.code+":") {
				t.Errorf("X-Amzn-ErrorType %q, want %s", w.Header().Get("X-Amzn-ErrorType"), tt.code)
			}
			var msg struct{ Message string }
			json.Unmarshal(w.Body.Bytes(), &msg)
			if !strings.Contains(msg.Message, tt.message) {
				t.Errorf("message %.200q, want it to contain %q", msg.Message, tt.message)
			}
			mu.Lock()
			defer mu.Unlock()
			if got := len(planned) > 0; got != tt.planned {
				t.Errorf("Planner called: %v, want %v", got, tt.planned)
			}
			switch {
			case tt.observed == "" && len(observed) > 0:
				t.Errorf("Observe told %.100q, want no call", observed[0].Model)
			case tt.observed != "" && (len(observed) != 1 || observed[0].Model != tt.observed):
				t.Errorf("Observe told %.100v, want one outcome for model %q", observed, tt.observed)
			}
		})
	}
}

// TestValidRegion checks the hand-written region check against the regular
// expression it replaces, plus the length cap.
func TestValidRegion(t *testing.T) {
	pattern := regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	tests := []struct {
		in   string
		want bool
	}{
		{"us-east-1", true}, {"us-gov-west-1", true}, {"ap-southeast-5", true}, {"eu-central-12", true},
		{"", false}, {"us", false}, {"us-1", false}, {"us-east", false}, {"us-east-", false}, {"us--east-1", false},
		{"US-east-1", false}, {"use-east-1", false}, {"us-east-1a", false}, {"us-east-1-", false}, {"-us-east-1", false},
		{"us-" + strings.Repeat("a", maxRegionLength) + "-1", false}, {"mars", false}, {"us-east-1/x", false},
	}
	for _, tt := range tests {
		if got := validRegion(tt.in); got != tt.want {
			t.Errorf("validRegion(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	// Random strings over the alphabet that matters: both checks agree
	// wherever the length allows.
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab-1"
	for range 20000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if got, want := validRegion(string(b)), pattern.Match(b); got != want {
			t.Fatalf("validRegion(%q) = %v, the pattern says %v", b, got, want)
		}
	}
}

// TestItem11aPromptCacheBounded: the prompt cache keeps no more than
// maxPromptCacheEntries prefixes, even when all are live.
func TestItem11aPromptCacheBounded(t *testing.T) {
	var c promptCache
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range maxPromptCacheEntries + 1000 {
		c.use(promptKey{model: "m", region: "us-east-1", hash: uint64(i)}, now)
		if len(c.m) > maxPromptCacheEntries {
			t.Fatalf("after %d prefixes the cache holds %d, want at most %d", i+1, len(c.m), maxPromptCacheEntries)
		}
	}
	if !c.use(promptKey{model: "m", region: "us-east-1", hash: maxPromptCacheEntries + 999}, now) {
		t.Error("the newest prefix was forgotten")
	}
}
