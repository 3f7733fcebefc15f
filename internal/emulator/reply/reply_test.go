package reply

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNext(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // the tokens, in order
	}{
		{name: "empty", text: "", want: nil},
		{name: "short word", text: "the", want: []string{"the"}},
		{name: "leading space travels with the word", text: "the cat", want: []string{"the", " cat"}},
		{name: "long word cut from its start", text: " model", want: []string{" mod", "el"}},
		{name: "punctuation belongs to the word", text: "end. Then", want: []string{"end.", " The", "n"}},
		{name: "long whitespace run", text: "a      b", want: []string{"a", "    ", "  b"}},
		{name: "paragraph break", text: "one.\n\nTwo", want: []string{"one.", "\n\nTw", "o"}},
		{name: "runes not bytes", text: "héllo wörld", want: []string{"héll", "o", " wör", "ld"}},
		{name: "unicode space", text: "a\u00a0b", want: []string{"a", "\u00a0b"}},
		{name: "only spaces", text: "   ", want: []string{"   "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for s := tt.text; len(s) > 0; {
				n := Next(s)
				if n <= 0 {
					t.Fatalf("Next(%q) = %d, want > 0", s, n)
				}
				got = append(got, s[:n])
				s = s[n:]
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("tokens of %q = %q, want %q", tt.text, got, tt.want)
			}
			if c := Count(tt.text); c != len(tt.want) {
				t.Errorf("Count(%q) = %d, want %d", tt.text, c, len(tt.want))
			}
		})
	}
}

func TestCut(t *testing.T) {
	tests := []struct {
		name string
		text string
		n    int
		want int
	}{
		{name: "zero tokens", text: "the cat sat", n: 0, want: 0},
		{name: "one token", text: "the cat sat", n: 1, want: 3},
		{name: "two tokens", text: "the cat sat", n: 2, want: 7},
		{name: "all tokens", text: "the cat sat", n: 3, want: 11},
		{name: "more than there are", text: "the cat sat", n: 10, want: 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Cut(tt.text, tt.n); got != tt.want {
				t.Errorf("Cut(%q, %d) = %d, want %d", tt.text, tt.n, got, tt.want)
			}
		})
	}
}

// TestTokenizeSuffix checks the property continuation rests on: tokenizing
// what follows any token boundary gives the tokens that followed it.
func TestTokenizeSuffix(t *testing.T) {
	texts := []string{
		Full(1, "m", "", []Message{{Role: "user", Text: "hi"}}, Range{}),
		"a      b  c\n\n\n\n\n\nd héllo  wörld  ",
		"supercalifragilistic expialidocious.",
	}
	for _, text := range texts {
		var bounds []int
		for i := 0; i < len(text); i += Next(text[i:]) {
			bounds = append(bounds, i)
		}
		for k, b := range bounds {
			rest := text[b:]
			for j := k; j < len(bounds); j++ {
				want := bounds[j] - b
				if len(rest) == 0 {
					t.Fatalf("suffix at %d ran out early", b)
				}
				got := len(text[b:]) - len(rest)
				if got != want {
					t.Fatalf("suffix at byte %d: boundary %d, want %d", b, got, want)
				}
				rest = rest[Next(rest):]
			}
		}
	}
}

func conv(texts ...string) []Message {
	msgs := make([]Message, len(texts))
	for i, s := range texts {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		msgs[i] = Message{Role: role, Text: s}
	}
	return msgs
}

