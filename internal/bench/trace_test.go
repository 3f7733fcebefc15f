package bench

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestTraced: a traced request counts in its call's trace, and the reply
// time is the last request's, taken when its body is read to the end or
// closed; an earlier request's body read late does not count, and a
// request without a trace goes through untouched.
func TestTraced(t *testing.T) {
	sendErr := errors.New("connection reset")
	tests := []struct {
		name     string
		traced   bool
		fail     []bool // per request: send fails
		read     []int  // the order in which the responses' bodies are read, by request
		requests int
		replied  bool
	}{
		{name: "one request, body read", traced: true, fail: []bool{false}, read: []int{0}, requests: 1, replied: true},
		{name: "throttled then served", traced: true, fail: []bool{false, false}, read: []int{0, 1}, requests: 2, replied: true},
		// Every body is read after every request was sent: the first's does
		// not stand for the second's.
		{name: "only an earlier body read", traced: true, fail: []bool{false, false}, read: []int{0}, requests: 2},
		{name: "body never read", traced: true, fail: []bool{false}, requests: 1},
		{name: "the last request failed", traced: true, fail: []bool{false, true}, read: []int{0}, requests: 2},
		{name: "no trace", fail: []bool{false}, read: []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := 0
			send := traced(func(r *http.Request) (*http.Response, error) {
				defer func() { i++ }()
				if tt.fail[i] {
					return nil, sendErr
				}
				return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("{}"))}, nil
			})
			tr := &trace{}
			ctx := context.Background()
			if tt.traced {
				ctx = withTrace(ctx, tr)
			}
			var bodies []io.ReadCloser
			for range tt.fail {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1/model/m/converse", nil)
				resp, err := send.Do(req)
				if err != nil {
					bodies = append(bodies, nil)
					continue
				}
				bodies = append(bodies, resp.Body)
			}
			for _, k := range tt.read {
				if _, err := io.ReadAll(bodies[k]); err != nil {
					t.Fatal(err)
				}
				bodies[k].Close()
			}
			d, n, ok := tr.reply()
			if n != tt.requests || ok != tt.replied || d < 0 {
				t.Fatalf("reply = %v, %d requests, %v; want %d requests, replied %v", d, n, ok, tt.requests, tt.replied)
			}
		})
	}
}
