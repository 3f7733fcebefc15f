package jobs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMultipartUpload (review r5, finding 13): a file longer than the
// threshold goes up in parts and arrives byte for byte as one PutObject
// would have put it; a part that fails aborts the upload, and the run
// again uploads the file anew.
func TestMultipartUpload(t *testing.T) {
	tests := []struct {
		name     string
		partSize int64
		failPart int
	}{
		{"small files: one PutObject each", 0, 0},
		{"parts of 1000 bytes", 1000, 0},
		{"a part fails, then the run again", 1000, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plain := newEnv(t, 100) // the same input, put whole
			plain.killAt("uploaded")
			plain.runner(t).Run(context.Background())

			e := newEnv(t, 100)
			e.opts.In, e.opts.partSize = plain.opts.In, tt.partSize
			e.fake.failPart = tt.failPart
			if _, err := e.runner(t).Run(context.Background()); tt.failPart != 0 {
				if err == nil || !strings.Contains(err.Error(), "InternalError") || e.fake.aborted != 1 || len(e.fake.uploads) != 0 {
					t.Fatalf("err = %v, %d aborted, %d open; want the upload aborted", err, e.fake.aborted, len(e.fake.uploads))
				}
				e.fake.failPart = 0
				_, err = e.runner(t).Run(context.Background())
				if err != nil {
					t.Fatal(err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			parts := tt.failPart - min(tt.failPart, 1) // stored before the failure
			for k, want := range plain.fake.objects {
				if got := e.fake.objects[k]; string(got) != string(want) {
					t.Fatalf("%s: %d bytes, want the %d a PutObject put", k, len(got), len(want))
				}
				if tt.partSize > 0 {
					parts += (len(want) + int(tt.partSize) - 1) / int(tt.partSize)
				}
			}
			if e.fake.parts != parts || len(e.fake.uploads) != 0 {
				t.Fatalf("%d parts stored, %d uploads open; want %d, none", e.fake.parts, len(e.fake.uploads), parts)
			}
		})
	}
}

// TestEmulatorMultipartUpload: aws-sdk-go-v2's S3 client, multipart,
// against the emulator's S3 (which takes parts from 5 MiB): the job reads
// the file whole.
func TestEmulatorMultipartUpload(t *testing.T) {
	e := startJobsEmulator(t, 0, nil)
	var b strings.Builder
	pad := strings.Repeat("x", 60_000)
	for i := range 100 {
		fmt.Fprintf(&b, `{"recordId": "R%04d", "modelInput": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 16, "messages": [{"role": "user", "content": "q%d %s"}]}}`+"\n", i, i, pad)
	}
	e.opts.In = filepath.Join(t.TempDir(), "big.jsonl")
	if err := os.WriteFile(e.opts.In, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	e.opts.Limits, e.opts.partSize = Limits{}, 5<<20 // one file of 6 MB: two parts
	sum, err := e.runner(t).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.OK != 100 {
		t.Fatalf("summary %+v", sum)
	}
}
