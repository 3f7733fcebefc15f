package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestTiersShort runs the tiers bench in miniature: under a storm that
// throttles 90% of default-tier calls, the contender with a flex step
// completes nearly every call, some on flex, and has the better goodput.
func TestTiersShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs about 4 s")
	}
	res, err := RunTiers(context.Background(), TiersConfig{Duration: 3 * time.Second, Rate: 8, Deadline: 5 * time.Second,
		Throttle: 0.9, Speed: 0.02, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := res.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
	none, flex := res.Contenders[0], res.Contenders[1]
	if len(res.Contenders) != 3 || none.Name != "no-tier-fallback" || flex.Name != "flex-fallback" {
		t.Fatalf("contenders %v", res.Contenders)
	}
	if flex.Completed < flex.Calls*9/10 || flex.ViaFlex == 0 {
		t.Errorf("flex-fallback completed %d of %d calls, %.0f%% on flex; want 90%% or more, some on flex", flex.Completed, flex.Calls, 100*flex.ViaFlex)
	}
	if none.ViaFlex != 0 || none.Throttles == 0 {
		t.Errorf("no-tier-fallback: %.0f%% on flex, %d throttles; want none on flex, some throttles", 100*none.ViaFlex, none.Throttles)
	}
	if flex.Goodput <= none.Goodput {
		t.Errorf("goodput with flex %.2f/s, without %.2f/s: the fallback bought nothing", flex.Goodput, none.Goodput)
	}
	if !strings.Contains(b.String(), "flex-fallback") {
		t.Error("the table does not name the contenders")
	}
}

// TestCheckTiers refuses what a tiers bench cannot run.
func TestCheckTiers(t *testing.T) {
	tests := []struct {
		name string
		cfg  TiersConfig
		want string
	}{
		{"defaults", TiersConfig{}, ""},
		{"throttle of 1", TiersConfig{Throttle: 1}, "throttle 1: want a share from 0 to below 1"},
		{"negative flex latency", TiersConfig{FlexLatency: -time.Second}, "flex latency -1s"},
		{"model without flex", TiersConfig{Model: "anthropic.claude-3-haiku-20240307-v1:0"}, "does not offer the flex tier"},
		{"unknown model", TiersConfig{Model: "nope"}, `unknown model "nope"`},
		{"rate", TiersConfig{Rate: 1000}, "rate 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTiers(tt.cfg)
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("CheckTiers = %v, want %q", err, tt.want)
			}
		})
	}
}
