package jsonscan_test

import (
	"fmt"

	"github.com/keel-run/keel/internal/jsonscan"
)

// Read two fields of a reply, skipping the rest, and report the first
// syntax error with its offset.
func Example() {
	for _, body := range []string{
		`{"output":{"text":"caf\u00e9"},"usage":{"inputTokens":12,"outputTokens":3}}`,
		`{"output":{"text":"x"},"usage":{"inputTokens":12 "outputTokens":3}}`,
	} {
		s := jsonscan.New([]byte(body), 0)
		var text []byte
		var in int
		s.Object(func(key []byte) {
			switch string(key) {
			case "output":
				s.Object(func(key []byte) {
					if string(key) == "text" {
						text = s.String(text)
					}
				})
			case "usage":
				s.Object(func(key []byte) {
					if string(key) == "inputTokens" {
						in = s.Int()
					}
				})
			}
		})
		s.End()
		fmt.Printf("%q %d %v\n", text, in, s.Err())
	}
	// Output:
	// "café" 12 <nil>
	// "x" 12 jsonscan: expected ',' or '}' in an object at byte 49
}
