package catalog_test

import (
	"fmt"

	"github.com/keel-run/keel/internal/catalog"
)

func ExampleLookup() {
	// The X-Amzn-ErrorType header may carry a suffix; event streams use
	// lowerCamelCase. Both find the same entry.
	for _, code := range []string{
		"ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
		"throttlingException",
	} {
		e, _ := catalog.Lookup(code)
		fmt.Println(e.Code, e.Status, e.Retry)
	}
	// Output:
	// ThrottlingException 429 throttled
	// ThrottlingException 429 throttled
}

func ExampleForStatus() {
	// A 502 from a load balancer carries no Bedrock code.
	e := catalog.ForStatus(502)
	fmt.Println(e.Code, e.Retry, e.Unhealthy)
	// Output: UnknownServerError backoff true
}
