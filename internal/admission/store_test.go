package admission_test

import (
	"testing"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/admission/storetest"
)

func TestMemStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) admission.Store { return new(admission.MemStore) })
}
