package jobs

import (
	"strings"
	"testing"
)

// TestReadOutDuplicates (review r5, finding 13): when the output holds a
// recordId twice, an answer wins over an error, whatever their order.
func TestReadOutDuplicates(t *testing.T) {
	const (
		answer = `{"recordId":"K0000000001","modelOutput":{"content":[{"type":"text","text":"hi"}]}}`
		failed = `{"recordId":"K0000000001","error":{"errorCode":400,"errorMessage":"bad"}}`
		other  = `{"recordId":"K0000000001","modelOutput":{"content":[{"type":"text","text":"other"}]}}`
	)
	tests := []struct {
		name   string
		lines  string
		answer bool   // the line kept is an answer
		text   string // in the kept line's modelOutput
	}{
		{"error, then answer", failed + "\n" + answer + "\n", true, "hi"},
		{"answer, then error", answer + "\n" + failed + "\n", true, "hi"},
		{"two answers: the first", answer + "\n" + other + "\n", true, "hi"},
		{"two errors", failed + "\n" + failed + "\n", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs := map[string]outLine{}
			if err := readOut(strings.NewReader(tt.lines), outs); err != nil {
				t.Fatal(err)
			}
			l := outs["K0000000001"]
			if l.ok() != tt.answer || !strings.Contains(string(l.ModelOutput), tt.text) {
				t.Fatalf("kept %+v (modelOutput %s), want answer %v with %q", l, l.ModelOutput, tt.answer, tt.text)
			}
		})
	}
}
