package keel

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

// coldInput is a Converse request that asks for deterministic output.
func coldInput(prompt string) *bedrockruntime.ConverseInput {
	in := converseInput(haiku)
	in.Messages[0].Content = []types.ContentBlock{&types.ContentBlockMemberText{Value: prompt}}
	in.InferenceConfig.Temperature = aws.Float32(0)
	return in
}

func replyText(t *testing.T, out *bedrockruntime.ConverseOutput) string {
	t.Helper()
	m, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok || len(m.Value.Content) == 0 {
		t.Fatalf("output %#v", out.Output)
	}
	txt, _ := m.Value.Content[0].(*types.ContentBlockMemberText)
	return txt.Value
}

// TestSDKCacheCoalescesAndHits sends 100 identical deterministic calls at
// once through aws-sdk-go-v2 to an emulator that holds its reply until all
// but one wait on the first: the emulator sees one request, every caller
// gets its reply, and a rerun is a hit.
func TestSDKCacheCoalescesAndHits(t *testing.T) {
	release := make(chan struct{})
	s := newSetup(t, func(int, fault.Request) fault.Plan {
		<-release
		return fault.Plan{}
	}, &config.Config{Cache: config.Cache{Mode: "deterministic"}}, false)
	const n = 100
	texts := make([]string, n)
	outcomes := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out, err := s.client.Converse(context.Background(), coldInput("Tell me about keels."))
			if err != nil {
				t.Errorf("call %d: %v", i, err)
				return
			}
			texts[i] = replyText(t, out)
			outcomes[i] = ReportOf(out.ResultMetadata).Cache
		})
	}
	// Wait (bounded by the test's deadline) until the other 99 wait for
	// the one the emulator holds.
	for s.k.eng.CacheWaiting() < n-1 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if got := s.script.seen.Load(); got != 1 {
		t.Errorf("the emulator saw %d requests; want 1", got)
	}
	count := map[string]int{}
	for i := range n {
		count[outcomes[i]]++
		if texts[i] != texts[0] {
			t.Fatalf("call %d got %q, call 0 %q", i, texts[i], texts[0])
		}
	}
	if count[CacheMiss] != 1 || count[CacheCoalesced] != n-1 {
		t.Errorf("outcomes %v; want 1 miss and %d coalesced", count, n-1)
	}
	out, err := s.client.Converse(context.Background(), coldInput("Tell me about keels."))
	if err != nil || replyText(t, out) != texts[0] || ReportOf(out.ResultMetadata).Cache != CacheHit || s.script.seen.Load() != 1 {
		t.Errorf("rerun: %v, %+v; want a hit of the same reply", err, ReportOf(out.ResultMetadata))
	}
	// Per call: bypass goes upstream; a warm request is not cached.
	out, err = s.client.Converse(WithCache(context.Background(), CacheBypass), coldInput("Tell me about keels."))
	if err != nil || ReportOf(out.ResultMetadata).Cache != CacheBypassed || s.script.seen.Load() != 2 {
		t.Errorf("bypass: %v, %+v, %d requests", err, ReportOf(out.ResultMetadata), s.script.seen.Load())
	}
	warm := converseInput(haiku)
	for range 2 {
		if out, err = s.client.Converse(context.Background(), warm); err != nil || ReportOf(out.ResultMetadata).Cache != CacheBypassed {
			t.Errorf("a request without temperature 0: %v, %+v", err, ReportOf(out.ResultMetadata))
		}
	}
	if got := s.script.seen.Load(); got != 4 {
		t.Errorf("the emulator saw %d requests; want 4", got)
	}
	if st, ok := s.k.Cache(context.Background()); !ok || st.Coalesced != n-1 || st.Hits != 1 || st.Misses != 1 || st.Bypassed != 3 ||
		st.Stored != 1 || st.Entries != 1 || st.Mode != "deterministic" || st.Waiting != 0 {
		t.Errorf("Keel.Cache() = %+v, %v", st, ok)
	}
	if got, err := testutil.GatherAndCount(s.reg, "keel_cache_calls_total", "keel_cache_bytes", "keel_cache_evictions_total"); err != nil || got != 6 {
		t.Errorf("registered cache series: %d, %v; want 4 outcomes, bytes and evictions", got, err)
	}
}

