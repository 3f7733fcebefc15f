package stream_test

import (
	"fmt"

	"github.com/keel-run/keel/internal/stream"
)

// A continue-turn continuation often starts by repeating the last words the
// reader has; Overlap finds them, and only what follows is delivered.
func ExampleOverlap() {
	have := []byte("Ships have keels to keep them")
	for _, next := range []string{
		" to keep them upright.", // the last words again
		" upright.",              // a clean continuation
		"them upright.",          // one short word: too short to be sure
	} {
		k := stream.Overlap(have, []byte(next))
		fmt.Printf("%q + %q\n", have, next[k:])
	}
	// Output:
	// "Ships have keels to keep them" + " upright."
	// "Ships have keels to keep them" + " upright."
	// "Ships have keels to keep them" + "them upright."
}
