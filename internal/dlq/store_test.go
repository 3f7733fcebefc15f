package dlq_test

import (
	"path/filepath"
	"testing"

	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/dlq/dlqtest"
)

func TestMemoryConformance(t *testing.T) {
	dlqtest.Run(t, func(t *testing.T) dlq.Store { return dlq.NewMemory() })
}

func TestSQLiteConformance(t *testing.T) {
	dlqtest.Run(t, func(t *testing.T) dlq.Store {
		s, err := dlq.OpenSQLite(filepath.Join(t.TempDir(), "dlq.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
