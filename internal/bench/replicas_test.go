package bench

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestRunReplicasShort(t *testing.T) {
	cfg := Config{Quota: 3_000_000, Duration: 6 * time.Second, Speed: 0.05, Deadline: 5 * time.Second, Seed: 1,
		Replicas: 2, RedisOutage: 2 * time.Second}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	res.WriteTable(&b)
	t.Log(b.String())
}
