package reply

import "strings"

// A continuation without a prefill repeats, two times in three, the end of
// the partial reply from a word start at least minRepeat and at most
// maxRepeat bytes back (the vocabulary is ASCII, so bytes are characters).
// Both lie within what keel's splicer drops as an overlap
// (stream.MinOverlap characters, stream.MaxOverlap bytes), so the spliced
// reply is the unbroken one, byte for byte.
const (
	minRepeat = 16
	maxRepeat = 200
)

// continueTurn answers a conversation that ends with an assistant message
// holding the start of the full reply to the conversation before it, then
// a user message of exactly req.ContinuePrompt: with the rest of that
// reply, after a repetition of the assistant message's end chosen from the
// whole request's hash (overlap bytes long), so that the same request
// always gets the same reply. It reports false for any other conversation.
func continueTurn(req *Request) (text string, overlap int, ok bool) {
	msgs := req.Messages
	n := len(msgs)
	if req.ContinuePrompt == "" || n < 3 || msgs[n-1].Role != "user" || msgs[n-1].Text != req.ContinuePrompt || msgs[n-2].Role != "assistant" {
		return "", 0, false
	}
	partial := msgs[n-2].Text
	whole, _ := full(req.Seed, req.Model, req.System, msgs[:n-2], req.Length)
	if partial == "" || !strings.HasPrefix(whole, partial) {
		return "", 0, false
	}
	repeat := repeatedTail(partial, conversationHash(req.Seed, req.Model, req.System, msgs))
	return repeat + whole[len(partial):], len(repeat), true
}

// repeatedTail returns the end of partial a continuation repeats: nothing
// for one hash in three, else the text from one of the word starts
// between maxRepeat and minRepeat bytes from its end.
func repeatedTail(partial string, h uint64) string {
	h = mix(h)
	if h%3 == 0 {
		return ""
	}
	var starts []int
	for i := max(0, len(partial)-maxRepeat); i <= len(partial)-minRepeat; i++ {
		if (i == 0 || asciiSpace[partial[i-1]]) && !asciiSpace[partial[i]] {
			starts = append(starts, i)
		}
	}
	if len(starts) == 0 {
		return ""
	}
	return partial[starts[(h/3)%uint64(len(starts))]:]
}
