package gateway

import (
	"math"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/engine"
)

// unknownMaxOutput and unknownBurndown are a caller's hold and charge for
// a model that neither the quota governor nor keel's model table knows:
// the governor's own figures for such a model (admission's unknownModel),
// so that a caller's budget counts what the quota does.
const (
	unknownMaxOutput = 8192
	unknownBurndown  = 1
)

// modelFacts returns the largest output and the burndown of t's model as
// the quota governor counts them: its own facts once it governs t (they
// include the configured quotas.models), else keel's model table.
func (s *Server) modelFacts(t attempt.Target) (maxOutput int, burndown float64) {
	if st, ok := s.opts.Engine.QuotaStats(t); ok && st.Model.MaxOutputTokens > 0 {
		return st.Model.MaxOutputTokens, st.Model.Burndown
	}
	if row, ok := bedrock.LookupModel(bedrock.BaseModelID(t.Model)); ok {
		return row.MaxOutput, row.Burndown
	}
	return unknownMaxOutput, unknownBurndown
}

// hold is what a call holds of its caller's budget, as the governor holds
// of the quota: the input estimate plus the max tokens, or the model's
// largest output when the request sets none.
func (s *Server) hold(est admission.Estimate, t attempt.Target) int {
	if est.MaxTokens > 0 {
		return est.InputTokens + est.MaxTokens
	}
	maxOut, _ := s.modelFacts(t)
	return est.InputTokens + maxOut
}

// charge is what a call used of its caller's budget, as the governor
// settles it: input + cache-write input + output × the model's burndown.
func (s *Server) charge(u engine.Usage, t attempt.Target) int {
	_, burndown := s.modelFacts(t)
	return max(u.InputTokens, 0) + max(u.CacheWriteInputTokens, 0) + int(math.Ceil(float64(max(u.OutputTokens, 0))*burndown))
}