func TestGenerateDeterministic(t *testing.T) {
	base := Request{Seed: 7, Model: "anthropic.claude-sonnet-4-5-20250929-v1:0", System: "Be brief.", Messages: conv("Tell me about rivers.")}
	tests := []struct {
		name string
		edit func(r *Request)
		same bool
	}{
		{name: "identical request", edit: func(r *Request) {}, same: true},
		{name: "max tokens does not change the full reply", edit: func(r *Request) { r.MaxTokens = 5000 }, same: true},
		{name: "other seed", edit: func(r *Request) { r.Seed = 8 }},
		{name: "other model", edit: func(r *Request) { r.Model = "anthropic.claude-3-haiku-20240307-v1:0" }},
		{name: "other system prompt", edit: func(r *Request) { r.System = "Be long." }},
		{name: "other message", edit: func(r *Request) { r.Messages = conv("Tell me about roads.") }},
		{name: "text moved between system and message", edit: func(r *Request) {
			r.System = "Be brief.Tell me"
			r.Messages = conv(" about rivers.")
		}},
	}
	want := Generate(&base)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := base
			tt.edit(&req)
			got := Generate(&req)
			if (got.Text == want.Text) != tt.same {
				t.Errorf("same text = %v, want %v\n got: %q\nbase: %q", got.Text == want.Text, tt.same, got.Text, want.Text)
			}
		})
	}
}

func TestGenerateLimits(t *testing.T) {
	msgs := conv("What is a harbor?")
	full := Full(3, "m", "", msgs, Range{})
	fullTokens := Count(full)
	if fullTokens < DefaultRange.Min {
		t.Fatalf("full reply has %d tokens, fewer than %d", fullTokens, DefaultRange.Min)
	}
	// A word of the reply, to use as a stop sequence.
	tenth := full[Cut(full, 9):Cut(full, 10)]
	stopAt := strings.Index(full, tenth)
	tests := []struct {
		name      string
		maxTokens int
		stops     []string
		wantText  string
		reason    StopReason
		stopSeq   string
	}{
		{name: "no limit", wantText: full, reason: EndTurn},
		{name: "limit above the reply", maxTokens: fullTokens + 1, wantText: full, reason: EndTurn},
		{name: "limit equal to the reply", maxTokens: fullTokens, wantText: full, reason: EndTurn},
		{name: "limit below the reply", maxTokens: 7, wantText: full[:Cut(full, 7)], reason: MaxTokens},
		{name: "one token", maxTokens: 1, wantText: full[:Cut(full, 1)], reason: MaxTokens},
		{name: "stop sequence", stops: []string{"zzz-never", tenth}, wantText: full[:stopAt], reason: StopSequence, stopSeq: tenth},
		{name: "earliest stop sequence wins", stops: []string{tenth, full[Cut(full, 2):Cut(full, 3)]},
			wantText: full[:strings.Index(full, full[Cut(full, 2):Cut(full, 3)])], reason: StopSequence, stopSeq: full[Cut(full, 2):Cut(full, 3)]},
		{name: "stop sequence beyond the token limit is not reached", maxTokens: 5, stops: []string{tenth},
			wantText: full[:Cut(full, 5)], reason: MaxTokens},
		{name: "empty stop sequence ignored", stops: []string{""}, wantText: full, reason: EndTurn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Generate(&Request{Seed: 3, Model: "m", Messages: msgs, MaxTokens: tt.maxTokens, StopSequences: tt.stops})
			if r.Text != tt.wantText {
				t.Errorf("Text = %q\nwant %q", r.Text, tt.wantText)
			}
			if r.StopReason != tt.reason || r.StopSequence != tt.stopSeq {
				t.Errorf("stop = %q %q, want %q %q", r.StopReason, r.StopSequence, tt.reason, tt.stopSeq)
			}
			if r.OutputTokens != Count(r.Text) {
				t.Errorf("OutputTokens = %d, Count(Text) = %d", r.OutputTokens, Count(r.Text))
			}
			if tt.reason == MaxTokens && r.OutputTokens != tt.maxTokens {
				t.Errorf("OutputTokens = %d, want the limit %d", r.OutputTokens, tt.maxTokens)
			}
			if r.InputTokens != Count("What is a harbor?") {
				t.Errorf("InputTokens = %d, want %d", r.InputTokens, Count("What is a harbor?"))
			}
		})
	}
}

