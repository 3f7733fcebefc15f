package reply_test

import (
	"fmt"

	"github.com/keel-run/keel/internal/emulator/reply"
)

// A reply broken after some tokens is resumed by sending what arrived as a
// prefill: the continuation is exactly the rest of the unbroken reply.
func Example_continuation() {
	question := []reply.Message{{Role: "user", Text: "Tell me about harbors."}}
	unbroken := reply.Generate(&reply.Request{Seed: 7, Model: "anthropic.claude-sonnet-4-5-20250929-v1:0",
		Messages: question, MaxTokens: 10})

	// The stream broke after 4 tokens.
	got := unbroken.Text[:reply.Cut(unbroken.Text, 4)]
	rest := reply.Generate(&reply.Request{Seed: 7, Model: "anthropic.claude-sonnet-4-5-20250929-v1:0",
		Messages: append(question, reply.Message{Role: "assistant", Text: got}), MaxTokens: 10 - 4})

	fmt.Printf("%q + %q\n", got, rest.Text)
	fmt.Println(got+rest.Text == unbroken.Text, rest.Continued, rest.OutputTokens, rest.StopReason)
	// Output:
	// "Early room" + " soon there number"
	// true true 6 max_tokens
}

// Tokens are runs of at most four characters of one word, the word's
// leading space included.
func ExampleCount() {
	for _, s := range []string{"Hello", " world", "tokenizer", "a b c"} {
		fmt.Println(reply.Count(s), s)
	}
	// Output:
	// 2 Hello
	// 2  world
	// 3 tokenizer
	// 3 a b c
}
