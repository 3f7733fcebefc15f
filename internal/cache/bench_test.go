package cache

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkKeyOf measures the key of Converse bodies of three sizes: the
// canonical form and its SHA-256, the hit path's main cost.
func BenchmarkKeyOf(b *testing.B) {
	for _, words := range []int{10, 100, 1000} {
		prompt := strings.Repeat("some words of a prompt ", words)
		body := []byte(`{"messages":[{"role":"user","content":[{"text":"` + prompt + `"}]}],"inferenceConfig":{"temperature":0,"maxTokens":512}}`)
		b.Run(fmt.Sprintf("%dB", len(body)), func(b *testing.B) {
			r := Request{Family: "converse", Model: "m", Body: body}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := KeyOf(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
