package stream

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestOverlap(t *testing.T) {
	long := strings.Repeat("word", 100) // 400 bytes, no word start inside
	tests := []struct {
		name       string
		have, next string
		want       string // the part of next dropped
	}{
		{name: "both empty", have: "", next: "", want: ""},
		{name: "nothing delivered", have: "", next: "Hello world", want: ""},
		{name: "empty continuation", have: "Hello world", next: "", want: ""},
		{name: "no overlap: the continuation starts mid-word", have: "Ships have keels to keep them upri", next: "ght in the wind.", want: ""},
		{name: "partial: the last words repeated", have: "Ships have keels to keep them upright", next: " to keep them upright in the wind.", want: " to keep them upright"},
		{name: "partial from a word start without its space", have: "Ships have keels to keep them upright", next: "keep them upright in the wind.", want: "keep them upright"},
		{name: "full: the whole reply so far repeated", have: "Ships have keels.", next: "Ships have keels. They keep them upright.", want: "Ships have keels."},
		{name: "full: the continuation is only the repetition", have: "Ships have keels.", next: "have keels.", want: "have keels."},
		{name: "the longest overlap wins", have: "one two one two one two", next: "one two one two three", want: "one two one two"},
		{name: "a single common character is not an overlap", have: "a cat", next: "tall tree", want: ""},
		{name: "a single common word is not an overlap", have: "they sailed the", next: "the sea.", want: ""},
		{name: "a common word with its spaces: only the repeated space goes", have: "over the ", next: " the ", want: " "},
		{name: "seven characters are too few", have: "It sank in a gale", next: " a gale of wind", want: ""},
		{name: "eight characters from a word start are enough", have: "It sank in a gale", next: "in a gale of wind", want: "in a gale"},
		{name: "not from inside a word", have: "a standing understanding", next: "standing ovation", want: ""},
		{name: "trailing whitespace repeated is dropped", have: "Hello world \n", next: " \nagain", want: " \n"},
		{name: "whitespace the reply did not end with is kept", have: "Hello world", next: " again", want: ""},
		{name: "unicode: counted in characters, not bytes", have: "Le café crème brûlée", next: "crème brûlée, puis", want: "crème brûlée"},
		{name: "unicode: three-byte runes, too few characters", have: "日本語のテキスト", next: "テキストの続き", want: ""},
		{name: "unicode: a sentence restart after a full stop", have: "最初の文です。次の文章をここに書きます", next: "次の文章をここに書きます。そして", want: "次の文章をここに書きます"},
		{name: "unicode: never inside a word of letters without spaces", have: "日本語の長い文章をここに書きます", next: "の長い文章をここに書きます。", want: ""},
		{name: "never split a rune even when the bytes match", have: "so ok é and then some", next: "\xa9 and then some more", want: ""},
		{name: "bounded: an overlap longer than MaxOverlap is not found", have: "x " + long, next: long + " more", want: ""},
		{name: "bounded: an overlap of MaxOverlap bytes is", have: "x " + long[:MaxOverlap-1], next: " " + long[:MaxOverlap-1] + " more", want: " " + long[:MaxOverlap-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := Overlap([]byte(tt.have), []byte(tt.next))
			if got := tt.next[:k]; got != tt.want {
				t.Fatalf("Overlap(%q, %q) drops %q, want %q", tt.have, tt.next, got, tt.want)
			}
			if k > 0 && k < len(tt.next) && !utf8.RuneStart(tt.next[k]) {
				t.Fatalf("the cut at %d splits a rune", k)
			}
		})
	}
}

// TestOverlapPending checks what the splicer waits on: a continuation
// that is so far a prefix of a possible overlap is pending.
func TestOverlapPending(t *testing.T) {
	tests := []struct {
		have, next string
		best       int
		pending    bool
	}{
		{"Ships have keels to keep them upright", " to keep", 0, true},
		{"Ships have keels to keep them upright", " to keep them upright", len(" to keep them upright"), false},
		{"Ships have keels to keep them upright", " in the wind", 0, false},
		{"Hello world \n", " ", 0, true}, // " \n" may follow
		{"Hello world \n", "again", 0, false},
	}
	for _, tt := range tests {
		best, pending := overlap([]byte(tt.have), []byte(tt.next))
		if best != tt.best || pending != tt.pending {
			t.Errorf("overlap(%q, %q) = %d, %v; want %d, %v", tt.have, tt.next, best, pending, tt.best, tt.pending)
		}
	}
}
