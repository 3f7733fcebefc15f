package reply

import (
	"strings"
	"testing"
)

const continuePrompt = "Continue where you stopped."

// TestContinueTurn checks continuations without a prefill: for a reply cut
// after every k tokens, the partial reply (its trailing whitespace cut, as
// a client must) as an assistant turn, then the continue prompt, gets the
// rest of the unbroken reply, after a repetition of the partial reply's
// end that starts at a word start and is at least minRepeat and at most
// maxRepeat bytes long, or after nothing.
func TestContinueTurn(t *testing.T) {
	msgs := conv("Describe a quiet valley.", "It is green.", "And in winter?")
	unbroken := Generate(&Request{Seed: 11, Model: "m", System: "sys", Messages: msgs, Length: Range{Min: 150, Max: 150}})
	repeats, lengths := 0, map[int]bool{}
	for k := 1; k < unbroken.OutputTokens; k++ {
		partial := strings.TrimRight(unbroken.Text[:Cut(unbroken.Text, k)], " \n")
		req := Request{Seed: 11, Model: "m", System: "sys", ContinuePrompt: continuePrompt, Length: Range{Min: 150, Max: 150},
			Messages: append(append([]Message(nil), msgs...), Message{Role: "assistant", Text: partial}, Message{Role: "user", Text: continuePrompt})}
		r := Generate(&req)
		if !r.Continued {
			t.Fatalf("k=%d: Continued = false", k)
		}
		repeat, rest := r.Text[:r.Overlap], r.Text[r.Overlap:]
		if partial+rest != unbroken.Text {
			t.Fatalf("k=%d: partial + the continuation after its overlap is not the unbroken reply\n got %q\nwant %q", k, partial+rest, unbroken.Text)
		}
		if !strings.HasSuffix(partial, repeat) {
			t.Fatalf("k=%d: the overlap %q does not end the partial reply %q", k, repeat, partial)
		}
		if n := len(repeat); n > 0 {
			repeats++
			lengths[n] = true
			if n < minRepeat || n > maxRepeat || (n < len(partial) && partial[len(partial)-n-1] != ' ' && partial[len(partial)-n-1] != '\n') {
				t.Fatalf("k=%d: overlap %q: not %d to %d bytes from a word start", k, repeat, minRepeat, maxRepeat)
			}
		}
		if r.OutputTokens != Count(r.Text) || r.StopReason != EndTurn || r.InputTokens != InputTokens("sys", req.Messages) {
			t.Fatalf("k=%d: reply %+v", k, r)
		}
		if again := Generate(&req); again != r {
			t.Fatalf("k=%d: not deterministic", k)
		}
	}
	// About two in three repeat, with lengths spread over the range.
	if n := unbroken.OutputTokens - 1; repeats < n/3 || repeats > n-n/6 || len(lengths) < 5 {
		t.Fatalf("%d of %d continuations repeat, %d lengths: want about two in three, of varied lengths", repeats, n, len(lengths))
	}
}

// TestContinueTurnOther checks the conversations continueTurn leaves to
// the usual rules.
func TestContinueTurnOther(t *testing.T) {
	q := conv("Describe a quiet valley.")
	whole := Full(3, "m", "", q, Range{})
	partial := whole[:Cut(whole, 5)]
	with := func(msgs ...Message) Request {
		return Request{Seed: 3, Model: "m", ContinuePrompt: continuePrompt, Messages: append(append([]Message(nil), q...), msgs...)}
	}
	tests := []struct {
		name string
		req  Request
	}{
		{"another user turn", with(Message{Role: "assistant", Text: partial}, Message{Role: "user", Text: "Go on."})},
		{"an assistant turn that does not begin the reply", with(Message{Role: "assistant", Text: "Certainly not"}, Message{Role: "user", Text: continuePrompt})},
		{"no continue prompt set", Request{Seed: 3, Model: "m", Messages: append(append([]Message(nil), q...), Message{Role: "assistant", Text: partial}, Message{Role: "user", Text: continuePrompt})}},
		{"the prompt as the first turn", Request{Seed: 3, Model: "m", ContinuePrompt: continuePrompt, Messages: conv(continuePrompt)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Generate(&tt.req)
			if r.Continued || r.Overlap != 0 || r.Text != Full(3, "m", "", tt.req.Messages, Range{}) {
				t.Fatalf("reply %+v, want a fresh reply to the whole conversation", r)
			}
		})
	}
}
