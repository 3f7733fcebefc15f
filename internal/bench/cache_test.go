package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestCacheShort runs a small cache bench and checks what the cache
// promises, whatever the machine's speed: identical calls at once send one
// upstream request (each other call coalesced or, if it came late, a hit),
// against one per call without the cache; a batch run sends each distinct
// prompt once and its rerun none.
func TestCacheShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs emulators and a batch")
	}
	res, err := RunCache(context.Background(), CacheConfig{Calls: 20, Latency: 200 * time.Millisecond, Records: 100, Distinct: 5, Hits: 20})
	if err != nil {
		t.Fatal(err)
	}
	c, b, h := res.Coalescing, res.Batch, res.HitPath
	checks := []struct {
		name string
		ok   bool
	}{
		{"one upstream request with the cache", c.Upstream == 1 && c.Misses == 1 && c.Coalesced+c.Hits == 19 && c.Failed == 0},
		{"one per call without it", c.UpstreamWithout == 20},
		{"the batch sends each prompt once, the rerun none", b.Upstream == [2]int{5, 0} && b.Succeeded == [2]int{100, 100}},
		{"the hit path is timed", h.Calls == 20 && h.Hit.P50 > 0 && h.Hit.P99 >= h.Hit.P50 && h.Miss.P50 > 0 && h.Off.P50 > 0},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s: %+v", ch.name, res)
		}
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cache on:  1 upstream request(s); calls 1 miss", "cache off: 20 upstream request(s)",
		"first run: 5 upstream request(s), 100 record(s) succeeded", "rerun:     0 upstream request(s), 100 record(s) succeeded"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	js, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"upstreamRequests":1,`, `"upstreamRequestsWithoutCache":20`, `"upstreamRequests":[5,0]`, `"hit":{"p50Us":`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %s: %s", want, js)
		}
	}
}

func TestCheckCache(t *testing.T) {
	tests := []struct {
		name    string
		cfg     CacheConfig
		wantErr string // "": valid
	}{
		{"defaults", CacheConfig{}, ""},
		{"too many calls", CacheConfig{Calls: maxCacheCalls + 1}, "calls 100001: want from 1 to 100000"},
		{"negative records", CacheConfig{Records: -1}, "records -1: want from 1"},
		{"more prompts than records", CacheConfig{Records: 5, Distinct: 6}, "distinct prompts 6: want at most the records (5)"},
		{"negative latency", CacheConfig{Latency: -time.Second}, "latency -1s: want from 0"},
		{"unknown model", CacheConfig{Model: "no.such-model"}, `unknown model "no.such-model"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCache(tt.cfg)
			if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckCache: %v, want %q", err, tt.wantErr)
			}
		})
	}
}
