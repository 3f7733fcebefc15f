package gateway

import "testing"

// TestIsJSON covers the content types whose bodies the gateway checks as
// JSON: none, exactly what the SDKs send (the fast path), and any other
// spelling of a JSON media type.
func TestIsJSON(t *testing.T) {
	tests := []struct {
		name, ct string
		want     bool
	}{
		{"unset", "", true},
		{"what the SDKs send", "application/json", true},
		{"with a charset", "application/json; charset=utf-8", true},
		{"in capitals", "Application/JSON", true},
		{"a +json type", "application/vnd.api+json", true},
		{"padded", " application/json ", true},
		{"text", "text/plain", false},
		{"an event stream", "application/vnd.amazon.eventstream", false},
		{"malformed", "application/json; charset", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isJSON(tt.ct); got != tt.want {
				t.Fatalf("isJSON(%q) = %v, want %v", tt.ct, got, tt.want)
			}
		})
	}
}

// BenchmarkIsJSON is the check every request on /model/ makes, with what
// the SDKs send and with a type that needs parsing.
func BenchmarkIsJSON(b *testing.B) {
	for _, ct := range []string{"application/json", "application/json; charset=utf-8"} {
		b.Run(ct, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !isJSON(ct) {
					b.Fatal("not JSON")
				}
			}
		})
	}
}
