package batch

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/keel-run/keel/internal/dlq"
)

const stateSchemaVersion = 1

const stateSchema = `
CREATE TABLE IF NOT EXISTS batch_meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_records (
	id            TEXT PRIMARY KEY,
	line          INTEGER NOT NULL,
	ok            INTEGER NOT NULL,
	code          TEXT NOT NULL,
	input_tokens  INTEGER NOT NULL,
	output_tokens INTEGER NOT NULL,
	attempts      INTEGER NOT NULL,
	out_start     INTEGER NOT NULL,
	out_end       INTEGER NOT NULL,
	dlq_id        INTEGER NOT NULL,
	finished_ns   INTEGER NOT NULL
);
`

// Meta describes a run; it is written once, when the run starts.
type Meta struct {
	RunID     string // random; keys the run's dead letters
	Input     string // input path as given
	InputHash string // hex SHA-256 of the input file
	InputSize int64
	Total     int // records in the input
	Out       string
	Model     string
	CreatedAt time.Time
}

// State is a run's checkpoint file: which records are finished (succeeded or
// failed for good), where their result lines end in the results file, and
// the committed length of the results file. It is a SQLite file (WAL,
// synchronous=FULL, see dlq.OpenDB).
type State struct {
	db   *sql.DB
	path string
}

// OpenState opens or creates the state file at path.
func OpenState(path string) (*State, error) {
	db, err := dlq.OpenDB(path)
	if err != nil {
		return nil, fmt.Errorf("batch: state: %w", err)
	}
	s := &State{db: db, path: path}
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		db.Close()
		return nil, fmt.Errorf("batch: reading state %s: %w", path, err)
	}
	if v > stateSchemaVersion {
		db.Close()
		return nil, fmt.Errorf("batch: state %s has schema version %d; this keel knows up to %d (upgrade keel)", path, v, stateSchemaVersion)
	}
	var other int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT IN ('batch_meta', 'batch_records')`).Scan(&other); err != nil {
		db.Close()
		return nil, fmt.Errorf("batch: reading state %s: %w", path, err)
	}
	if other > 0 {
		db.Close()
		return nil, fmt.Errorf("batch: %s is not a keel batch state file (it has other tables; a dead-letter database?)", path)
	}
	if _, err := db.Exec(stateSchema + fmt.Sprintf("PRAGMA user_version = %d;", stateSchemaVersion)); err != nil {
		db.Close()
		return nil, fmt.Errorf("batch: creating state %s: %w", path, err)
	}
	return s, nil
}

// Close closes the state file.
func (s *State) Close() error { return s.db.Close() }

// Path returns the state file's path.
func (s *State) Path() string { return s.path }

// Meta returns the run's description; ok is false for a new state file.
func (s *State) Meta() (m Meta, ok bool, err error) {
	rows, err := s.db.Query(`SELECT key, value FROM batch_meta`)
	if err != nil {
		return m, false, fmt.Errorf("batch: reading state %s: %w", s.path, err)
	}
	defer rows.Close()
	kv := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return m, false, fmt.Errorf("batch: reading state %s: %w", s.path, err)
		}
		kv[k] = v
	}
	if err := rows.Err(); err != nil {
		return m, false, fmt.Errorf("batch: reading state %s: %w", s.path, err)
	}
	if len(kv) == 0 {
		return m, false, nil
	}
	m.RunID, m.Input, m.InputHash, m.Out, m.Model = kv["run_id"], kv["input"], kv["input_sha256"], kv["out"], kv["model"]
	m.InputSize, _ = strconv.ParseInt(kv["input_size"], 10, 64)
	m.Total, _ = strconv.Atoi(kv["total"])
	ns, _ := strconv.ParseInt(kv["created_ns"], 10, 64)
	m.CreatedAt = time.Unix(0, ns).UTC()
	if m.RunID == "" || m.InputHash == "" {
		return m, false, fmt.Errorf("batch: state %s is incomplete (no run id or input hash)", s.path)
	}
	return m, true, nil
}

// Begin writes a new run's description, with a committed results length of zero.
func (s *State) Begin(m Meta) error {
	tx, err := s.db.Begin()
	if err != nil {
		return fmt.Errorf("batch: writing state %s: %w", s.path, err)
	}
	defer tx.Rollback()
	for k, v := range map[string]string{
		"run_id": m.RunID, "input": m.Input, "input_sha256": m.InputHash, "input_size": strconv.FormatInt(m.InputSize, 10),
		"total": strconv.Itoa(m.Total), "out": m.Out, "model": m.Model, "created_ns": strconv.FormatInt(m.CreatedAt.UnixNano(), 10),
		"out_len": "0",
	} {
		if _, err := tx.Exec(`INSERT INTO batch_meta (key, value) VALUES (?, ?)`, k, v); err != nil {
			return fmt.Errorf("batch: writing state %s: %w", s.path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("batch: writing state %s: %w", s.path, err)
	}
	return nil
}

// OutLen returns the committed length of the results file: every byte
// before it belongs to a finished record; anything after it is a torn tail.
func (s *State) OutLen() (int64, error) {
	var v string
	if err := s.db.QueryRow(`SELECT value FROM batch_meta WHERE key = 'out_len'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("batch: reading state %s: %w", s.path, err)
	}
	return strconv.ParseInt(v, 10, 64)
}

// Finished is one record's final result, as the state keeps it.
type Finished struct {
	ID           string
	Line         int
	OK           bool
	Code         string // catalog code of the failure; "" on success
	InputTokens  int
	OutputTokens int
	Attempts     int
	OutStart     int64 // the record's result line in the results file
	OutEnd       int64
	DLQID        int64
	At           time.Time
}

