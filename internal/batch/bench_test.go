package batch

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/quota"
	"github.com/keel-run/keel/internal/engine"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkBatchUnderQuota runs a batch of KEEL_BENCH_RECORDS (10,000)
// simple records through the engine to the emulator, whose model has a
// tokens-per-minute quota of KEEL_BENCH_TPM (400,000), and compares the wall
// time with the theoretical minimum: the tokens the emulator settled divided
// by the quota. The quota's bucket is drained before the run, so the
// minimum is exactly settled ÷ Q. Concurrency is the AIMD limiter's alone
// (no quota governor yet). It takes minutes; run it with
//
//	go test -run '^$' -bench BatchUnderQuota -benchtime 1x ./internal/batch/
func BenchmarkBatchUnderQuota(b *testing.B) {
	records := envInt("KEEL_BENCH_RECORDS", 10000)
	tpm := envInt("KEEL_BENCH_TPM", 400000)
	const model = "amazon.nova-lite-v1:0"
	dir := b.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var sb strings.Builder
	for i := range records {
		fmt.Fprintf(&sb, "{\"id\":%d,\"prompt\":\"Question %d: %s\",\"maxTokens\":%d}\n", i, i,
			strings.Repeat("tell me more about keels ", 1+i%9), 32+32*(i%4))
	}
	if err := os.WriteFile(in, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	for n := 0; n < b.N; n++ {
		meter := quota.NewMeter(nil, quota.Table{{Model: "*", Region: "*", Limits: quota.Limits{TokensPerMinute: int64(tpm)}}})
		s, err := emulator.New(emulator.Options{Seed: 1, Speed: 0.02,
			Admit: func(r emulator.AdmitRequest) *emulator.Rejection {
				return (*emulator.Rejection)(meter.Admit(quota.AdmitRequest{Model: r.Model, Region: r.Region, Operation: r.Operation,
					InputTokens: r.InputTokens, MaxTokens: r.MaxTokens}))
			},
			Settle: func(r emulator.SettleRequest) {
				meter.Settle(quota.SettleRequest{Model: r.Model, Region: r.Region, Operation: r.Operation, InputTokens: r.InputTokens,
					CacheWriteTokens: r.CacheWriteTokens, OutputTokens: r.OutputTokens, Burndown: r.Burndown, MaxTokens: r.MaxTokens})
			}})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(s)
		u, _ := url.Parse(srv.URL)
		// Drain the bucket, which starts full, so the minimum is settled ÷ Q.
		drain := quota.AdmitRequest{Model: model, Region: "us-east-1", Operation: "converse", InputTokens: tpm}
		if rej := meter.Admit(drain); rej != nil {
			b.Fatalf("draining the quota: %s", rej.Message)
		}
		meter.Settle(quota.SettleRequest{Model: model, Region: "us-east-1", Operation: "converse", InputTokens: tpm, Burndown: 1})
		base := meter.Snapshot()[0]
		eng, err := engine.New(engine.Options{Endpoints: attempt.FixedEndpoint{URL: u}})
		if err != nil {
			b.Fatal(err)
		}
		lim, _ := NewAIMD(AIMDOptions{})
		o := Options{In: in, Out: filepath.Join(dir, fmt.Sprintf("out%d.jsonl", n)), Model: model, Doer: eng, Limiter: lim}
		if testing.Verbose() {
			o.Progress = NewProgress(os.Stderr, ProgressOptions{Every: 15 * time.Second})
		}
		b.ResetTimer()
		start := time.Now()
		sum, err := Run(context.Background(), o)
		elapsed := time.Since(start)
		b.StopTimer()
		srv.Close()
		if err != nil {
			b.Fatal(err)
		}
		if sum.Succeeded != records {
			b.Fatalf("%d of %d records succeeded: %+v", sum.Succeeded, records, sum)
		}
		u2 := meter.Snapshot()[0]
		settled := u2.TokensSettled - base.TokensSettled
		minimum := time.Duration(float64(settled) / float64(tpm) * float64(time.Minute))
		ratio := elapsed.Seconds() / minimum.Seconds()
		b.ReportMetric(elapsed.Seconds(), "s/batch")
		b.ReportMetric(minimum.Seconds(), "min-s/batch")
		b.ReportMetric(100*ratio, "%-of-min")
		b.ReportMetric(float64(u2.Throttled-base.Throttled), "throttled")
		b.ReportMetric(float64(sum.Requeued), "requeued")
		b.Logf("%d records, %d tokens settled at %d TPM: %s vs minimum %s = %.0f%%; %d requests, %d throttled, %d requeued; AIMD limit %d after %d cuts",
			records, settled, tpm, elapsed.Round(time.Millisecond), minimum.Round(time.Millisecond), 100*ratio,
			u2.Requests-base.Requests, u2.Throttled-base.Throttled, sum.Requeued, lim.Limit(), lim.Cuts())
	}
}
