package scenario

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/quota"
)

// Operations lists the operation names a rule's operation pattern is matched
// against, as fault.Request spells them.
var Operations = []string{"converse", "converse-stream", "invoke", "invoke-with-response-stream", "count-tokens"}

// Scenario is a parsed scenario file. Build one with Parse or Load; a
// Scenario built in Go must pass Validate before an Injector uses it. A
// Scenario must not be modified once an Injector holds it.
type Scenario struct {
	// Description is free text for people; the emulator ignores it.
	Description string
	// Quotas are the limits for the quota package, first match wins.
	Quotas quota.Table
	// Rules say how requests misbehave, in file order.
	Rules []Rule
	// ClockSkew sets the emulator's clock this far ahead of the true time
	// (negative: behind), within MaxClockSkew: its Date headers say so, and
	// its SigV4 check judges request dates by it, as a server whose clock
	// is wrong would (or, seen from the client, as a client whose clock is).
	ClockSkew time.Duration
	// Deny refuses models, as Bedrock refuses a model the account may not
	// use: every inference request (CountTokens too) a denial matches is
	// answered with its error, before any rule.
	Deny []Denial
	// Jobs sets the pace, quotas and faults of batch inference jobs.
	Jobs Jobs

	source []byte
}

// Source returns the text s was parsed from; nil for a Scenario built in Go.
func (s *Scenario) Source() []byte { return s.source }

// Rule matches requests and says what goes wrong for them. Every rule that
// matches a request takes part in its plan: latencies add up, and the first
// rule (in file order) to decide an outcome wins it.
type Rule struct {
	// Name identifies the rule in plans and counters. Parse names an unnamed
	// rule "rules[i]".
	Name string
	// Model, Region and Operation are '*' patterns the request must match;
	// empty means "*".
	Model, Region, Operation string
	// Tier is the service tier the request must ask for ("default" also
	// matches a request that names none); empty matches every tier. Rules
	// per tier model capacity that differs by tier: flex throttled first,
	// or slower under load.
	Tier string
	// From and To bound the time, measured from emulator start, in which the
	// rule applies. To zero means no end.
	From, To time.Duration
	// Errors are answered before the reply, each with its own probability;
	// the first that fires wins.
	Errors []ErrorFault
	// Refuse is the probability that the connection is closed without a response.
	Refuse float64
	// Hang is the probability that nothing at all is sent until the client gives up.
	Hang float64
	// Latency is added before the first byte of the response.
	Latency Latency
	// Stream breaks response bodies; the first entry that fires wins.
	Stream []StreamFault
	// Outages are windows in which every matching request gets the same answer.
	Outages []Outage
	// ColdStart, when set, answers ModelNotReadyException after idle periods.
	ColdStart *ColdStart

	line int // where the rule starts in the file, 0 if built in Go
}

// Denial refuses a model in some regions with a catalog error.
type Denial struct {
	// Model and Region are '*' patterns, as in a Rule; empty means "*".
	Model, Region string
	// Code is a catalog code of category access, auth or not-found with an
	// HTTP status: AccessDeniedException (Parse's default), FTUFormNotFilled,
	// MPAgreementBeingCreated, ResourceNotFoundException, ...
	Code string
	// Message overrides the catalog's default message; empty keeps it.
	Message string
}

// MaxClockSkew bounds ClockSkew: a day either way is far past any
// signature window (AWS allows 5 minutes), and a larger value is more
// likely a slip (10h for 10m) than a test.
const MaxClockSkew = 24 * time.Hour

// ErrorFault answers a catalog error before any reply.
type ErrorFault struct {
	// Code is a catalog code with an HTTP status, such as "ThrottlingException".
	Code string
	// Message overrides the catalog's default message; empty keeps it.
	Message string
	// Probability is the chance, from 0 to 1, that a matching request gets it.
	Probability float64
}

// Latency delays the response: Fixed plus a uniformly random part of up to
// Jitter, with the given probability.
type Latency struct {
	Fixed, Jitter time.Duration
	// Probability is the chance the delay applies; Parse defaults it to 1.
	Probability float64
}

