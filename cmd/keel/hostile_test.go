package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/hostile"
)

// TestConverseHostileUpstream points `keel converse --endpoint` at each
// misbehaviour of internal/hostile in us-east-1, with a healthy us-west-2 as
// the fallback when the case has one: the exit code and what the user is
// told.
func TestConverseHostileUpstream(t *testing.T) {
	const model = "anthropic.claude-3-haiku-20240307-v1:0"
	tests := []struct {
		name     string
		o        hostile.Options
		fallback bool
		stream   bool
		code     int    // exit code
		want     string // in stderr
	}{
		{name: "truncated body, no fallback", o: hostile.Options{Mode: hostile.Truncate}, code: 1, want: catalog.CodeResponseTruncated},
		{name: "truncated body, fallback", o: hostile.Options{Mode: hostile.Truncate}, fallback: true, code: 0, want: "us-west-2"},
		{name: "reset", o: hostile.Options{Mode: hostile.Reset}, code: 1, want: catalog.CodeConnectionReset},
		{name: "hang, fallback", o: hostile.Options{Mode: hostile.Hang}, fallback: true, code: 0, want: "us-west-2"},
		{name: "huge body", o: hostile.Options{Mode: hostile.HugeBody}, code: 1, want: catalog.CodeResponseTooLarge},
		{name: "huge stream", o: hostile.Options{Mode: hostile.HugeStream}, stream: true, code: 1, want: catalog.CodeResponseTooLarge},
		{name: "redirect", o: hostile.Options{Mode: hostile.Redirect}, code: 1, want: catalog.CodeUnexpectedRedirect},
		{name: "HTML 503 page", o: hostile.Options{Mode: hostile.HTMLError, Status: http.StatusServiceUnavailable}, code: 1, want: "503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := hostile.Listen(hostile.ByRegion(map[string]http.Handler{
				"us-east-1": hostile.Handler(tt.o),
				"us-west-2": hostile.Handler(hostile.Options{}),
			}))
			defer srv.Close()
			args := []string{"converse", "--endpoint", srv.URL, "--region", "us-east-1", "--model", model, "--prompt", "hi", "--timeout", "4s"}
			if tt.fallback {
				args = append(args, "--fallback", model+"@us-west-2")
			}
			if tt.stream {
				args = append(args, "--stream")
			}
			var out, errb bytes.Buffer
			code := run(args, &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.want) {
				t.Fatalf("exit %d, want %d with %q in stderr\nstdout: %.300s\nstderr: %s", code, tt.code, tt.want, out.String(), errb.String())
			}
		})
	}
}
