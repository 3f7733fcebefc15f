package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestCheckGateway(t *testing.T) {
	tests := []struct {
		name string
		cfg  GatewayConfig
		want string // in the error; empty: no error
	}{
		{"defaults", GatewayConfig{}, ""},
		{"stream", GatewayConfig{Op: OpConverseStream, Contenders: []string{"proxy"}}, ""},
		{"unknown op", GatewayConfig{Op: "invoke"}, `operation "invoke": want converse or converse-stream`},
		{"negative concurrency", GatewayConfig{Concurrency: -1}, "concurrency -1: want from 1 to 1024"},
		{"too many workers", GatewayConfig{Concurrency: MaxGatewayConcurrency + 1}, "concurrency 1025"},
		{"short", GatewayConfig{Duration: time.Millisecond}, "duration 1ms: want from 100ms to 10m0s"},
		{"unknown contender", GatewayConfig{Contenders: []string{"nginx"}}, `unknown contender "nginx"; choose from emulator, proxy`},
		{"twice", GatewayConfig{Contenders: []string{"proxy", "proxy"}}, `contender "proxy" named twice`},
		{"unknown model", GatewayConfig{Model: "gpt-4"}, `unknown model "gpt-4"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckGateway(tt.cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("CheckGateway: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("CheckGateway: %v; want an error with %q", err, tt.want)
			}
		})
	}
}

// TestGatewayShort runs the gateway bench in miniature, each operation,
// and checks the result's shape and that its numbers are sane: every call
// completed, the same reply through every contender, latencies ordered.
// It checks no speed: the machine may be slow or busy.
func TestGatewayShort(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, op := range []string{OpConverse, OpConverseStream} {
		t.Run(op, func(t *testing.T) {
			res, err := RunGateway(context.Background(), GatewayConfig{Concurrency: 4, Duration: 500 * time.Millisecond, Op: op})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Contenders) != len(DefaultGatewayContenders) {
				t.Fatalf("%d contenders, want %d", len(res.Contenders), len(DefaultGatewayContenders))
			}
			for i, o := range res.Contenders {
				if o.Name != DefaultGatewayContenders[i] {
					t.Errorf("contender %d is %s, want %s", i, o.Name, DefaultGatewayContenders[i])
				}
				if o.Errors != 0 || o.Calls == 0 {
					t.Errorf("%s: %d calls, %d errors (first: %s); want calls and no error", o.Name, o.Calls, o.Errors, o.FirstError)
					continue
				}
				if o.PerSecond <= 0 || o.P50 <= 0 || o.P50 > o.P99 || o.P99 > o.P999 || o.P999 > gatewayCallTimeout {
					t.Errorf("%s: %.0f calls/s, p50 %s, p99 %s, p99.9 %s: not sane", o.Name, o.PerSecond, o.P50, o.P99, o.P999)
				}
				if o.AllocsPerCall <= 0 {
					t.Errorf("%s: %.0f allocations per call", o.Name, o.AllocsPerCall)
				}
				// Replies differ only in the digits of their latency
				// metrics.
				if e := res.Contenders[0].ReplyBytes; math.Abs(o.ReplyBytes-e) > e/100 {
					t.Errorf("%s: replies of %.1f bytes on average, the emulator's %.1f: the middle changed the reply", o.Name, o.ReplyBytes, e)
				}
			}
			var table, js bytes.Buffer
			if err := res.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"keel bench gateway: " + op + " to ", "contender", "p99.9", "proxy"} {
				if !strings.Contains(table.String(), want) {
					t.Errorf("table lacks %q:\n%s", want, table.String())
				}
			}
			if err := json.NewEncoder(&js).Encode(res); err != nil {
				t.Fatal(err)
			}
			var back struct {
				Op         string `json:"op"`
				Contenders []struct {
					Name string   `json:"name"`
					P999 *float64 `json:"p999Ms"`
				} `json:"contenders"`
			}
			if err := json.Unmarshal(js.Bytes(), &back); err != nil {
				t.Fatal(err)
			}
			if back.Op != op || len(back.Contenders) != len(res.Contenders) || back.Contenders[0].P999 == nil {
				t.Errorf("JSON: %s", js.String())
			}
		})
	}
}