// StreamFault breaks a response body. Exception, ErrorFrame and Corrupt
// apply to event streams only (converse-stream and
// invoke-with-response-stream); Truncate, Reset and Stall also break the
// JSON body of the other operations.
type StreamFault struct {
	Kind fault.MidStreamKind
	// After is the number of complete events sent before the fault.
	After int
	// Code is the catalog code of an Exception or ErrorFrame fault.
	Code string
	// Message overrides the catalog's default message; empty keeps it.
	Message string
	// Probability is the chance, from 0 to 1, that a matching request gets it.
	Probability float64
}

// Outage answers every matching request the same way between From and To,
// measured from emulator start; To zero means no end.
type Outage struct {
	From, To time.Duration
	// Answer is "refuse" (close the connection), "hang" (send nothing), or a
	// catalog code with an HTTP status. Parse turns "503" into
	// ServiceUnavailableException and "500" into InternalServerException,
	// and defaults it to ServiceUnavailableException.
	Answer string
	// Message overrides the catalog's default message; empty keeps it.
	Message string
}

// Outage answers other than a catalog code.
const (
	AnswerRefuse = "refuse"
	AnswerHang   = "hang"
)

// ColdStart makes a model answer ModelNotReadyException after it has been
// idle: once no request has reached it (in one region, through this rule) for
// Idle, the first Requests requests within Within of the next one are
// rejected. A model that has never been called counts as idle.
type ColdStart struct {
	Idle     time.Duration
	Requests int
	Within   time.Duration
	// Message overrides the catalog's default message; empty keeps it.
	Message string
}

// Cold-start defaults, used by Parse for keys left out.
const (
	DefaultColdIdle     = 10 * time.Minute
	DefaultColdRequests = 1
	DefaultColdWithin   = 30 * time.Second
)

// Load reads and parses the scenario file at path.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Validate checks a Scenario built in Go the way Parse checks a file: codes
// must be in the catalog, probabilities between 0 and 1, durations and
// counts not negative, windows not empty, and rule names unique.
func (s *Scenario) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.Quotas.Validate(); err != nil {
		add(fmt.Errorf("scenario: quotas: %w", err))
	}
	add(prefix("scenario: clock_skew", checkClockSkew(s.ClockSkew)))
	for i, d := range s.Deny {
		_, err := checkDenyCode(d.Code)
		add(prefix(fmt.Sprintf("scenario: deny[%d].code", i), err))
	}
	add(s.Jobs.validate())
	names := map[string]int{}
	for i := range s.Rules {
		r := &s.Rules[i]
		at := fmt.Sprintf("scenario: rules[%d]", i)
		if r.line > 0 {
			at = fmt.Sprintf("scenario: line %d: rules[%d]", r.line, i)
		}
		if r.Name == "" {
			add(fmt.Errorf("%s: name is empty", at))
		} else if j, dup := names[r.Name]; dup {
			add(fmt.Errorf("%s: name %q is already used by rules[%d]", at, r.Name, j))
		} else {
			names[r.Name] = i
		}
		if !r.acts() {
			add(fmt.Errorf("%s: the rule does nothing; give it errors, refuse, hang, latency, stream, outages or a cold start", at))
		}
		add(prefix(at+".operation", checkOperation(r.Operation)))
		add(prefix(at+".tier", checkTier(r.Tier)))
		add(prefix(at, checkWindow(r.From, r.To)))
		for j, e := range r.Errors {
			add(prefix(fmt.Sprintf("%s.errors[%d]", at, j), checkErrorFault(e)))
		}
		add(prefix(at+".refuse", checkProbability(r.Refuse)))
		add(prefix(at+".hang", checkProbability(r.Hang)))
		add(prefix(at+".latency", checkLatency(r.Latency)))
		for j, f := range r.Stream {
			add(prefix(fmt.Sprintf("%s.stream[%d]", at, j), checkStreamFault(f)))
		}
		for j, o := range r.Outages {
			add(prefix(fmt.Sprintf("%s.outages[%d]", at, j), checkOutage(o)))
		}
		if r.ColdStart != nil {
			add(prefix(at+".cold_start", checkColdStart(*r.ColdStart)))
		}
	}
	return errors.Join(errs...)
}

// checkTier accepts "" (every tier) and the tiers Bedrock knows.
func checkTier(t string) error {
	if t == "" || bedrock.ValidTier(t) {
		return nil
	}
	return fmt.Errorf("%q is not a service tier; want one of %s", t, strings.Join(bedrock.Tiers(), ", "))
}

func prefix(at string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", at, err)
}
