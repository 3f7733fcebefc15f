package emulator

import "github.com/keel-run/keel/internal/catalog"

// prefillRefused is the message Bedrock answers a conversation ending in
// an assistant message with, on the models that refuse a prefill; Converse
// puts its usual prefix before it.
var prefillRefused = catalog.Must(catalog.CodePrefillUnsupported).DefaultMessage

// checkPrefill refuses a conversation ending in an assistant message (a
// prefill) on a model that takes none (Model.NoPrefill, from the model
// table's prefill flag) with Bedrock's 400 ValidationException, and reports
// whether the request may go on. A conversation ending in a user turn that
// asks for a cut-off reply to be continued (stream.ContinuePrompt) passes,
// and is answered with the rest of the reply: see reply.Request.ContinuePrompt.
func (x *exchange) checkPrefill() bool {
	if n := len(x.msgs); !x.tgt.model.NoPrefill || n == 0 || x.msgs[n-1].Role != "assistant" {
		return true
	}
	msg := prefillRefused
	if x.op == OpConverse || x.op == OpConverseStream {
		msg = "The model returned the following errors: " + msg
	}
	x.fail(codeValidation, msg)
	return false
}
