package scenario

import (
	"fmt"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/scenario/glob"
)

// codeUse says where a catalog code is used, which decides what the entry
// must have.
type codeUse int

const (
	// useReply: answered instead of a reply, so it needs an HTTP status and
	// a code the service sends.
	useReply codeUse = iota
	// useException: sent as an exception frame inside an event stream.
	useException
	// useErrorFrame: sent as an error frame (:error-code) inside an event stream.
	useErrorFrame
)

// checkCode looks code up in the catalog and returns its canonical spelling.
func checkCode(code string, use codeUse) (string, error) {
	if code == "" {
		return "", fmt.Errorf("code is empty; want a catalog code such as ThrottlingException")
	}
	e, ok := catalog.Lookup(code)
	if !ok {
		return "", fmt.Errorf("code %q is not in the catalog", code)
	}
	switch use {
	case useReply:
		if e.Status < 400 || e.WireCode() == "" {
			return "", fmt.Errorf("code %q cannot be answered as an HTTP error: it is a %s failure with no status of its own", code, e.Category)
		}
	case useException:
		if !e.Streamable {
			return "", fmt.Errorf("code %q never arrives as an event-stream exception; use kind error for an error frame", code)
		}
	case useErrorFrame:
		if e.WireCode() == "" {
			return "", fmt.Errorf("code %q has no wire code to put in an error frame", code)
		}
	}
	return e.Code, nil
}

// checkDenyCode checks a denial's code: one the service answers with, of
// category access, auth or not-found.
func checkDenyCode(code string) (string, error) {
	canon, err := checkCode(code, useReply)
	if err != nil {
		return "", err
	}
	switch e := catalog.Must(canon); e.Category {
	case catalog.Access, catalog.Auth, catalog.NotFound:
		return canon, nil
	default:
		return "", fmt.Errorf("code %q is a %s error, not a denial; want one of category access, auth or not-found, such as AccessDeniedException or FTUFormNotFilled", code, e.Category)
	}
}

// checkClockSkew keeps a skew within MaxClockSkew either way.
func checkClockSkew(d time.Duration) error {
	if d > MaxClockSkew || d < -MaxClockSkew {
		return fmt.Errorf("%v is more than %v either way", d, MaxClockSkew)
	}
	return nil
}

func checkProbability(p float64) error {
	if !(p >= 0 && p <= 1) { // also catches NaN
		return fmt.Errorf("probability %v is not between 0 and 1", p)
	}
	return nil
}

func checkDuration(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("duration %v is negative", d)
	}
	return nil
}

// checkWindow checks a from/to pair; to zero means no end.
func checkWindow(from, to time.Duration) error {
	if err := checkDuration(from); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	if err := checkDuration(to); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	if to != 0 && to <= from {
		return fmt.Errorf("to %v is not after from %v", to, from)
	}
	return nil
}

// checkOperation checks that an operation pattern can match some operation.
func checkOperation(pattern string) error {
	if pattern == "" {
		return nil
	}
	for _, op := range Operations {
		if glob.Match(pattern, op) {
			return nil
		}
	}
	if glob.Literal(pattern) {
		return fmt.Errorf("%q is not an operation; want one of %s", pattern, strings.Join(Operations, ", "))
	}
	return fmt.Errorf("pattern %q matches no operation; operations are %s", pattern, strings.Join(Operations, ", "))
}

var streamKinds = []fault.MidStreamKind{fault.Exception, fault.ErrorFrame, fault.Truncate, fault.Corrupt, fault.Reset, fault.Stall}

func checkKind(k fault.MidStreamKind) error {
	for _, ok := range streamKinds {
		if k == ok {
			return nil
		}
	}
	names := make([]string, len(streamKinds))
	for i, k := range streamKinds {
		names[i] = string(k)
	}
	return fmt.Errorf("kind %q is not one of %s", k, strings.Join(names, ", "))
}

// checkStreamCode checks the code of a stream fault against its kind.
func checkStreamCode(k fault.MidStreamKind, code string) (string, error) {
	switch k {
	case fault.Exception:
		return checkCode(code, useException)
	case fault.ErrorFrame:
		return checkCode(code, useErrorFrame)
	}
	if code != "" {
		return "", fmt.Errorf("code %q only applies to kinds exception and error, not %s", code, k)
	}
	return "", nil
}

// answerAliases are the outage answers that stand for a catalog code.
var answerAliases = map[string]string{
	"503": "ServiceUnavailableException",
	"500": "InternalServerException",
}

// checkAnswer checks an outage answer and returns it in canonical form.
func checkAnswer(a string) (string, error) {
	switch a {
	case AnswerRefuse, AnswerHang:
		return a, nil
	case "":
		a = "503"
	}
	if code, ok := answerAliases[a]; ok {
		a = code
	}
	code, err := checkCode(a, useReply)
	if err != nil {
		return "", fmt.Errorf("%w (or use refuse, hang, 503, 500)", err)
	}
	return code, nil
}

func checkErrorFault(e ErrorFault) error {
	if _, err := checkCode(e.Code, useReply); err != nil {
		return err
	}
	return checkProbability(e.Probability)
}

func checkLatency(l Latency) error {
	if err := checkDuration(l.Fixed); err != nil {
		return fmt.Errorf("fixed: %w", err)
	}
	if err := checkDuration(l.Jitter); err != nil {
		return fmt.Errorf("jitter: %w", err)
	}
	return checkProbability(l.Probability)
}

func checkStreamFault(f StreamFault) error {
	if err := checkKind(f.Kind); err != nil {
		return err
	}
	if f.After < 0 {
		return fmt.Errorf("after %d is negative", f.After)
	}
	if _, err := checkStreamCode(f.Kind, f.Code); err != nil {
		return err
	}
	return checkProbability(f.Probability)
}

func checkOutage(o Outage) error {
	if err := checkWindow(o.From, o.To); err != nil {
		return err
	}
	_, err := checkAnswer(o.Answer)
	return err
}

func checkColdStart(c ColdStart) error {
	if c.Idle <= 0 {
		return fmt.Errorf("idle %v is not positive", c.Idle)
	}
	if c.Within <= 0 {
		return fmt.Errorf("within %v is not positive", c.Within)
	}
	if c.Requests < 1 {
		return fmt.Errorf("requests %d is less than 1", c.Requests)
	}
	_, err := checkCode("ModelNotReadyException", useReply)
	return err
}