// TestSDKCacheErrorsNotStored: a throttled call (retried, then given up)
// and a validation error are not stored; the next call goes upstream.
func TestSDKCacheErrorsNotStored(t *testing.T) {
	for _, code := range []string{catalog.CodeThrottling, catalog.CodeValidation} {
		t.Run(code, func(t *testing.T) {
			fail := true
			s := newSetup(t, func(int, fault.Request) fault.Plan {
				if fail {
					return fault.Plan{Error: code}
				}
				return fault.Plan{}
			}, &config.Config{Cache: config.Cache{Mode: "all"}}, false)
			if _, err := s.client.Converse(context.Background(), coldInput("hello")); err == nil {
				t.Fatal("the failing call succeeded")
			}
			seen := s.script.seen.Load()
			fail = false
			out, err := s.client.Converse(context.Background(), coldInput("hello"))
			if err != nil || ReportOf(out.ResultMetadata).Cache != CacheMiss || s.script.seen.Load() != seen+1 {
				t.Errorf("after a failure: %v, %+v; want a miss that went upstream", err, ReportOf(out.ResultMetadata))
			}
		})
	}
}

// TestSQLiteCacheSurvivesANewKeel: a reply stored by one Keel in a SQLite
// cache is a hit for the next Keel on the same file.
func TestSQLiteCacheSurvivesANewKeel(t *testing.T) {
	c := &config.Config{Cache: config.Cache{Mode: "all", Store: "sqlite:" + filepath.Join(t.TempDir(), "cache.db")}}
	s1 := newSetup(t, func(int, fault.Request) fault.Plan { return fault.Plan{} }, c, false)
	out1, err := s1.client.Converse(context.Background(), coldInput("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.k.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := newSetup(t, func(int, fault.Request) fault.Plan { return fault.Plan{} }, c, false)
	defer s2.k.Close()
	out2, err := s2.client.Converse(context.Background(), coldInput("hello"))
	if err != nil || ReportOf(out2.ResultMetadata).Cache != CacheHit || s2.script.seen.Load() != 0 || replyText(t, out2) != replyText(t, out1) {
		t.Errorf("second Keel: %v, %+v, %d requests", err, ReportOf(out2.ResultMetadata), s2.script.seen.Load())
	}
}

func TestCacheOptionsChecked(t *testing.T) {
	for _, tt := range []struct {
		o    CacheOptions
		want string
	}{
		{CacheOptions{Mode: "sometimes"}, "Options.Cache.Mode"},
		{CacheOptions{Mode: "all", Store: "disk"}, "Options.Cache.Store"},
		{CacheOptions{Mode: "all", MaxBytes: -1}, "Options.Cache.MaxBytes"},
		{CacheOptions{TTL: time.Hour}, "Options.Cache.Mode: is off"},
	} {
		_, err := New(aws.Config{}, Options{Cache: tt.o})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err %v; want it to name %s", tt.o, err, tt.want)
		}
	}
}

// TestSDKCachedStream: a ConverseStream reply stored once complete is
// replayed to the next identical call as an event stream the SDK parses.
func TestSDKCachedStream(t *testing.T) {
	var seen atomic.Int32
	client, _ := newStreamSetup(t, func(int) fault.Plan { seen.Add(1); return fault.Plan{} }, &config.Config{Cache: config.Cache{Mode: "deterministic"}})
	read := func() (string, string) {
		in := coldInput("Tell me about keels.")
		out, err := client.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: in.ModelId,
			Messages: in.Messages, InferenceConfig: in.InferenceConfig})
		if err != nil {
			t.Fatal(err)
		}
		st := out.GetStream()
		defer st.Close()
		var text strings.Builder
		stop := ""
		for ev := range st.Events() {
			switch v := ev.(type) {
			case *types.ConverseStreamOutputMemberContentBlockDelta:
				if d, ok := v.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
					text.WriteString(d.Value)
				}
			case *types.ConverseStreamOutputMemberMessageStop:
				stop = string(v.Value.StopReason)
			}
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		return text.String(), stop + "/" + ReportOf(out.ResultMetadata).Cache
	}
	text1, how1 := read()
	text2, how2 := read()
	// The same request by Converse is served from the stored stream.
	out, err := client.Converse(context.Background(), coldInput("Tell me about keels."))
	if err != nil || replyText(t, out) != text1 || ReportOf(out.ResultMetadata).Cache != CacheHit || out.StopReason != types.StopReasonMaxTokens {
		t.Errorf("Converse after the stream: %v, %+v", err, ReportOf(out.ResultMetadata))
	}
	if text1 == "" || text2 != text1 || how1 != "max_tokens/miss" || how2 != "max_tokens/hit" || seen.Load() != 1 {
		t.Errorf("first %q (%s), second %q (%s), %d requests; want the same text, a miss then a hit, 1 request",
			text1, how1, text2, how2, seen.Load())
	}
}

