package hostile_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/hostile"
)

func post(ctx context.Context, c *http.Client, url string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/model/m/converse", strings.NewReader("{}"))
	return c.Do(req)
}

// A Sequence that fails the first call with a truncated body and answers
// the rest, served on 127.0.0.1.
func ExampleSequence() {
	p := hostile.Sequence(hostile.Options{Mode: hostile.Truncate}, hostile.Options{})
	s := hostile.Listen(p)
	defer s.Close()
	for range 2 {
		resp, err := post(context.Background(), s.Client(), s.URL)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		fmt.Println(resp.Status, err)
	}
	fmt.Println(p.Requests(), "requests")
	// Output:
	// 200 OK unexpected EOF
	// 200 OK <nil>
	// 2 requests
}

// A Hang never answers; only the caller's deadline ends the call. (Over
// Pipe in a testing/synctest bubble the deadline passes at once: see
// TestHang.)
func ExampleHandler_hang() {
	s := hostile.Listen(hostile.Handler(hostile.Options{Mode: hostile.Hang}))
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := post(ctx, s.Client(), s.URL)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output: true
}

// A Redirect, seen by a client that does not follow redirects (as keel's
// must not).
func ExampleHandler_redirect() {
	s := hostile.Listen(hostile.Handler(hostile.Options{Mode: hostile.Redirect, Status: 307, Location: "https://elsewhere.example/"}))
	defer s.Close()
	c := *s.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := post(context.Background(), &c, s.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Location"))
	// Output: 307 Temporary Redirect https://elsewhere.example/
}
