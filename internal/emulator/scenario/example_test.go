package scenario_test

import (
	"fmt"
	"log"
	"time"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/scenario"
)

func ExampleInjector() {
	s, err := scenario.Parse([]byte(`
rules:
  - name: east-down
    region: us-east-1
    outages:
      - from: 10s
        to: 40s
        answer: 503
`))
	if err != nil {
		log.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	in := scenario.NewInjector(s, 1, clk)
	r := fault.Request{Model: "anthropic.claude-3-5-haiku-20241022-v1:0", Region: "us-east-1", Operation: "converse"}

	fmt.Printf("%q\n", in.Plan(r).Error)
	clk.Advance(10 * time.Second)
	p := in.Plan(r)
	fmt.Println(p.Error, p.Rule)
	// Output:
	// ""
	// ServiceUnavailableException east-down
}

func ExampleParse_error() {
	_, err := scenario.Parse([]byte(`
rules:
  - name: storm
    errors:
      - code: ThrottlingException
        probability: 1.5
`))
	fmt.Println(err)
	// Output:
	// scenario: line 6: rules[0].errors[0].probability: probability 1.5 is not between 0 and 1
}
