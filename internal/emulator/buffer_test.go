package emulator

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// countingBody is a request body that counts what the handler read.
type countingBody struct {
	r    io.Reader
	read atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// spaces is an endless run of spaces.
type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// converseOfSize is a valid Converse body of exactly n bytes (n >= 80).
func converseOfSize(n int) string {
	const head, tail = `{"messages":[{"role":"user","content":[{"text":"hi"}]}]`, `}`
	return head + strings.Repeat(" ", n-len(head)-len(tail)) + tail
}

// TestItem11cBodyLimit covers issue 15, item 11 (buffering): a body over
// Options.MaxBodyBytes is refused with Bedrock's 400 ValidationException
// without being kept: it is read and dropped (so the client, still sending,
// reads the answer), and not read at all past maxDiscardBytes.
func TestItem11cBodyLimit(t *testing.T) {
	const limit = 4096
	s := newServer(t, Options{MaxBodyBytes: limit, MaxBufferedBytes: 4 * limit})
	tests := []struct {
		name     string
		size     int64
		chunked  bool // no Content-Length: the body must be read to know
		status   int
		maxAlloc uint64 // bytes the request may allocate; 0: any
		maxRead  int64  // bytes of the body the handler may read; -1: all
	}{
		{name: "at the limit", size: limit, status: 200, maxRead: -1},
		{name: "at the limit, chunked", size: limit, chunked: true, status: 200, maxRead: -1},
		{name: "one byte over", size: limit + 1, status: 400, maxRead: -1},
		{name: "far over", size: 4 << 20, status: 400, maxAlloc: 512 << 10, maxRead: -1},
		{name: "far over, chunked", size: 4 << 20, chunked: true, status: 400, maxAlloc: 512 << 10, maxRead: -1},
		{name: "over what is worth reading", size: maxDiscardBytes + 1, status: 400, maxAlloc: 512 << 10, maxRead: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := converseOfSize(limit)
			body := &countingBody{r: io.MultiReader(strings.NewReader(text[:len(text)-1]), io.LimitReader(spaces{}, tt.size-int64(len(text))), strings.NewReader("}"))}
			r := httptest.NewRequest(http.MethodPost, "/model/"+haiku3+"/converse", body)
			r.ContentLength = tt.size
			if tt.chunked {
				r.ContentLength = -1
			}
			w := httptest.NewRecorder()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			s.ServeHTTP(w, r)
			runtime.ReadMemStats(&after)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %.300s", w.Code, tt.status, w.Body)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; tt.maxAlloc > 0 && alloc > tt.maxAlloc {
				t.Errorf("serving a body of %d bytes allocated %d bytes, want at most %d", tt.size, alloc, tt.maxAlloc)
			}
			if tt.maxRead >= 0 && body.read.Load() > tt.maxRead {
				t.Errorf("the handler read %d bytes of the body, want at most %d", body.read.Load(), tt.maxRead)
			}
			if tt.status == 400 {
				var msg struct{ Message string }
				json.Unmarshal(w.Body.Bytes(), &msg)
				if !strings.HasPrefix(w.Header().Get("X-Amzn-ErrorType"), "ValidationException:") || !strings.Contains(msg.Message, "Input is too long") ||
					!strings.Contains(msg.Message, "4096 bytes") {
					t.Errorf("answer %s %q, want ValidationException, Input is too long, naming the limit", w.Header().Get("X-Amzn-ErrorType"), msg.Message)
				}
			}
			if got := s.buffered.Load(); got != 0 {
				t.Errorf("%d bytes still counted as buffered after the request", got)
			}
		})
	}
}

// TestItem11cBufferedBytesBounded covers issue 15, item 11 (buffering):
// request bodies held at once are bounded by Options.MaxBufferedBytes; a
// request that would pass it gets Bedrock's 503 ServiceUnavailableException
// at once, and the room comes back when the holder ends.
func TestItem11cBufferedBytesBounded(t *testing.T) {
	const limit = 4096
	s := newServer(t, Options{MaxBodyBytes: limit, MaxBufferedBytes: limit + limit/2})
	post := func(size int) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/model/"+haiku3+"/converse", strings.NewReader(converseOfSize(size)))
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}

	// A request whose body arrives slowly holds its declared length.
	pr, pw := io.Pipe()
	slow := httptest.NewRequest(http.MethodPost, "/model/"+haiku3+"/converse", pr)
	slow.ContentLength = limit
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, slow)
		done <- w
	}()
	body := converseOfSize(limit)
	if _, err := io.WriteString(pw, body[:100]); err != nil { // returns once the handler has read it
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		size   int
		status int
	}{
		{name: "does not fit beside it", size: limit, status: 503},
		{name: "fits beside it", size: limit / 2, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := post(tt.size)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.status == 503 && !strings.HasPrefix(w.Header().Get("X-Amzn-ErrorType"), "ServiceUnavailableException:") {
				t.Errorf("X-Amzn-ErrorType %q, want ServiceUnavailableException", w.Header().Get("X-Amzn-ErrorType"))
			}
		})
	}

	io.WriteString(pw, body[100:])
	pw.Close()
	if w := <-done; w.Code != 200 {
		t.Fatalf("the slow request: status %d: %s", w.Code, w.Body)
	}
	if w := post(limit); w.Code != 200 {
		t.Errorf("after the slow request ended: status %d, want 200: %s", w.Code, w.Body)
	}
	if got := s.buffered.Load(); got != 0 {
		t.Errorf("%d bytes still counted as buffered", got)
	}
}

func TestItem11cBufferOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "negative body limit", opts: Options{MaxBodyBytes: -1}, want: "MaxBodyBytes -1 is not between 1 and"},
		{name: "body limit too large", opts: Options{MaxBodyBytes: math.MaxInt64}, want: "MaxBodyBytes 9223372036854775807 is not between 1 and"},
		{name: "negative buffer limit", opts: Options{MaxBufferedBytes: -1}, want: "MaxBufferedBytes -1"},
		{name: "buffer below one body", opts: Options{MaxBodyBytes: 2048, MaxBufferedBytes: 1024}, want: "MaxBufferedBytes 1024 is below MaxBodyBytes 2048"},
		{name: "buffer below the default body", opts: Options{MaxBufferedBytes: 1024}, want: "MaxBufferedBytes 1024 is below MaxBodyBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	s := newServer(t, Options{})
	if s.opts.MaxBodyBytes != DefaultMaxBodyBytes || s.opts.MaxBufferedBytes != DefaultMaxBufferedBytes {
		t.Errorf("defaults %d and %d", s.opts.MaxBodyBytes, s.opts.MaxBufferedBytes)
	}
}
