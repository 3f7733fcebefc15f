package admission

import (
	"fmt"
	"math"
)

// The checks every Store makes of its arguments before it changes
// anything (see Store, Errors), shared by the backends so that they
// refuse alike.

// CheckOpen returns an error naming the bad value when b may not open
// key's buckets (see Store.Open).
func CheckOpen(key Target, b Buckets) error {
	switch {
	case !(b.TokensPerMinute > 0):
		return fmt.Errorf("admission: Store.Open(%s): TokensPerMinute %v is not positive", key, b.TokensPerMinute)
	case b.RequestsPerMinute < 0 || math.IsNaN(b.RequestsPerMinute) || math.IsInf(b.RequestsPerMinute, 1):
		return fmt.Errorf("admission: Store.Open(%s): RequestsPerMinute %v is not a count", key, b.RequestsPerMinute)
	case math.IsNaN(b.Tokens) || math.IsInf(b.Tokens, 0):
		return fmt.Errorf("admission: Store.Open(%s): Tokens %v is not a number of tokens", key, b.Tokens)
	}
	return nil
}

// CheckReserve returns an error naming the bad value when tokens may not
// be reserved (see Store.Reserve).
func CheckReserve(key Target, tokens float64) error {
	if !(tokens >= 0) || math.IsInf(tokens, 1) {
		return fmt.Errorf("admission: Store.Reserve(%s): tokens %v is not a count", key, tokens)
	}
	return nil
}

// CheckLimit returns an error naming the bad value when tokensPerMinute
// may not be key's limit (see Store.SetLimit).
func CheckLimit(key Target, tokensPerMinute float64) error {
	if !(tokensPerMinute > 0) {
		return fmt.Errorf("admission: Store.SetLimit(%s): tokensPerMinute %v is not positive", key, tokensPerMinute)
	}
	return nil
}

// CheckBurst returns an error naming the bad value when tokens may not be
// key's burst (see Store.SetBurst).
func CheckBurst(key Target, tokens float64) error {
	if !(tokens >= 0) || math.IsInf(tokens, 1) {
		return fmt.Errorf("admission: Store.SetBurst(%s): tokens %v is neither 0 nor a capacity", key, tokens)
	}
	return nil
}

// CheckGive returns an error naming the bad value when tokens and requests
// may not be given back (see Store.Give); op names the operation.
func CheckGive(op string, key Target, tokens float64, requests int) error {
	switch {
	case math.IsNaN(tokens) || math.IsInf(tokens, 0):
		return fmt.Errorf("admission: Store.%s(%s): tokens %v is not a number of tokens", op, key, tokens)
	case requests < 0:
		return fmt.Errorf("admission: Store.%s(%s): requests %d is negative", op, key, requests)
	}
	return nil
}

// CheckTake returns an error naming the bad value when tokens may not be
// taken under lease (see Store.Take).
func CheckTake(key Target, tokens float64, lease Lease) error {
	switch {
	case !(tokens >= 0) || math.IsInf(tokens, 1):
		return fmt.Errorf("admission: Store.Take(%s): tokens %v is not a count", key, tokens)
	case !lease.ID.IsZero() && lease.Until.IsZero():
		return fmt.Errorf("admission: Store.Take(%s): lease %v has no Until", key, lease.ID)
	case !lease.ID.IsZero() && (!(lease.Refund >= 0) || math.IsInf(lease.Refund, 1)):
		return fmt.Errorf("admission: Store.Take(%s): lease %v's Refund %v is not a count", key, lease.ID, lease.Refund)
	}
	return nil
}
