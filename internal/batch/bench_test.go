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

	"github.com/keel-run/keel/internal/admission"
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
// minimum is exactly settled ÷ Q. Three ways to decide concurrency:
//
//   - aimd: no quota governor; the AIMD limiter alone (keel before the
//     governor, or with quotas.disabled);
//   - governor-known: the quota governor told the quota, pacing the run
//     (Paced); it does not know the emulator's bucket starts drained;
//   - governor-learned: the quota governor with the quota unknown, learned
//     from throttles (keel's default).
//
// Each takes minutes; run them with
//
//	go test -run '^$' -bench BatchUnderQuota -benchtime 1x ./internal/batch/
//
// or one of them with -bench BatchUnderQuota/governor-known.
func BenchmarkBatchUnderQuota(b *testing.B) {
	records := envInt("KEEL_BENCH_RECORDS", 10000)
	tpm := envInt("KEEL_BENCH_TPM", 400000)
	for _, mode := range []string{"aimd", "governor-known", "governor-learned"} {
		b.Run(mode, func(b *testing.B) { benchBatchUnderQuota(b, mode, records, tpm) })
	}
}

func benchBatchUnderQuota(b *testing.B, mode string, records, tpm int) {
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
		eo := engine.Options{Endpoints: attempt.FixedEndpoint{URL: u}}
		var lim Limiter
		var aimd *AIMD
		var paced *Paced
		switch mode {
		case "aimd":
			aimd, _ = NewAIMD(AIMDOptions{})
			lim = aimd
		default:
			q := admission.Quota{}
			if mode == "governor-known" {
				q.TokensPerMinute = tpm
			}
			if eo.Governor, err = admission.New(admission.Options{Default: q}); err != nil {
				b.Fatal(err)
			}
			paced, _ = NewPaced(0)
			lim = paced
		}
		eng, err := engine.New(eo)
		if err != nil {
			b.Fatal(err)
		}
		o := Options{In: in, Out: filepath.Join(dir, fmt.Sprintf("out-%s-%d.jsonl", mode, n)), Model: model, Doer: eng, Limiter: lim}
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
		how := ""
		switch {
		case aimd != nil:
			how = fmt.Sprintf("AIMD limit %d after %d cuts", aimd.Limit(), aimd.Cuts())
		default:
			st, _ := eo.Governor.Stats(admission.Target{Model: model, Region: "us-east-1"})
			bc := st.Classes[admission.Batch]
			how = fmt.Sprintf("governor limit %d TPM after %d throttles (%d shrinks); %d of %d admissions waited (mean %s, longest %s); peak %d in flight",
				st.Limit, st.Throttles, st.Decreases, bc.Waited, bc.Admitted, meanWait(bc), bc.WaitMax.Round(time.Millisecond), paced.Peak())
		}
		b.Logf("%s: %d records, %d tokens settled at %d TPM: %s vs minimum %s = %.1f%%; %d requests, %d throttled, %d requeued; %s",
			mode, records, settled, tpm, elapsed.Round(time.Millisecond), minimum.Round(time.Millisecond), 100*ratio,
			u2.Requests-base.Requests, u2.Throttled-base.Throttled, sum.Requeued, how)
	}
}

func meanWait(c admission.ClassStats) time.Duration {
	if c.Waited == 0 {
		return 0
	}
	return (c.WaitTotal / time.Duration(c.Waited)).Round(time.Millisecond)
}