// TestContinuation checks the resume property: for a reply broken after k
// tokens, a continuation request with the k tokens as prefill and the token
// limit lowered by k returns exactly what the unbroken reply had after them.
func TestContinuation(t *testing.T) {
	msgs := conv("Describe a quiet valley.", "It is green.", "And in winter?")
	for _, limit := range []int{0, 40} {
		unbroken := Generate(&Request{Seed: 11, Model: "m", System: "sys", Messages: msgs, MaxTokens: limit})
		n := unbroken.OutputTokens
		for k := 0; k <= n; k++ {
			prefill := unbroken.Text[:Cut(unbroken.Text, k)]
			req := Request{Seed: 11, Model: "m", System: "sys", Messages: append(append([]Message(nil), msgs...), Message{Role: "assistant", Text: prefill})}
			if limit > 0 {
				req.MaxTokens = limit - k
				if req.MaxTokens == 0 {
					continue // nothing left to ask for
				}
			}
			cont := Generate(&req)
			if prefill != "" && !cont.Continued {
				t.Fatalf("limit %d, k=%d: Continued = false", limit, k)
			}
			if got := prefill + cont.Text; got != unbroken.Text {
				t.Fatalf("limit %d, k=%d: prefill+continuation differs from the unbroken reply\n got %q\nwant %q", limit, k, got, unbroken.Text)
			}
			if cont.OutputTokens != n-k {
				t.Fatalf("limit %d, k=%d: OutputTokens = %d, want %d", limit, k, cont.OutputTokens, n-k)
			}
			if cont.StopReason != unbroken.StopReason {
				t.Fatalf("limit %d, k=%d: StopReason = %q, want %q", limit, k, cont.StopReason, unbroken.StopReason)
			}
			if want := unbroken.InputTokens + Count(prefill); cont.InputTokens != want {
				t.Fatalf("limit %d, k=%d: InputTokens = %d, want %d (prefill counts as input)", limit, k, cont.InputTokens, want)
			}
		}
	}
}

func TestPrefillNotAPrefix(t *testing.T) {
	msgs := conv("Hello.")
	fresh := Generate(&Request{Seed: 1, Model: "m", Messages: append(msgs, Message{Role: "assistant", Text: "Certainly not"})})
	if fresh.Continued {
		t.Error("Continued = true for a prefill that is not a prefix of the reply")
	}
	if fresh.Text == "" || fresh.Text == Full(1, "m", "", msgs, Range{}) {
		t.Errorf("Text = %q, want a fresh reply that continues the prefill", fresh.Text)
	}
	again := Generate(&Request{Seed: 1, Model: "m", Messages: append(msgs, Message{Role: "assistant", Text: "Certainly not"})})
	if again.Text != fresh.Text {
		t.Error("reply to the same prefill is not deterministic")
	}
}

func TestLength(t *testing.T) {
	tests := []struct {
		name string
		r    Range
		min  int
		max  int // upper bound: the range's max plus one longest sentence
	}{
		{name: "default", r: Range{}, min: DefaultRange.Min, max: DefaultRange.Max + 70},
		{name: "exact", r: Range{Min: 50, Max: 50}, min: 50, max: 50 + 70},
		{name: "long", r: Range{Min: 2000, Max: 3000}, min: 2000, max: 3000 + 70},
		{name: "inverted range is its min", r: Range{Min: 30, Max: 10}, min: 30, max: 30 + 70},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := int64(0); seed < 50; seed++ {
				text := Full(seed, "m", "", conv("q"), tt.r)
				n := Count(text)
				if n < tt.min || n > tt.max {
					t.Fatalf("seed %d: %d tokens, want [%d, %d]", seed, n, tt.min, tt.max)
				}
				if !strings.HasSuffix(text, ".") {
					t.Fatalf("seed %d: reply does not end a sentence: %q", seed, text[len(text)-10:])
				}
			}
		})
	}
}

