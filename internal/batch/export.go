package batch

import (
	"fmt"
	"os"

	"github.com/keel-run/keel/internal/attempt"
)

// ResultLine is one line of a results file. Package jobs writes the same
// shape for Bedrock batch-inference jobs, so downstream code reads either.
type ResultLine = resultLine

// LineError is a result line's error.
type LineError = lineError

// SetID sets the line's record id the way the record's format names it
// (recordId for Bedrock records, id for simple ones), as written.
func (l *resultLine) SetID(rec Record) { l.setID(rec) }

// EncodeResultLine encodes l as one JSON line, ending in '\n'.
func EncodeResultLine(l *ResultLine) ([]byte, error) { return encodeLine(l) }

// RecordRequest reads rec's line from the open input file f again and
// returns the Bedrock Runtime call it stands for: InvokeModel with its
// modelInput for a Bedrock record, Converse for a simple one (maxTokens:
// the default for records that set none, zero for the model's own). model
// is used for records that name none.
func RecordRequest(f *os.File, rec Record, model string, maxTokens int) (op attempt.Op, callModel string, body []byte, err error) {
	b := make([]byte, rec.Length)
	if _, err := f.ReadAt(b, rec.Offset); err != nil {
		return "", "", nil, fmt.Errorf("batch: reading line %d of %s: %w", rec.Line, f.Name(), err)
	}
	req, err := buildRequest(b, rec, model, maxTokens)
	if err != nil {
		return "", "", nil, fmt.Errorf("batch: %s: %w", f.Name(), err)
	}
	return req.op, req.model, req.body, nil
}
