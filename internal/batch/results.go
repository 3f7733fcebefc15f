package batch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/fsutil"
	"github.com/keel-run/keel/internal/lockfile"
)

// Usage is what a call used, as the model reported it.
type Usage struct {
	InputTokens  int `json:"inputTokens"`
	OutputTokens int `json:"outputTokens"`
	TotalTokens  int `json:"totalTokens"`
}

// Reply is what a successful response says.
type Reply struct {
	Text       string
	StopReason string
	Usage      Usage
}

// ParseReply reads a successful response body: Converse, or InvokeModel in
// the Anthropic, Amazon Nova, Meta Llama or Amazon Titan formats. For
// InvokeModel the token counts come from Bedrock's
// X-Amzn-Bedrock-Input-Token-Count / -Output-Token-Count headers when sent.
func ParseReply(op attempt.Op, h http.Header, body []byte) (Reply, error) {
	var r Reply
	var v struct {
		// Converse and Nova.
		Output *struct {
			Message struct {
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			} `json:"message"`
		} `json:"output"`
		StopReason string `json:"stopReason"`
		Usage      *struct {
			InputTokens  int `json:"inputTokens"`
			OutputTokens int `json:"outputTokens"`
			// Anthropic.
			AnthropicIn  int `json:"input_tokens"`
			AnthropicOut int `json:"output_tokens"`
		} `json:"usage"`
		// Anthropic.
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		AnthropicStop string `json:"stop_reason"`
		// Llama.
		Generation      *string `json:"generation"`
		PromptTokens    int     `json:"prompt_token_count"`
		GenerationCount int     `json:"generation_token_count"`
		// Titan.
		InputTextTokens int `json:"inputTextTokenCount"`
		Results         []struct {
			TokenCount       int    `json:"tokenCount"`
			OutputText       string `json:"outputText"`
			CompletionReason string `json:"completionReason"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return r, fmt.Errorf("reading the reply: %w", err)
	}
	var b strings.Builder
	switch {
	case v.Output != nil:
		for _, c := range v.Output.Message.Content {
			b.WriteString(c.Text)
		}
		r.StopReason = v.StopReason
	case v.Content != nil:
		for _, c := range v.Content {
			if c.Type == "text" || c.Type == "" {
				b.WriteString(c.Text)
			}
		}
		r.StopReason = v.AnthropicStop
	case v.Generation != nil:
		b.WriteString(*v.Generation)
		r.StopReason = v.AnthropicStop
		r.Usage = Usage{InputTokens: v.PromptTokens, OutputTokens: v.GenerationCount}
	case v.Results != nil:
		for _, res := range v.Results {
			b.WriteString(res.OutputText)
			r.Usage.OutputTokens += res.TokenCount
			r.StopReason = res.CompletionReason
		}
		r.Usage.InputTokens = v.InputTextTokens
	}
	r.Text = b.String()
	if v.Usage != nil {
		r.Usage.InputTokens = v.Usage.InputTokens + v.Usage.AnthropicIn
		r.Usage.OutputTokens = v.Usage.OutputTokens + v.Usage.AnthropicOut
	}
	if op == attempt.Invoke {
		if in, err := strconv.Atoi(h.Get("X-Amzn-Bedrock-Input-Token-Count")); err == nil {
			r.Usage.InputTokens = in
		}
		if out, err := strconv.Atoi(h.Get("X-Amzn-Bedrock-Output-Token-Count")); err == nil {
			r.Usage.OutputTokens = out
		}
	}
	r.Usage.TotalTokens = r.Usage.InputTokens + r.Usage.OutputTokens
	return r, nil
}

// resultLine is one line of the results file.
type resultLine struct {
	RecordID    json.RawMessage `json:"recordId,omitempty"` // Bedrock-format records
	ID          json.RawMessage `json:"id,omitempty"`       // simple-format records
	ModelOutput json.RawMessage `json:"modelOutput,omitempty"`
	Reply       *string         `json:"reply,omitempty"`
	StopReason  string          `json:"stopReason,omitempty"`
	Usage       *Usage          `json:"usage,omitempty"`
	Target      string          `json:"target,omitempty"`
	Attempts    int             `json:"attempts"`
	Error       *lineError      `json:"error,omitempty"`
}

type lineError struct {
	Code    string `json:"code"`
	Status  int    `json:"status,omitempty"`
	Message string `json:"message"`
	DLQID   int64  `json:"dlqId,omitempty"`
}

func (l *resultLine) setID(rec Record) {
	if rec.Format == FormatBedrock {
		l.RecordID = rec.RawID
	} else {
		l.ID = rec.RawID
	}
}

func encodeLine(l *resultLine) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return nil, err
	}
	return b.Bytes(), nil // Encode ends it with '\n'
}

// resultsFile is the results JSONL file, appended to only by the committer.
type resultsFile struct {
	f    *os.File
	path string
	size int64 // bytes written and fsynced
}

// createResults creates the results file for a new run. An existing file
// with content is refused unless overwrite: it is someone's results, and
// this run has no checkpoint that says which of its lines are whose. The
// file holds the model's replies: it is readable by its owner only (0600),
// like the dead-letter queue and the state file.
func createResults(path string, overwrite bool) (*resultsFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	if err := lockResults(f, path); err != nil {
		f.Close()
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 && !overwrite {
		f.Close()
		return nil, fmt.Errorf("batch: %s already exists and is not empty, but the state file has no run; remove it, pass the --state file of the run that wrote it, or start over with --restart", path)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("batch: %w", err)
	}
	// An empty file that was there already becomes this run's: 0600 too.
	if err := makePrivate(f); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("batch: %w", err)
	}
	syncDir(filepath.Dir(path))
	return &resultsFile{f: f, path: path}, nil
}

// reopenResults opens the results file of a run being resumed and cuts it
// back to the committed length: lines after it were written but not
// checkpointed, so their records run again.
func reopenResults(path string, committed int64) (*resultsFile, int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) && committed == 0 {
		r, err := createResults(path, false)
		return r, 0, err
	}
	if err != nil {
		return nil, 0, fmt.Errorf("batch: resuming: %w", err)
	}
	if err := lockResults(f, path); err != nil {
		f.Close()
		return nil, 0, err
	}
	// It holds the model's replies, whatever mode it was given since.
	if err := makePrivate(f); err != nil {
		f.Close()
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("batch: resuming: %w", err)
	}
	if fi.Size() < committed {
		f.Close()
		return nil, 0, fmt.Errorf("batch: %s holds %d bytes but the checkpoint says %d were written; it was cut or replaced since, so keel cannot tell which results are in it", path, fi.Size(), committed)
	}
	cut := fi.Size() - committed
	if cut > 0 {
		if err := f.Truncate(committed); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("batch: cutting %s back to its checkpoint: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("batch: %w", err)
		}
	}
	if _, err := f.Seek(committed, 0); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("batch: %w", err)
	}
	return &resultsFile{f: f, path: path, size: committed}, cut, nil
}

// append writes lines and fsyncs them; it returns the new size.
func (r *resultsFile) append(b []byte) (int64, error) {
	if _, err := r.f.Write(b); err != nil {
		return r.size, fmt.Errorf("batch: writing %s: %w", r.path, err)
	}
	if err := r.f.Sync(); err != nil {
		return r.size, fmt.Errorf("batch: syncing %s: %w", r.path, err)
	}
	r.size += int64(len(b))
	return r.size, nil
}

func (r *resultsFile) Close() error { return r.f.Close() }

// lockResults takes an exclusive lock on the open results file itself; the
// lock goes with the file's close. Run has already locked Out + ".lock",
// which names its holder; this one also keeps out a keel from before that
// lock, which locked only the results file.
func lockResults(f *os.File, path string) error {
	if err := lockfile.LockFile(f); err != nil {
		if errors.Is(err, lockfile.ErrLocked) {
			return fmt.Errorf("%w: %s is being written by another run (with another --state)", ErrRunning, path)
		}
		return fmt.Errorf("batch: locking %s: %w", path, err)
	}
	return nil
}

// makePrivate makes f readable by its owner only (fsutil.MakePrivate).
func makePrivate(f *os.File) error {
	if err := fsutil.MakePrivate(f); err != nil {
		return fmt.Errorf("batch: making %s readable by its owner only: %w", f.Name(), err)
	}
	return nil
}

// syncDir makes a new file's directory entry durable; best effort.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
