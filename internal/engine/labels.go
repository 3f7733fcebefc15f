package engine

import (
	"sync"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/bedrock"
)

// Bounds on the distinct label values of the engine's metrics. A model id
// and a region come from the caller (through a gateway, from anyone who
// may call it), and each new value makes a few dozen series; past these
// bounds a new value is counted under otherLabel, so /metrics cannot grow
// without end.
const (
	// maxModelLabels bounds the model ids outside keel's model table
	// (ARNs of provisioned or imported models, application inference
	// profiles, newer models) that get series of their own; the table's
	// ids always do. A deployment uses a handful of such ids.
	maxModelLabels = 64
	// maxRegionLabels bounds the regions that get series of their own:
	// more than AWS has.
	maxRegionLabels = 64
	// otherLabel stands for the values past a bound.
	otherLabel = "other"
)

// labelSet keeps the first max values of a label it is given, and folds
// later ones into otherLabel. It is safe for concurrent use.
type labelSet struct {
	max   int
	known func(string) bool // values that never count against max; nil: none
	seen  sync.Map          // value -> struct{}
	mu    sync.Mutex        // held to add to seen
	n     int
}

func newModelLabels() *labelSet {
	return &labelSet{max: maxModelLabels, known: func(id string) bool {
		_, ok := bedrock.LookupModel(bedrock.BaseModelID(id))
		return ok
	}}
}

func newRegionLabels() *labelSet { return &labelSet{max: maxRegionLabels} }

// label returns v, or otherLabel when v is new and the set is full.
func (s *labelSet) label(v string) string {
	if _, ok := s.seen.Load(v); ok {
		return v
	}
	if s.known != nil && s.known(v) {
		return v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen.Load(v); ok {
		return v
	}
	if s.n >= s.max {
		return otherLabel
	}
	s.seen.Store(v, struct{}{})
	s.n++
	return v
}

// quotaSeries is the governor's figures the quota gauges show: those of
// the targets whose model and region have label values of their own. A
// folded target is still governed, and shown on the status page, but has
// no gauges: two targets folded into one label set cannot share a gauge.
func (e *Engine) quotaSeries() []admission.Stats {
	all := e.gov.Snapshot()
	out := all[:0]
	for _, st := range all {
		if e.models.label(st.Target.Model) != otherLabel && e.regions.label(st.Target.Region) != otherLabel {
			out = append(out, st)
		}
	}
	return out
}
