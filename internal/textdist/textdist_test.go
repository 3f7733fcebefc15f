package textdist

import (
	"strings"
	"testing"
)

func TestLevenshtein(t *testing.T) {
	long := strings.Repeat("ab", 50)
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"max_attempt", "max_attempts", 1},
		{"kitten", "sitting", 3}, {"throttling", "throtling", 1}, {"abc", "abc", 0},
		{long, long + "c", 1}, {long + "c", long, 1},
	}
	for _, tt := range tests {
		if got := Levenshtein(tt.a, tt.b); got != tt.want {
			t.Errorf("Levenshtein(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Levenshtein("ThrottlingException", "ThrotlingExeption") }); n != 0 {
		t.Errorf("%v allocations for short words", n)
	}
}
