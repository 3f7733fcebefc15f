package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/engine"
)

// TestBodiesInFlight: the bytes of request bodies being read at once are
// bounded; a request past the bound is refused before its body is read.
func TestBodiesInFlight(t *testing.T) {
	const limit = 4 * bodyStep
	tests := []struct {
		name     string
		inFlight int64
		length   int64 // the second request's Content-Length; -1: unknown
		refused  bool
	}{
		{name: "room for both", inFlight: 4 * limit, length: limit},
		{name: "no room for a second full body", inFlight: 2 * limit, length: limit, refused: true},
		{name: "room for a small one", inFlight: 2 * limit, length: 100},
		{name: "an unknown length takes what it reads", inFlight: 2 * limit, length: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Options{Engine: testEngine(t), BodyLimit: limit, BodyBytesInFlight: tt.inFlight})
			if err != nil {
				t.Fatal(err)
			}
			// The first request's body is half sent: the gateway holds its
			// whole length while it waits for the rest.
			pr, pw := io.Pipe()
			first := httptest.NewRequest(http.MethodPost, "/model/m/converse", pr)
			first.ContentLength = limit
			x1 := &exchange{s: s, w: httptest.NewRecorder(), r: first}
			done := make(chan *Refusal, 1)
			go func() {
				_, rf := x1.readBody()
				done <- rf
			}()
			pw.Write(bytes.Repeat([]byte{'a'}, limit/2)) // returns once read: the bytes are held
			second := httptest.NewRequest(http.MethodPost, "/model/m/converse", strings.NewReader(strings.Repeat("b", 100)))
			second.ContentLength = tt.length
			x2 := &exchange{s: s, w: httptest.NewRecorder(), r: second}
			body, rf := x2.readBody()
			x2.releaseBody()
			switch {
			case tt.refused && (rf == nil || rf.Code != catalog.CodeServiceUnavailable || rf.Status != 503 || !strings.Contains(rf.Message, "bodies")):
				t.Errorf("second request: %v, want 503 ServiceUnavailableException", rf)
			case !tt.refused && (rf != nil || len(body) != 100):
				t.Errorf("second request: %d bytes, %v; want its 100 bytes", len(body), rf)
			}
			pw.Write(bytes.Repeat([]byte{'a'}, limit/2))
			pw.Close()
			if rf := <-done; rf != nil {
				t.Fatalf("first request: %v", rf)
			}
			x1.releaseBody()
			if n := s.bodies.held(); n != 0 {
				t.Fatalf("%d bytes still held after both", n)
			}
		})
	}
}

func testEngine(t *testing.T) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.HTTPClient().CloseIdleConnections)
	return e
}