func TestReadable(t *testing.T) {
	text := Full(5, "m", "", conv("q"), Range{Min: 3000, Max: 3000})
	if !utf8.ValidString(text) {
		t.Fatal("invalid UTF-8")
	}
	for i, c := range text {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == ' ' || c == ',' || c == '.' || c == '\n'
		if !ok {
			t.Fatalf("unexpected %q at %d", c, i)
		}
	}
	if strings.Contains(text, "  ") || strings.Contains(text, "\n\n\n") || strings.HasSuffix(text, " ") {
		t.Error("irregular spacing")
	}
	if !strings.Contains(text, "\n\n") {
		t.Error("no paragraph breaks in a long reply")
	}
	// Roughly four characters per token, as documented.
	perToken := float64(len(text)) / float64(Count(text))
	if perToken < 2.5 || perToken > 4.5 {
		t.Errorf("%.2f characters per token", perToken)
	}
}

func BenchmarkGenerate(b *testing.B) {
	req := Request{Seed: 1, Model: "anthropic.claude-sonnet-4-5-20250929-v1:0", System: "You are terse.",
		Messages: conv("Write a short note about harbors and the boats in them."), MaxTokens: 1024}
	b.ReportAllocs()
	for b.Loop() {
		Generate(&req)
	}
}

func TestFullTokenCount(t *testing.T) {
	for seed := int64(0); seed < 200; seed++ {
		text, n := full(seed, "m", "", conv("q"), Range{})
		if c := Count(text); c != n {
			t.Fatalf("seed %d: write counted %d tokens, Count says %d", seed, n, c)
		}
	}
}

func BenchmarkCount(b *testing.B) {
	text := Full(1, "m", "", conv("q"), Range{Min: 1000, Max: 1000})
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		Count(text)
	}
}

// TestScanFastPath checks the word-at-a-time scan against the rune-by-rune
// one on random text mixing ASCII, Unicode letters and Unicode spaces.
func TestScanFastPath(t *testing.T) {
	alphabet := []string{"a", "b", "Z", ".", " ", " ", "\n", "\t", "é", "日本", "\u00a0", "\u2003", "x"}
	g := rng{state: 99}
	for k := 0; k < 3000; k++ {
		var sb strings.Builder
		for n := int(g.next() % 40); n > 0; n-- {
			sb.WriteString(alphabet[g.next()%uint64(len(alphabet))])
		}
		text := sb.String()
		for _, limit := range []int{-1, 0, 1, 2, 3, 5, 8, 100} {
			e1, n1 := scan(text, limit)
			e2, n2 := scanRunes(text, limit)
			if e1 != e2 || n1 != n2 {
				t.Fatalf("scan(%q, %d) = %d, %d; rune by rune %d, %d", text, limit, e1, n1, e2, n2)
			}
		}
	}
}

func TestCacheAgreesWithWriting(t *testing.T) {
	for seed := int64(0); seed < 50; seed++ {
		for _, lr := range []Range{{}, {Min: 5, Max: 5}} {
			first, n1 := full(seed, "m", "s", conv("q"), lr)
			again, n2 := full(seed, "m", "s", conv("q"), lr) // from the cache
			g := rng{state: conversationHash(seed, "m", "s", conv("q"))}
			fresh, n3 := write(&g, lr.draw(&g))
			if first != fresh || again != fresh || n1 != n3 || n2 != n3 {
				t.Fatalf("seed %d, %v: cached and fresh replies differ", seed, lr)
			}
		}
	}
}

func BenchmarkGenerateUncached(b *testing.B) {
	req := Request{Model: "anthropic.claude-sonnet-4-5-20250929-v1:0", System: "You are terse.",
		Messages: conv("Write a short note about harbors and the boats in them."), MaxTokens: 1024}
	b.ReportAllocs()
	for b.Loop() {
		req.Seed++ // a new conversation every time
		Generate(&req)
	}
}
