package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Step is how far a run has come. Each is recorded before the next begins.
type Step string

// Steps, in order.
const (
	StepNew       Step = ""          // nothing done
	StepValidated Step = "validated" // input read, files planned; nothing in S3 yet
	StepUploaded  Step = "uploaded"  // every input file is in S3
	StepCreated   Step = "created"   // the job exists; JobARN says which
	StepEnded     Step = "ended"     // the job reached a final status
	StepDone      Step = "done"      // results written, failures parked
)

// stateVersion is the state file's format; a file of another is refused.
const stateVersion = 1

// State is a run's state file: what was asked, and how far it has come.
type State struct {
	Version int       `json:"version"`
	Step    Step      `json:"step"`
	Updated time.Time `json:"updated"`

	// What was asked; a run resumed with other values is refused.
	In             string `json:"in"`
	InputSHA256    string `json:"inputSha256"`
	Records        int    `json:"records"`
	Model          string `json:"model"`
	S3             string `json:"s3"`
	Role           string `json:"role"`
	InvocationType string `json:"invocationType"` // InvokeModel (Bedrock records) or Converse (simple records)
	Out            string `json:"out"`
	Region         string `json:"region,omitempty"` // where the job and its bucket are: every later step and the dead letters use it
	Format         string `json:"format,omitempty"`
	MaxTokens      int    `json:"maxTokens,omitempty"`
	TimeoutHours   int32  `json:"timeoutHours,omitempty"` // the job's timeoutDurationInHours; 0: Bedrock's default

	// KeelRecordIDs: the uploaded records carry keel's recordIds (K and
	// ten digits of the input index), joined back to the input's by index;
	// false in a state of an older keel, which sent the input's ids.
	KeelRecordIDs bool `json:"keelRecordIds,omitempty"`

	// Derived from the above (see RunID).
	RunID     string `json:"runId"`
	JobName   string `json:"jobName"`
	Token     string `json:"clientRequestToken"`
	InputURI  string `json:"inputUri"`
	OutputURI string `json:"outputUri"`
	Files     []File `json:"files"`

	// Attempt is the job's attempt at the run: 0 or 1 for the first, whose
	// name and token are the run's; a later one (Options.NewJob) adds
	// "-N" to both. Replaced lists the ids of the earlier attempts' jobs,
	// which ended without doing their records.
	Attempt  int      `json:"attempt,omitempty"`
	Replaced []string `json:"replaced,omitempty"`

	// The job.
	JobARN    string `json:"jobArn,omitempty"`
	JobID     string `json:"jobId,omitempty"`
	Status    string `json:"status,omitempty"`
	Message   string `json:"message,omitempty"`
	Processed int64  `json:"processed,omitempty"`
	Succeeded int64  `json:"succeeded,omitempty"`
	Errors    int64  `json:"errors,omitempty"`
	Total     int64  `json:"total,omitempty"`
	// Polls are the starts of the last GetModelInvocationJob polls (at
	// most the hourly ceiling's worth), so that the ceiling holds across
	// restarts of keel jobs wait or run.
	Polls []time.Time `json:"polls,omitempty"`

	// The results (StepDone).
	ResultsOK     int       `json:"resultsOk,omitempty"`
	ResultsFailed int       `json:"resultsFailed,omitempty"`
	Manifest      *Manifest `json:"manifest,omitempty"`
}

// File is one uploaded input file: the records [Start, End) in input order.
type File struct {
	Key      string `json:"key"`
	Start    int    `json:"start"`
	End      int    `json:"end"`
	Bytes    int64  `json:"bytes"`
	Uploaded bool   `json:"uploaded"`
}

// LoadState reads the state file at path; a missing file is a new State.
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &State{Version: stateVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("jobs: state file %s is not keel jobs state: %v", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("jobs: state file %s has format %d; this keel reads %d", path, st.Version, stateVersion)
	}
	return &st, nil
}

// save writes st to path: a temporary file, fsynced, renamed over the old
// one, so a kill leaves the old state or the new, never half of one. The
// file is readable by its owner only (0600).
func (st *State) save(path string, now time.Time) error {
	st.Updated = now.UTC()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	return writeAtomic(path, append(b, '\n'))
}

// writeAtomic replaces path with b (0600) so that a kill leaves either the
// old content or the new. Each call writes its own temporary file beside
// path, so two writers never truncate each other's.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp") // 0600
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	tmp := f.Name()
	err = func() error {
		defer f.Close()
		if _, err := f.Write(b); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		return f.Close()
	}()
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("jobs: writing %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync() // best effort: make the rename durable
		d.Close()
	}
	return nil
}
