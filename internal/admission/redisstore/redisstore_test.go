package redisstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/admission/redisstore"
	"github.com/keel-run/keel/internal/admission/storetest"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

// prefixes numbers the clients of one server, so that each case's keys
// are its own.
var prefixes atomic.Int64

// client returns a redisx.Client of srv with a prefix of its own, closed
// when the test ends.
func client(t *testing.T, srv *redistest.Server) *redisx.Client {
	t.Helper()
	c, err := redisx.Open(context.Background(), redisx.Options{URL: srv.URL, Prefix: fmt.Sprintf("t%d:", prefixes.Add(1)), ID: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) admission.Store {
		return redisstore.New(client(t, srv), redisstore.Options{CallerTime: true})
	})
}
