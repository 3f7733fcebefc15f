package dlq_test

import (
	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/engine"
)

// Record recognises the SDK face's error by its methods (package dlq does
// not import package keel); this breaks the build if they change.
var _ interface {
	Entry() *catalog.Entry
	Report() *engine.Report
} = (*keel.Error)(nil)
