package emulator

import "github.com/keel-run/keel/internal/stream"

// prefillRefused is what Bedrock answers a request to a Claude model that
// refuses a prefill (4.6 and later) whose conversation ends with an
// assistant message; Converse puts its usual prefix before it.
const prefillRefused = "This model does not support assistant message prefill. The conversation must end with a user message."

// refusePrefill answers a conversation that ends with an assistant message
// (a prefill) to an Anthropic model that refuses one with Bedrock's 400
// ValidationException, and reports whether it did. A conversation ending
// in a user turn that asks for a cut-off reply to be continued
// (stream.ContinuePrompt) is answered with the rest of the reply instead:
// see reply.Request.ContinuePrompt.
func (x *exchange) refusePrefill() bool {
	m, n := x.tgt.model, len(x.msgs)
	if m.Format != FormatAnthropic || n == 0 || x.msgs[n-1].Role != "assistant" || !stream.RefusesPrefill(m.ID) {
		return false
	}
	msg := prefillRefused
	if x.op == OpConverse || x.op == OpConverseStream {
		msg = "The model returned the following errors: " + msg
	}
	x.fail(codeValidation, msg)
	return true
}
