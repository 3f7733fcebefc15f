package jobs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/batch"
	"github.com/keel-run/keel/internal/dlq"
)

// redriven is a reply that a redrive on demand got for a record, kept in
// Out + ".redrive" (appended, fsynced, 0600) before its dead letter is
// removed, so that a kill before the results file is written loses no
// reply and sends no record twice. Each line names its job: a line of
// another job (an earlier run that wrote the same Out) answers nothing.
// The file is removed once the run is done.
type redriven struct {
	JobID    string      `json:"jobId"`
	RecordID string      `json:"recordId"`
	DLQID    int64       `json:"dlqId"`
	Op       string      `json:"op"`
	Header   http.Header `json:"header,omitempty"` // the token-count headers
	Body     []byte      `json:"body"`
	Target   string      `json:"target,omitempty"`
	Attempts int         `json:"attempts"`
}

func (r *Runner) redrivePath() string { return r.St.Out + ".redrive" }

// loadRedriven reads the replies earlier redrives of this run's job saved.
func (r *Runner) loadRedriven() (map[string]redriven, error) {
	got := map[string]redriven{}
	b, err := os.ReadFile(r.redrivePath())
	if errors.Is(err, os.ErrNotExist) {
		return got, nil
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<30)
	for sc.Scan() {
		var l redriven
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			break // a line cut by a kill: its entry is still parked, and is sent again
		}
		if l.JobID == r.St.JobID {
			got[l.RecordID] = l
		}
	}
	return got, nil
}

// fromRedrive fills a success line from a reply a redrive saved.
func fromRedrive(line *batch.ResultLine, rec batch.Record, rd redriven) error {
	op := attempt.Op(rd.Op)
	rp, err := batch.ParseReply(op, rd.Header, rd.Body)
	if err != nil {
		return fmt.Errorf("jobs: the redriven reply of record %s: %w", rec.RawID, err)
	}
	line.Error, line.Attempts = nil, rd.Attempts
	line.Reply, line.StopReason, line.Usage, line.Target = &rp.Text, rp.StopReason, &rp.Usage, rd.Target
	line.ModelOutput = nil
	if rec.Format == batch.FormatBedrock {
		line.ModelOutput = rd.Body
	}
	return nil
}

// redrive sends the parked records (dead-letter id → record index) through
// Options.Redrive, saving each reply before its entry is removed, and
// updates lines: a reply replaces the error, a new failure its text.
func (r *Runner) redrive(ctx context.Context, parked map[int64]int, lines []*batch.ResultLine) error {
	ids := make([]int64, 0, len(parked))
	for id := range parked {
		ids = append(ids, id)
	}
	f, err := os.OpenFile(r.redrivePath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	defer f.Close()
	_, err = dlq.Redrive(ctx, r.o.DLQ, r.o.Redrive, dlq.RedriveOptions{Filter: dlq.Filter{IDs: ids}, Force: true,
		Lock: r.o.RedriveLock, LockOwner: "keel jobs", Clock: r.clk,
		Save: func(res dlq.Result) error {
			i := parked[res.Entry.ID]
			rd := redriven{JobID: r.St.JobID, RecordID: r.input.Records[i].ID, DLQID: res.Entry.ID, Op: string(res.Op), Body: res.Body, Header: http.Header{}}
			for _, h := range []string{"X-Amzn-Bedrock-Input-Token-Count", "X-Amzn-Bedrock-Output-Token-Count"} {
				if v := res.Header.Get(h); v != "" {
					rd.Header.Set(h, v)
				}
			}
			if res.Report != nil {
				rd.Attempts = len(res.Report.Attempts)
				rd.Target = res.Report.Target.String()
			}
			b, err := json.Marshal(rd)
			if err != nil {
				return err
			}
			if _, err := f.Write(append(b, '\n')); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return err
			}
			if err := r.point("redrive-saved"); err != nil {
				return err
			}
			return fromRedrive(lines[i], r.input.Records[i], rd)
		},
		Done: func(res dlq.Result) {
			if res.Err == nil {
				return
			}
			e := res.Entry
			le := lines[parked[e.ID]].Error
			le.Code, le.Status = e.Code, e.Status
			le.Message = fmt.Sprintf("job %s, then on demand: %s", r.St.JobID, e.Message)
		}})
	if err != nil {
		return fmt.Errorf("jobs: redriving the job's failures on demand: %w", err)
	}
	return r.point("redriven")
}