// A Limit is a tokens-per-minute limit the quota governor learned for a
// target, kept so that a resumed run starts from it (see Governor.Hint in
// internal/admission).
type Limit struct {
	Model           string `json:"model"`
	Region          string `json:"region"`
	Tier            string `json:"tier,omitempty"`
	TokensPerMinute int64  `json:"tokens_per_minute"`
}

// limitsKey is the batch_meta key of the learned limits, a JSON array.
const limitsKey = "learned_limits"

// Limits returns the limits learned by the time of the last checkpoint that
// saved any; none for a run that learned none (or a state file written by
// an older keel).
func (s *State) Limits() ([]Limit, error) {
	var v string
	err := s.db.QueryRow(`SELECT value FROM batch_meta WHERE key = ?`, limitsKey).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("batch: reading state %s: %w", s.path, err)
	}
	var out []Limit
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		return nil, fmt.Errorf("batch: state %s: its learned limits are not readable: %w", s.path, err)
	}
	return out, nil
}

// Commit records finished records and the new committed results length in
// one transaction, with the limits learned so far when limits is not nil.
// The results file must already hold (fsynced) every byte up to outLen.
func (s *State) Commit(recs []Finished, outLen int64, limits []Limit) error {
	tx, err := s.db.Begin()
	if err != nil {
		return fmt.Errorf("batch: checkpoint in %s: %w", s.path, err)
	}
	defer tx.Rollback()
	st, err := tx.Prepare(`INSERT INTO batch_records (id, line, ok, code, input_tokens, output_tokens, attempts, out_start, out_end, dlq_id, finished_ns)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("batch: checkpoint in %s: %w", s.path, err)
	}
	defer st.Close()
	for _, r := range recs {
		if _, err := st.Exec(r.ID, r.Line, r.OK, r.Code, r.InputTokens, r.OutputTokens, r.Attempts, r.OutStart, r.OutEnd, r.DLQID, r.At.UnixNano()); err != nil {
			return fmt.Errorf("batch: checkpoint of record %q in %s: %w", r.ID, s.path, err)
		}
	}
	if _, err := tx.Exec(`UPDATE batch_meta SET value = ? WHERE key = 'out_len'`, strconv.FormatInt(outLen, 10)); err != nil {
		return fmt.Errorf("batch: checkpoint in %s: %w", s.path, err)
	}
	if limits != nil {
		v, err := json.Marshal(limits)
		if err != nil {
			return fmt.Errorf("batch: checkpoint in %s: %w", s.path, err)
		}
		if _, err := tx.Exec(`INSERT INTO batch_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, limitsKey, string(v)); err != nil {
			return fmt.Errorf("batch: checkpoint in %s: %w", s.path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("batch: checkpoint in %s: %w", s.path, err)
	}
	return nil
}

// FinishedIDs returns the ids of every finished record.
func (s *State) FinishedIDs() (map[string]bool, error) {
	rows, err := s.db.Query(`SELECT id FROM batch_records`)
	if err != nil {
		return nil, fmt.Errorf("batch: reading state %s: %w", s.path, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("batch: reading state %s: %w", s.path, err)
		}
		out[id] = true
	}
	return out, rows.Err()
}

// Status is a run's progress as its state file tells it.
type Status struct {
	Meta         Meta
	Succeeded    int
	Failed       int
	Pending      int
	InputTokens  int64
	OutputTokens int64
	FailedByCode map[string]int
	OutLen       int64
	FirstDone    time.Time // zero when nothing is finished
	LastDone     time.Time
}

// Status summarises the run.
func (s *State) Status(ctx context.Context) (*Status, error) {
	m, ok, err := s.Meta()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("batch: %s holds no run yet", s.path)
	}
	st := &Status{Meta: m, FailedByCode: map[string]int{}}
	if st.OutLen, err = s.OutLen(); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT ok, code, count(*), sum(input_tokens), sum(output_tokens), min(finished_ns), max(finished_ns) FROM batch_records GROUP BY ok, code`)
	if err != nil {
		return nil, fmt.Errorf("batch: reading state %s: %w", s.path, err)
	}
	defer rows.Close()
	var first, last int64
	for rows.Next() {
		var (
			ok      bool
			code    string
			n       int
			in, out int64
			lo, hi  int64
		)
		if err := rows.Scan(&ok, &code, &n, &in, &out, &lo, &hi); err != nil {
			return nil, fmt.Errorf("batch: reading state %s: %w", s.path, err)
		}
		if ok {
			st.Succeeded += n
		} else {
			st.Failed += n
			st.FailedByCode[code] += n
		}
		st.InputTokens += in
		st.OutputTokens += out
		if first == 0 || lo < first {
			first = lo
		}
		if hi > last {
			last = hi
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("batch: reading state %s: %w", s.path, err)
	}
	if first != 0 {
		st.FirstDone, st.LastDone = time.Unix(0, first).UTC(), time.Unix(0, last).UTC()
	}
	st.Pending = m.Total - st.Succeeded - st.Failed
	return st, nil
}

// ErrStateMismatch is returned (wrapped) when a state file belongs to
// another run: another input, results file or model.
var ErrStateMismatch = errors.New("batch: the state file belongs to another run")

// ErrRunning is returned (wrapped, with the holder's pid, host and start
// time) when another run holds the state file or the results file.
var ErrRunning = errors.New("batch: another run is under way")

// removeState deletes a state file and its SQLite companions, for a run
// that starts over. The caller holds the run's lock.
func removeState(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("batch: starting over: %w", err)
		}
	}
	return nil
}
