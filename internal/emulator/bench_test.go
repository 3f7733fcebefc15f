package emulator

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The emulator must never be what limits a benchmark of keel. These measure
// it with zero latency: the handler alone (parallel ServeHTTP calls, no
// network), and through real loopback sockets with keep-alive clients.

const benchAuth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/aws4_request, " +
	"SignedHeaders=content-type;host;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var (
	benchConverse = []byte(`{"messages":[{"role":"user","content":[{"text":"Write a short note about harbors and the boats in them."}]}],` +
		`"system":[{"text":"You are terse."}],"inferenceConfig":{"maxTokens":200}}`)
	benchInvoke = []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":200,"system":"You are terse.",` +
		`"messages":[{"role":"user","content":"Write a short note about harbors and the boats in them."}]}`)
)

// discard is a ResponseWriter that keeps nothing but the status.
type discard struct {
	h      http.Header
	status int
	n      int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.status = code }
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }
func (d *discard) Flush()                      {}

func benchHandler(b *testing.B, path string, body []byte) {
	s := newServer(b, Options{Seed: 1})
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		rd := bytes.NewReader(body)
		r, _ := http.NewRequest("POST", "http://emulator"+path, io.NopCloser(rd))
		r.Header.Set("Authorization", benchAuth)
		r.Header.Set("Content-Type", "application/json")
		w := &discard{h: http.Header{}}
		for pb.Next() {
			rd.Reset(body)
			clear(w.h)
			w.status = 0
			s.ServeHTTP(w, r)
			if w.status != 200 {
				b.Fatalf("status %d", w.status)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func BenchmarkServeConverse(b *testing.B) {
	benchHandler(b, "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse", benchConverse)
}

func BenchmarkServeInvoke(b *testing.B) {
	benchHandler(b, "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke", benchInvoke)
}

func BenchmarkServeConverseStream(b *testing.B) {
	benchHandler(b, "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream", benchConverse)
}

func BenchmarkServeInvokeStream(b *testing.B) {
	benchHandler(b, "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream", benchInvoke)
}

// BenchmarkLoopbackConverse serves Converse through a real socket: keep-alive
// clients on 127.0.0.1, as many in flight as GOMAXPROCS × the parallelism
// below. Client and server share the machine's cores, so this is a floor.
func BenchmarkLoopbackConverse(b *testing.B) {
	rn := start(b, Options{Seed: 1})
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	url := rn.URL + "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 8192)
		for pb.Next() {
			r, _ := http.NewRequest("POST", url, bytes.NewReader(benchConverse))
			r.Header.Set("Authorization", benchAuth)
			r.Header.Set("Content-Type", "application/json")
			resp, err := c.Do(r)
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					break
				}
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkLoopbackRaw serves Converse through real sockets to a minimal
// HTTP/1.1 client: 16 keep-alive connections, each sending a prebuilt
// request and reading the response by its Content-Length, the way load
// generators such as wrk do. The client costs little, so this shows what the
// server side sustains when it has most of the machine. Set
// KEEL_EMULATOR_ADDR=host:port to load an emulator in another process
// (keel emulate) instead of one started here.
func BenchmarkLoopbackRaw(b *testing.B) {
	addr := os.Getenv("KEEL_EMULATOR_ADDR")
	if addr == "" {
		addr = start(b, Options{Seed: 1}).Addr()
	}
	req := []byte("POST /model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse HTTP/1.1\r\n" +
		"Host: " + addr + "\r\nAuthorization: " + benchAuth + "\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(benchConverse)) + "\r\n\r\n" + string(benchConverse))
	const conns = 16
	var mu sync.Mutex
	var failed error
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N / conns
	for c := 0; c < conns; c++ {
		n := per
		if c == 0 {
			n += b.N % conns
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rawClient(addr, req, n); err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		b.Fatal(failed)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// rawClient sends req n times on one connection, reading each response.
func rawClient(addr string, req []byte, n int) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 16<<10)
	for i := 0; i < n; i++ {
		if _, err := conn.Write(req); err != nil {
			return err
		}
		status, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(status, []byte("HTTP/1.1 200")) {
			return fmt.Errorf("status line %q", status)
		}
		length := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return err
			}
			if len(line) <= 2 {
				break
			}
			if k, v, ok := strings.Cut(string(line), ":"); ok && strings.EqualFold(k, "Content-Length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if length < 0 {
			return fmt.Errorf("response without Content-Length")
		}
		if _, err := br.Discard(length); err != nil {
			return err
		}
	}
	return nil
}
