package keel

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
)

// cancelOnWait is a clock whose first timer cancels the caller's context and
// never fires: the call is cancelled while keel waits to retry.
type cancelOnWait struct {
	clock.Clock
	once   sync.Once
	cancel context.CancelFunc
}

func (c *cancelOnWait) NewTimer(d time.Duration) clock.Timer {
	c.once.Do(c.cancel)
	return neverTimer{}
}

// neverTimer is a timer that never fires.
type neverTimer struct{}

func (neverTimer) C() <-chan time.Time { return nil }
func (neverTimer) Stop() bool          { return false }

// TestSDKCancelDuringBackoff is issue 15's crash: a caller cancels while
// keel waits to retry a 503, through the SDK face. The SDK returns an error
// that matches context.Canceled, whose chain errors.Is can walk to its end.
func TestSDKCancelDuringBackoff(t *testing.T) {
	emu, err := emulator.Start(emulator.Options{Seed: 7, Planner: func(fault.Request) fault.Plan {
		return fault.Plan{Error: catalog.CodeServiceUnavailable}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDKEEL", "keel-secret", "")}
	k, err := New(cfg, Options{file: &config.Config{}, clock: &cancelOnWait{Clock: clock.NewAuto(time.Now()), cancel: cancel}})
	if err != nil {
		t.Fatal(err)
	}
	client := bedrockruntime.NewFromConfig(cfg, k.ClientOptions, func(o *bedrockruntime.Options) { o.BaseEndpoint = aws.String(emu.URL) })
	_, err = client.Converse(ctx, converseInput(haiku))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want it to match context.Canceled", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v matches context.DeadlineExceeded", err)
	}
	entry, rep, ok := Details(err)
	if !ok || entry.Code != catalog.CodeServiceUnavailable || rep.Sent() != 1 {
		t.Fatalf("Details = %v, %+v, %v; want the 503 after one attempt", entry, rep, ok)
	}
}
