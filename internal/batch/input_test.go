package batch

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/attempt"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const anthropicInput = `{"anthropic_version":"bedrock-2023-05-31","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`

func TestReadInput(t *testing.T) {
	tests := []struct {
		name    string
		content string
		opts    InputOptions
		ids     []string
		formats map[Format]int
		errs    []string // substrings of the error, in order; nil: no error
	}{
		{name: "bedrock records", content: `{"recordId":"r1","modelInput":` + anthropicInput + "}\n" + `{"recordId":"r2","modelInput":{}}` + "\n",
			opts: InputOptions{Model: "m"}, ids: []string{"r1", "r2"}, formats: map[Format]int{FormatBedrock: 2}},
		{name: "simple records, string and integer ids", content: `{"id":"a","prompt":"p"}` + "\n" + `{"id":7,"prompt":"q","system":"s","maxTokens":20,"temperature":0.2,"model":"x"}`,
			opts: InputOptions{Model: "m"}, ids: []string{"a", "7"}, formats: map[Format]int{FormatSimple: 2}},
		{name: "model per record", content: `{"id":"a","prompt":"p","model":"x"}`, ids: []string{"a"}, formats: map[Format]int{FormatSimple: 1}},
		{name: "mixed formats, blank lines, CRLF and BOM", content: "\xef\xbb\xbf" + `{"id":"a","prompt":"p"}` + "\r\n\r\n   \n" + `{"recordId":"b","modelInput":{}}` + "\r\n",
			opts: InputOptions{Model: "m"}, ids: []string{"a", "b"}, formats: map[Format]int{FormatSimple: 1, FormatBedrock: 1}},
		{name: "empty file", content: "\n\n", errs: []string{"has no records"}},
		{name: "malformed JSON names the line", content: `{"id":"a","prompt":"p"}` + "\n" + `{"id":"b","prompt":"p"` + "\n", opts: InputOptions{Model: "m"},
			errs: []string{"line 2: not valid JSON"}},
		{name: "not an object", content: `["a"]`, opts: InputOptions{Model: "m"}, errs: []string{"line 1: not a JSON object"}},
		{name: "neither format", content: `{"text":"hi"}`, opts: InputOptions{Model: "m"}, errs: []string{"line 1: not a batch record", `"recordId"`}},
		{name: "unknown key", content: `{"id":"a","promt":"p"}`, opts: InputOptions{Model: "m"}, errs: []string{`line 1: unknown key "promt" in a simple-format record`}},
		{name: "bedrock record without an id", content: `{"modelInput":{}}`, opts: InputOptions{Model: "m"}, errs: []string{`line 1: the record has no "recordId"`}},
		{name: "bedrock id must be a string", content: `{"recordId":5,"modelInput":{}}`, opts: InputOptions{Model: "m"}, errs: []string{`"recordId" must be a string, got 5`}},
		{name: "fractional simple id", content: `{"id":1.5,"prompt":"p"}`, opts: InputOptions{Model: "m"}, errs: []string{`"id" must be a string or an integer`}},
		{name: "duplicate id", content: `{"id":"a","prompt":"p"}` + "\n" + `{"id":"b","prompt":"p"}` + "\n" + `{"id":"a","prompt":"p"}`,
			opts: InputOptions{Model: "m"}, errs: []string{`line 3: record id "a" is already used on line 1`}},
		{name: "an integer id and the same string collide", content: `{"id":"1","prompt":"p"}` + "\n" + `{"id":1,"prompt":"p"}`,
			opts: InputOptions{Model: "m"}, errs: []string{"line 2: record id 1 is already used on line 1"}},
		{name: "bedrock needs --model", content: `{"recordId":"a","modelInput":{}}`, errs: []string{"pass the model id with --model"}},
		{name: "simple needs a model somewhere", content: `{"id":"a","prompt":"p"}`, errs: []string{`names no "model" and no --model`}},
		{name: "modelInput must be an object", content: `{"recordId":"a","modelInput":"hi"}`, opts: InputOptions{Model: "m"}, errs: []string{`"modelInput" must be a JSON object`}},
		{name: "empty prompt", content: `{"id":"a","prompt":"  "}`, opts: InputOptions{Model: "m"}, errs: []string{`"prompt" must be a non-empty string`}},
		{name: "prompt of the wrong type", content: `{"id":"a","prompt":3}`, opts: InputOptions{Model: "m"}, errs: []string{`"prompt" must be a string, got a JSON number`}},
		{name: "bad maxTokens", content: `{"id":"a","prompt":"p","maxTokens":0}`, opts: InputOptions{Model: "m"}, errs: []string{`"maxTokens" must be a positive integer, got 0`}},
		{name: "maxTokens not a number", content: `{"id":"a","prompt":"p","maxTokens":"ten"}`, opts: InputOptions{Model: "m"}, errs: []string{`"maxTokens" must be a positive integer, got "ten"`}},
		{name: "bad temperature", content: `{"id":"a","prompt":"p","temperature":3}`, opts: InputOptions{Model: "m"}, errs: []string{`"temperature" must be between 0 and 1`}},
		{name: "forced format", content: `{"id":"a","prompt":"p"}`, opts: InputOptions{Model: "m", Format: FormatBedrock}, errs: []string{`line 1: unknown key "id" in a bedrock-format record`}},
		{name: "every bad line is listed", content: "x\n" + `{"id":"a","prompt":"p"}` + "\n{\n" + `{"id":"b"}`, opts: InputOptions{Model: "m"},
			errs: []string{"3 bad lines", "line 1:", "line 3:", "line 4:"}},
		{name: "listing stops at MaxErrors", content: "x\ny\nz\nw\n", opts: InputOptions{Model: "m", MaxErrors: 2},
			errs: []string{"2 bad lines", "line 1:", "line 2:", "stopped there"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "in.jsonl", tt.content)
			in, err := ReadInput(p, tt.opts)
			if tt.errs != nil {
				if err == nil {
					t.Fatalf("no error; want %q", tt.errs)
				}
				msg := err.Error()
				rest := msg
				for _, want := range tt.errs {
					i := strings.Index(rest, want)
					if i < 0 {
						t.Fatalf("error %q lacks %q (in order)", msg, want)
					}
					rest = rest[i+len(want):]
				}
				if !strings.Contains(msg, p) {
					t.Errorf("error %q does not name the file", msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadInput: %v", err)
			}
			var ids []string
			for _, r := range in.Records {
				ids = append(ids, r.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.ids, ",") {
				t.Errorf("ids %v, want %v", ids, tt.ids)
			}
			for f, n := range tt.formats {
				if in.Formats[f] != n {
					t.Errorf("formats %v, want %v", in.Formats, tt.formats)
				}
			}
			// Every record's offset and length find its line again.
			data, _ := os.ReadFile(p)
			for _, r := range in.Records {
				line := data[r.Offset : r.Offset+int64(r.Length)]
				if !json.Valid(line) {
					t.Errorf("record %s: bytes %q at its offset are not its line", r.ID, line)
				}
			}
			if in.Size != int64(len(data)) || len(in.SHA256) != 64 {
				t.Errorf("size %d (file %d), hash %q", in.Size, len(data), in.SHA256)
			}
		})
	}
}

func TestReadInputErrorType(t *testing.T) {
	p := writeFile(t, "in.jsonl", "nope\n")
	_, err := ReadInput(p, InputOptions{Model: "m"})
	var ie *InputError
	if !errors.As(err, &ie) || len(ie.Problems) != 1 {
		t.Fatalf("error %v is not an *InputError with one problem", err)
	}
	if _, err := ReadInput(filepath.Join(t.TempDir(), "missing.jsonl"), InputOptions{}); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseFormat(t *testing.T) {
	tests := []struct {
		name, in string
		want     Format
		err      bool
	}{
		{name: "auto", in: "auto", want: FormatAuto},
		{name: "empty", in: "", want: FormatAuto},
		{name: "bedrock", in: "Bedrock", want: FormatBedrock},
		{name: "simple", in: "simple", want: FormatSimple},
		{name: "unknown", in: "csv", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFormat(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("ParseFormat(%q) = %q, %v", tt.in, got, err)
			}
		})
	}
}

func TestBuildRequest(t *testing.T) {
	tests := []struct {
		name      string
		line      string
		format    Format
		maxTokens int
		op        attempt.Op
		model     string
		body      string
	}{
		{name: "bedrock body is modelInput as written", line: `{"recordId":"a","modelInput":` + anthropicInput + `}`, format: FormatBedrock,
			op: attempt.Invoke, model: "default", body: anthropicInput},
		{name: "simple becomes converse", line: `{"id":"a","prompt":"Why?","system":"Be brief.","maxTokens":30,"temperature":0}`, format: FormatSimple,
			op: attempt.Converse, model: "default",
			body: `{"messages":[{"role":"user","content":[{"text":"Why?"}]}],"system":[{"text":"Be brief."}],"inferenceConfig":{"maxTokens":30,"temperature":0}}`},
		{name: "simple takes the default maxTokens and its own model", line: `{"id":"a","prompt":"Why?","model":"own"}`, format: FormatSimple, maxTokens: 64,
			op: attempt.Converse, model: "own", body: `{"messages":[{"role":"user","content":[{"text":"Why?"}]}],"inferenceConfig":{"maxTokens":64}}`},
		{name: "simple without maxTokens leaves it to the model", line: `{"id":"a","prompt":"Why?"}`, format: FormatSimple,
			op: attempt.Converse, model: "default", body: `{"messages":[{"role":"user","content":[{"text":"Why?"}]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := buildRequest([]byte(tt.line), Record{ID: "a", Format: tt.format, Line: 1}, "default", tt.maxTokens)
			if err != nil {
				t.Fatal(err)
			}
			if req.op != tt.op || req.model != tt.model || string(req.body) != tt.body {
				t.Errorf("got %s %s %s\nwant %s %s %s", req.op, req.model, req.body, tt.op, tt.model, tt.body)
			}
		})
	}
}

func TestBuildRequestNoticesAChangedLine(t *testing.T) {
	_, err := buildRequest([]byte(`{"id":"b","prompt":"p"}`), Record{ID: "a", RawID: json.RawMessage(`"a"`), Format: FormatSimple, Line: 4}, "m", 0)
	if err == nil || !strings.Contains(err.Error(), `line 4 changed since it was read (record "a" is not there any more)`) {
		t.Errorf("error %v", err)
	}
}

// TestBatchInputRejectsSilentChanges: a record that JSON decoding would
// change without a word (a duplicate key: the last would win; invalid
// UTF-8: replaced with U+FFFD) is refused with its line (issue 15, item 10).
func TestBatchInputRejectsSilentChanges(t *testing.T) {
	tests := []struct {
		name    string
		content string
		errs    []string // substrings of the error, in order
	}{
		{name: "duplicate top-level key", content: `{"id":"a","prompt":"p"}` + "\n" + `{"id":"b","prompt":"first","prompt":"second"}`,
			errs: []string{`line 2: key "prompt" appears twice`}},
		{name: "duplicate id key", content: `{"id":"a","id":"b","prompt":"p"}`, errs: []string{`line 1: key "id" appears twice`}},
		{name: "duplicate key inside modelInput", content: `{"recordId":"r","modelInput":{"messages":[{"role":"user","role":"assistant","content":"x"}]}}`,
			errs: []string{`line 1: key "modelInput.messages[0].role" appears twice`}},
		{name: "invalid UTF-8 in a prompt", content: `{"id":"a","prompt":"p"}` + "\n\n" + "{\"id\":\"b\",\"prompt\":\"caf\xe9\"}",
			errs: []string{"line 3: not valid UTF-8 (byte 0xe9 at column 24)", "not sent"}},
		{name: "invalid UTF-8 in modelInput", content: "{\"recordId\":\"r\",\"modelInput\":{\"x\":\"\xff\"}}", errs: []string{"line 1: not valid UTF-8"}},
		// A \uD800-\uDFFF escape outside a valid pair is not a character:
		// a decoder turns it into U+FFFD (review of issue 15, item 10).
		{name: "lone high surrogate", content: `{"id":"a","prompt":"p"}` + "\n" + `{"id":"b","prompt":"\ud800 lone"}`,
			errs: []string{`line 2: escape \ud800 at column 21 is half of a UTF-16 surrogate pair`, "not sent"}},
		{name: "high surrogate before another escape", content: `{"id":"b","prompt":"x\uD83D\u0041"}`, errs: []string{`line 1: escape \uD83D at column 22`}},
		{name: "lone low surrogate", content: `{"id":"b","prompt":"\udc00"}`, errs: []string{`line 1: escape \udc00 at column 21`}},
		{name: "pair in the wrong order", content: `{"id":"b","prompt":"\ude00\ud83d"}`, errs: []string{`line 1: escape \ude00 at column 21`}},
		{name: "lone surrogate in a key of modelInput", content: `{"recordId":"r","modelInput":{"\udfff":1}}`, errs: []string{`line 1: escape \udfff at column 32`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "in.jsonl", tt.content)
			_, err := ReadInput(p, InputOptions{Model: "m"})
			if err == nil {
				t.Fatalf("no error; want %q", tt.errs)
			}
			rest := err.Error()
			for _, want := range tt.errs {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("error %q lacks %q (in order)", err, want)
				}
				rest = rest[i+len(want):]
			}
		})
	}
	// Keys that look alike but are not the same, and the same key in two
	// objects, are fine.
	ok := `{"recordId":"r","modelInput":{"a":{"k":1},"b":{"k":2},"K":3,"list":[{"k":1},{"k":2}]}}`
	if _, err := ReadInput(writeFile(t, "ok.jsonl", ok), InputOptions{Model: "m"}); err != nil {
		t.Errorf("distinct keys refused: %v", err)
	}
	// A valid surrogate pair, and an escaped backslash before "ud800", are
	// fine.
	ok = `{"id":"a","prompt":"smile \ud83d\ude00, \\ud800 is text, \"\u00e9\""}`
	if _, err := ReadInput(writeFile(t, "ok2.jsonl", ok), InputOptions{Model: "m"}); err != nil {
		t.Errorf("valid escapes refused: %v", err)
	}
}

// TestBatchWithoutModelFailsOnce: a Bedrock-format file without --model is
// one error, not one per line (issue 15, item 13).
func TestBatchWithoutModelFailsOnce(t *testing.T) {
	var b strings.Builder
	for i := range 300 {
		fmt.Fprintf(&b, "{\"recordId\":\"r%d\",\"modelInput\":{}}\n", i)
	}
	_, err := ReadInput(writeFile(t, "in.jsonl", b.String()), InputOptions{})
	var ie *InputError
	if !errors.As(err, &ie) || len(ie.Problems) != 1 || ie.More {
		t.Fatalf("error %v; want an *InputError with one problem", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "300 Bedrock-format records") || !strings.Contains(msg, "--model") {
		t.Errorf("error %q", msg)
	}
}
