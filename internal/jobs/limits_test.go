package jobs

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/clock"
)

func TestSplit(t *testing.T) {
	sizes := func(ns ...int64) []int64 { return ns }
	tests := []struct {
		name  string
		sizes []int64
		lim   Limits
		want  string // the spans, or an error's words
	}{
		{"one file", sizes(10, 10, 10), Limits{MinRecordsPerJob: 3}, "[{0 3 30}]"},
		{"by records", sizes(10, 10, 10, 10, 10), Limits{MinRecordsPerJob: 1, RecordsPerFile: 2}, "[{0 2 20} {2 4 20} {4 5 10}]"},
		{"by bytes", sizes(10, 20, 30, 5), Limits{MinRecordsPerJob: 1, BytesPerFile: 35}, "[{0 2 30} {2 4 35}]"},
		{"exact fit", sizes(10, 25), Limits{MinRecordsPerJob: 1, BytesPerFile: 35}, "[{0 2 35}]"},
		{"too few", sizes(1, 1), Limits{MinRecordsPerJob: 3}, "needs at least 3"},
		{"record too big", sizes(1, 50, 1), Limits{MinRecordsPerJob: 1, BytesPerFile: 40}, "record #1 is 50 bytes"},
		{"job too big", sizes(30, 30), Limits{MinRecordsPerJob: 1, BytesPerFile: 40, BytesPerJob: 50}, "holds at most 50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := make([]string, len(tt.sizes))
			for i := range ids {
				ids[i] = fmt.Sprintf("#%d", i)
			}
			spans, err := split(tt.sizes, ids, tt.lim.withDefaults())
			got := fmt.Sprint(spans)
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tt.want) {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseS3URI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"s3://bucket", "{bucket }"},
		{"s3://bucket/", "{bucket }"},
		{"s3://my.bucket-1/a/b/", "{my.bucket-1 a/b}"},
		{"bucket/a", "not an S3 URI"},
		{"s3://", "not an S3 bucket name"},
		{"s3://Bucket/a", "not an S3 bucket name"},
		{"s3://a..b/a", "not an S3 bucket name"},
	}
	for _, tt := range tests {
		l, err := ParseS3URI(tt.in)
		got := fmt.Sprint(l)
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tt.want) {
			t.Errorf("ParseS3URI(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestCheckRole(t *testing.T) {
	for arn, ok := range map[string]bool{
		"arn:aws:iam::123456789012:role/keel":               true,
		"arn:aws-us-gov:iam::123456789012:role/path/keel-1": true,
		"":                                 false,
		"arn:aws:iam::123456789012:user/x": false,
		"arn:aws:iam::1234:role/x":         false,
		"keel":                             false,
	} {
		if err := CheckRole(arn); (err == nil) != ok {
			t.Errorf("CheckRole(%q) = %v", arn, err)
		}
	}
}

func TestPollerWaits(t *testing.T) {
	boom := fmt.Errorf("throttled")
	tests := []struct {
		name string
		p    Polling
		errs []bool // whether each poll failed
		want string
	}{
		{"grows by 1.5 to the cap", Polling{First: 10 * time.Second, MaxInterval: 30 * time.Second},
			[]bool{false, false, false, false, false}, "[10s 15s 22.5s 30s 30s]"},
		{"errors triple, up to twice the cap", Polling{First: 10 * time.Second, MaxInterval: 40 * time.Second},
			[]bool{false, true, true, true, false}, "[10s 30s 1m20s 1m20s 40s]"},
		{"hourly ceiling", Polling{First: time.Minute, MaxInterval: time.Minute, PerHour: 2},
			[]bool{false, false, false, false}, "[1m0s 59m0s 1m0s 59m0s]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			q := newPoller(tt.p, clk, func() float64 { return 1 }) // no jitter: the interval itself
			var got []time.Duration
			for _, failed := range tt.errs {
				q.polled()
				var err error
				if failed {
					err = boom
				}
				d, gerr := q.next(err)
				if gerr != nil {
					t.Fatal(gerr)
				}
				got = append(got, d)
				clk.Advance(d)
			}
			if fmt.Sprint(got) != tt.want {
				t.Fatalf("waits %v, want %s", got, tt.want)
			}
		})
	}
}

func TestPollerGivesUp(t *testing.T) {
	q := newPoller(Polling{MaxErrors: 3}, clock.NewFake(t0), func() float64 { return 0 })
	for i := range 3 {
		_, err := q.next(fmt.Errorf("down"))
		if (err != nil) != (i == 2) {
			t.Fatalf("poll %d: %v", i+1, err)
		}
	}
}