// TestCacheRedisStoreNeedsRedis: a redis store without a Redis is refused
// by New, whichever of the Go options and the file names it.
func TestCacheRedisStoreNeedsRedis(t *testing.T) {
	for _, o := range []Options{
		{Cache: CacheOptions{Mode: "all", Store: "redis"}},
		{file: &config.Config{Cache: config.Cache{Mode: "all", Store: "redis"}}},
	} {
		if _, err := New(aws.Config{}, o); err == nil || !strings.Contains(err.Error(), "cache.store: is redis, but no redis.url is set") {
			t.Errorf("err %v", err)
		}
	}
}

// TestRedisCacheSharedByReplicas: two Keels on one Redis (the Redis named
// in the file, the cache in Go options) are two replicas: a reply one
// stored is a hit for the other.
func TestRedisCacheSharedByReplicas(t *testing.T) {
	srv := redistest.Start(t)
	c := &config.Config{Redis: config.Redis{URL: config.Secret(srv.URL), Prefix: "cache-test:"}}
	var clients []*bedrockruntime.Client
	var seen []*script
	for range 2 {
		s := newSetup(t, func(int, fault.Request) fault.Plan { return fault.Plan{} }, nil, false)
		// A second Keel on the same emulator, with the Redis cache.
		cfg := aws.Config{Region: "us-east-1", Credentials: s.client.Options().Credentials}
		k, err := New(cfg, Options{file: c, Cache: CacheOptions{Mode: "all", Store: "redis"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { k.Close() })
		clients = append(clients, bedrockruntime.NewFromConfig(cfg, k.ClientOptions, func(o *bedrockruntime.Options) {
			o.BaseEndpoint = s.client.Options().BaseEndpoint
		}))
		seen = append(seen, s.script)
	}
	out, err := clients[0].Converse(context.Background(), coldInput("hello"))
	if err != nil || ReportOf(out.ResultMetadata).Cache != CacheMiss {
		t.Fatalf("first replica: %v", err)
	}
	out, err = clients[1].Converse(context.Background(), coldInput("hello"))
	if err != nil || ReportOf(out.ResultMetadata).Cache != CacheHit || seen[1].seen.Load() != 0 {
		t.Errorf("second replica: %v, %+v, %d requests; want a hit", err, ReportOf(out.ResultMetadata), seen[1].seen.Load())
	}
}

// TestSDKStreamFromStoredReply: a ConverseStream call is served from the
// stored Converse reply of the same request, as events keel builds, which
// the SDK parses.
func TestSDKStreamFromStoredReply(t *testing.T) {
	var seen atomic.Int32
	client, _ := newStreamSetup(t, func(int) fault.Plan { seen.Add(1); return fault.Plan{} }, &config.Config{Cache: config.Cache{Mode: "deterministic"}})
	in := coldInput("Tell me about keels.")
	out, err := client.Converse(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := replyText(t, out)
	st, err := client.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: in.ModelId,
		Messages: in.Messages, InferenceConfig: in.InferenceConfig})
	if err != nil {
		t.Fatal(err)
	}
	es := st.GetStream()
	defer es.Close()
	var text strings.Builder
	var usage *types.TokenUsage
	for ev := range es.Events() {
		switch v := ev.(type) {
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			if d, ok := v.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
				text.WriteString(d.Value)
			}
		case *types.ConverseStreamOutputMemberMetadata:
			usage = v.Value.Usage
		}
	}
	if err := es.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != want || usage == nil || aws.ToInt32(usage.OutputTokens) == 0 || ReportOf(st.ResultMetadata).Cache != CacheHit || seen.Load() != 1 {
		t.Errorf("stream %q (usage %v, %+v, %d requests); want %q from the stored reply", text.String(), usage, ReportOf(st.ResultMetadata), seen.Load(), want)
	}
}
