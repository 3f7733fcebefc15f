package gateway

import (
	"math"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/engine"
)

// modelFacts returns the largest output and the burndown of t's model as
// the quota governor counts them (the configured quotas.models, keel's model
// table, then its cautious figures for a model none knows).
func (s *Server) modelFacts(t attempt.Target) (maxOutput int, burndown float64) {
	m := s.opts.Engine.Governor().Model(t.Model)
	return m.MaxOutputTokens, m.Burndown
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
