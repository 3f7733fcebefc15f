package emulator

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendJSONString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "plain", in: "hello", want: `"hello"`},
		{name: "quotes and backslash", in: `a"b\c`, want: `"a\"b\\c"`},
		{name: "control characters", in: "a\nb\tc\rd\x01", want: `"a\nb\tc\rd\u0001"`},
		{name: "unicode kept", in: "héllo 日本", want: `"héllo 日本"`},
		{name: "line separators escaped", in: "a\u2028b\u2029", want: `"a\u2028b\u2029"`},
		{name: "invalid UTF-8 replaced", in: "a\xffb", want: `"a\ufffdb"`},
		{name: "empty", in: "", want: `""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendJSONString(nil, tt.in)); got != tt.want {
				t.Errorf("appendJSONString(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzAppendJSONString checks that what appendJSONString writes decodes back
// to the input (with invalid UTF-8 replaced, as encoding/json does).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a\"\\\n\x00", "\xff\xfe", "日本\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		want := s
		if !utf8.ValidString(s) {
			want = strings.ToValidUTF8(s, "\ufffd")
			// encoding/json replaces each invalid byte; ToValidUTF8 merges runs.
			got = strings.ToValidUTF8(got, "\ufffd")
			for strings.Contains(got, "\ufffd\ufffd") {
				got = strings.ReplaceAll(got, "\ufffd\ufffd", "\ufffd")
			}
			for strings.Contains(want, "\ufffd\ufffd") {
				want = strings.ReplaceAll(want, "\ufffd\ufffd", "\ufffd")
			}
		}
		if got != want {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
	})
}
