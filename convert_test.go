package keel

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/engine"
	"github.com/keel-run/keel/internal/keelx"
)

// fill sets every exported field of v (a pointer) to a non-zero value,
// recursively, so that a conversion that forgets a field shows.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(1, 0)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i))
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(1)
	case reflect.Uint8:
		v.SetUint(1)
	case reflect.Float64:
		v.SetFloat(0.5)
	case reflect.Interface:
		if v.Type() == reflect.TypeFor[error]() {
			v.Set(reflect.ValueOf(errors.New("x")))
		}
	}
}

// zeroFields lists the exported fields of v left at their zero value.
func zeroFields(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return []string{path}
		}
		return zeroFields(v.Elem(), path)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			if v.IsZero() {
				return []string{path}
			}
			return nil
		}
		var out []string
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				out = append(out, zeroFields(v.Field(i), path+"."+f.Name)...)
			}
		}
		return out
	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			return []string{path}
		}
		var out []string
		for i := range v.Len() {
			out = append(out, zeroFields(v.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	}
	if v.IsZero() {
		return []string{path}
	}
	return nil
}

// TestConvertCarriesEveryField fills every field of the engine's values
// and checks that the public copies leave none out.
func TestConvertCarriesEveryField(t *testing.T) {
	var rep engine.Report
	fill(reflect.ValueOf(&rep))
	var f engine.Error
	fill(reflect.ValueOf(&f))
	f.Entry = catalog.Must(catalog.CodeThrottling)
	var st admission.Stats
	fill(reflect.ValueOf(&st))
	for name, v := range map[string]any{
		"Report":     reportOf(&rep),
		"Failure":    failureOf(&f),
		"QuotaStats": quotaStatsOf(st),
	} {
		for _, z := range zeroFields(reflect.ValueOf(v), name) {
			// The entry is the catalog's (TestEntryOf checks entries);
			// a target's Priority is a route setting, nil in reports.
			if !strings.HasPrefix(z, "Failure.Entry.") && !strings.HasSuffix(z, "Target.Priority") {
				t.Errorf("%s is left zero", z)
			}
		}
	}
	if r := reportOf(&rep); r.Attempts[0].Start != rep.Attempts[0].Start || r.Target.String() != rep.Target.String() {
		t.Errorf("report %+v does not match %+v", r, rep)
	}
	if reportOf(nil) != nil || failureOf(nil) != nil || entryOf(nil) != nil {
		t.Error("nil does not convert to nil")
	}
}

// TestEntryOf checks that every catalog entry has one public twin.
func TestEntryOf(t *testing.T) {
	for _, c := range catalog.All() {
		e := entryOf(c)
		if e != entryOf(c) {
			t.Fatalf("%s: two twins", c.Code)
		}
		if e.Code != c.Code || e.Status != c.Status || e.Category != string(c.Category) || e.Retry != string(c.Retry) ||
			e.Retryable() != c.Retryable() || e.Advice() != c.Advice() || e.Summary != c.Summary {
			t.Errorf("%s: twin %+v differs", c.Code, e)
		}
	}
	own := &catalog.Entry{Code: "Own", Retry: catalog.Backoff}
	if e := entryOf(own); e.Code != "Own" || !e.Retryable() {
		t.Errorf("entry built outside the table: %+v", e)
	}
}

func TestGiveUpReasonNames(t *testing.T) {
	for r := GaveUpAttemptsExhausted; r <= GaveUpNotResumed; r++ {
		if r.String() != engine.GiveUpReason(r).String() || r.String() == "none" {
			t.Errorf("GiveUpReason(%d) = %q", r, r)
		}
	}
	f := failureOf(&engine.Error{Entry: catalog.Must(catalog.CodeThrottling), GaveUp: "the next wait would cross the deadline"})
	if f.GaveUp != GaveUpDeadline || f.GaveUpDetail == "" {
		t.Errorf("failure gave up %v (%q), want deadline", f.GaveUp, f.GaveUpDetail)
	}
}

// TestKeelx checks the hooks keel's commands reach internals by: the
// engine of a Keel, and the engine's account a *Error carries, which the
// DLQ records.
func TestKeelx(t *testing.T) {
	s := newSetup(t, nil, nil, false)
	if keelx.Engine(s.k) != s.k.eng {
		t.Fatal("keelx.Engine does not return the Keel's engine")
	}
	rep := &engine.Report{Attempts: []engine.Attempt{{Status: 403, Code: catalog.CodeAccessDenied}}}
	sdk := fmt.Errorf("wrapped: %w", &Error{err: errors.New("operation error Bedrock Runtime: Converse"), report: rep,
		failure: &engine.Error{Entry: catalog.Must(catalog.CodeAccessDenied), Report: rep}})
	entry, got, ok := keelx.Details(sdk)
	if !ok || entry.Code != catalog.CodeAccessDenied || got != rep {
		t.Fatalf("keelx.Details = %v, %v, %v", entry, got, ok)
	}
	if _, _, ok := keelx.Details(errors.New("plain")); ok {
		t.Fatal("keelx.Details found details in a plain error")
	}
	e, err := dlq.NewEntry(&engine.Call{Op: "converse", Model: haiku, Region: "us-east-1", Body: []byte(`{}`)}, sdk, time.Unix(0, 0), false)
	if err != nil || e.Code != catalog.CodeAccessDenied || len(e.Attempts) != 1 {
		t.Fatalf("dlq.NewEntry = %+v, %v; want the AccessDenied entry with one attempt", e, err)
	}
}
