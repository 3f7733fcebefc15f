package emulator

import (
	"bytes"
	"slices"

	"github.com/keel-run/keel/internal/bedrock"
)

// tierHeader is the InvokeModel request and response header that names a
// service tier; Converse carries it in the body as serviceTier.type.
const tierHeader = "X-Amzn-Bedrock-Service-Tier"

// Bedrock's answers to a tier it will not serve. The first two were seen
// from Bedrock (a value outside the enum; "reserved" without a
// reservation); it publishes no message for a known tier the model does
// not offer, so the third is the emulator's wording (docs/emulator.md).
const (
	msgTierInvalid     = "service tier provided is invalid"
	msgTierNoReserve   = "Reservation not found."
	msgTierUnsupported = "The provided service tier is not supported for this model."
)

// readTier reads the service tier the request asks for (the header on
// InvokeModel, serviceTier.type on Converse) into x.tier; a value that is
// no tier leaves x.tier empty and puts the refusal in x.badTier, which
// checkTier answers once the request's credentials have been checked.
func (x *exchange) readTier() {
	var t string
	switch x.op {
	case OpInvoke, OpInvokeStream:
		vs := x.r.Header[tierHeader]
		if len(vs) == 0 {
			return
		}
		t = vs[0]
	case OpConverse, OpConverseStream:
		if !bytes.Contains(x.body, []byte(`"serviceTier"`)) {
			return // the common case costs no second pass over the body
		}
		var ok bool
		if t, ok = converseTier(x.body); !ok {
			x.badTier = "Malformed input request, please reformat your input and try again."
			return
		}
		if t == "" {
			return
		}
	default:
		return
	}
	if !bedrock.ValidTier(t) {
		x.badTier = msgTierInvalid
		return
	}
	x.tier = t
}

// converseTier reads serviceTier.type from a Converse body: "" when
// serviceTier is absent or null, ok false when it is there without a
// string type.
func converseTier(body []byte) (tier string, ok bool) {
	r := newJSONReader(body)
	found, typed := false, false
	r.Object(func(key []byte) {
		if string(key) != "serviceTier" {
			return
		}
		if r.Null() {
			return
		}
		found = true
		r.Object(func(key []byte) {
			if string(key) == "type" && !r.Null() {
				tier, typed = r.str(), true
			}
		})
	})
	r.End()
	if r.Err() != nil || (found && !typed) {
		return "", false
	}
	return tier, true
}

// checkTier refuses a value that is no tier, and a tier the resolved model
// does not offer, as Bedrock does. A model with no tiers listed offers the
// default tier alone. It reports false when it answered.
func (x *exchange) checkTier() bool {
	if x.badTier != "" {
		x.fail(codeValidation, x.badTier)
		return false
	}
	if x.tier == "" || x.tier == bedrock.TierDefault || slices.Contains(x.tgt.model.ServiceTiers, x.tier) {
		return true
	}
	if x.tier == bedrock.TierReserved {
		x.fail(codeValidation, msgTierNoReserve)
	} else {
		x.fail(codeValidation, msgTierUnsupported)
	}
	return false
}

// appendTierField adds the serviceTier a Converse reply or ConverseStream
// metadata event reports, when the request named one.
func (x *exchange) appendTierField(b []byte) []byte {
	if x.tier == "" {
		return b
	}
	b = append(b, `,"serviceTier":{"type":`...)
	b = appendJSONString(b, x.tier)
	return append(b, '}')
}

// setTierHeader reports the tier that served an InvokeModel call in the
// response header, when the request named one.
func (x *exchange) setTierHeader() {
	if x.tier != "" && (x.op == OpInvoke || x.op == OpInvokeStream) {
		x.w.Header()[tierHeader] = []string{x.tier}
	}
}
