package gateway_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkConverse sends Converse bodies over plain HTTP/1.1 to the
// emulator directly and through the gateway (keel's engine in front of
// it), one at a time: the difference is what the gateway adds per call.
func BenchmarkConverse(b *testing.B) {
	h := newHarness(b, setup{})
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	for _, target := range []struct{ name, url string }{{"emulator", h.emu.URL}, {"gateway", h.url}} {
		b.Run(target.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, target.url+"/model/"+haiku+"/converse", strings.NewReader(converseBody))
				req.Header.Set("Content-Type", "application/json")
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
