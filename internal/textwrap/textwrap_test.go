package textwrap

import "testing"

func TestFill(t *testing.T) {
	tests := []struct {
		name, text, prefix string
		width              int
		want               string
	}{
		{name: "fits", text: "a b c", prefix: "x: ", width: 20, want: "x: a b c"},
		{name: "wraps with indent", text: "aaa bbb ccc", prefix: "p: ", width: 10, want: "p: aaa bbb\n   ccc"},
		{name: "long word kept whole", text: "abcdefghijklmnop q", prefix: "", width: 5, want: "abcdefghijklmnop\nq"},
		{name: "empty", text: "", prefix: "p: ", width: 10, want: "p: "},
		{name: "runes, not bytes", text: "ééé ééé", prefix: "→ ", width: 9, want: "→ ééé ééé"},
		{name: "runs of spaces collapse", text: "a   b\n\tc", prefix: "", width: 80, want: "a b c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fill(tt.text, tt.prefix, tt.width); got != tt.want {
				t.Errorf("Fill = %q, want %q", got, tt.want)
			}
		})
	}
}
