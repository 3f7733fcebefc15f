package dlq

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver ("sqlite"); no cgo
)

// schemaVersion is stored in PRAGMA user_version. A file from a newer keel is
// refused rather than misread.
const schemaVersion = 1

const schema = `
CREATE TABLE IF NOT EXISTS dead_letters (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	key           TEXT UNIQUE,
	source        TEXT NOT NULL,
	op            TEXT NOT NULL,
	model         TEXT NOT NULL,
	region        TEXT NOT NULL,
	body          BLOB NOT NULL,
	redacted      INTEGER NOT NULL,
	code          TEXT NOT NULL,
	status        INTEGER NOT NULL,
	message       TEXT NOT NULL,
	request_id    TEXT NOT NULL,
	retry         TEXT NOT NULL,
	attempts      TEXT NOT NULL,
	created_ns    INTEGER NOT NULL,
	failed_ns     INTEGER NOT NULL,
	not_before_ns INTEGER NOT NULL,
	redrives      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_code ON dead_letters(code COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS dead_letters_model ON dead_letters(model);
CREATE INDEX IF NOT EXISTS dead_letters_created ON dead_letters(created_ns);
`

// SQLite is the default Store: one SQLite file (modernc.org/sqlite, pure Go)
// in WAL mode with synchronous=FULL. It is safe for concurrent use, and
// several processes may share the file (a `keel batch run` writing while
// `keel dlq list` reads); writers wait up to 10 s for one another.
//
// Durability: in WAL mode a commit is appended to the -wal file, and with
// synchronous=FULL that file is fsynced at every commit, so an entry whose
// Put has returned survives kill -9 and a power cut. (synchronous=NORMAL
// with WAL would already survive kill -9, since a killed process leaves its
// writes in the kernel's page cache; it could lose the last commits in a
// power cut. Dead letters are few and each is precious, so the extra fsync
// per failure is worth it.)
type SQLite struct {
	db   *sql.DB
	path string
}

// OpenSQLite opens (creating if needed) the dead-letter database at path.
func OpenSQLite(path string) (*SQLite, error) {
	db, err := OpenDB(path)
	if err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	s := &SQLite{db: db, path: path}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// OpenDB opens the SQLite file at path the way keel keeps all its durable
// state (dead letters, batch checkpoints): a new file readable by its owner
// only, WAL journal, synchronous=FULL,
// a 10 s busy timeout, and transactions that take the write lock at BEGIN
// (so two writers never deadlock upgrading read locks). It uses one
// connection: SQLite has one writer at a time anyway, and a single
// connection keeps a process's transactions strictly ordered.
func OpenDB(path string) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("no database file named")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("database file name %q contains '?' or '#'; rename it", path)
	}
	// Request bodies can hold sensitive data: a new file is readable by its
	// owner only (SQLite gives the -wal and -shm files the same mode).
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	// Connections are never closed for idleness: the pragmas above are per connection.
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		db.Close()
		return nil, fmt.Errorf("opening %s: journal mode is %q, not wal (is it on a file system without shared memory?)", path, mode)
	}
	return db, nil
}

func (s *SQLite) migrate() error {
	var v int
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("dlq: reading %s: %w", s.path, err)
	}
	if v > schemaVersion {
		return fmt.Errorf("dlq: %s has schema version %d; this keel knows up to %d (upgrade keel)", s.path, v, schemaVersion)
	}
	var other int
	if err := s.db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'dead_letters'`).Scan(&other); err != nil {
		return fmt.Errorf("dlq: reading %s: %w", s.path, err)
	}
	if other > 0 {
		return fmt.Errorf("dlq: %s is not a keel dead-letter database (it has other tables; a batch state file?)", s.path)
	}
	if _, err := s.db.Exec(schema + fmt.Sprintf("PRAGMA user_version = %d;", schemaVersion)); err != nil {
		return fmt.Errorf("dlq: creating the schema in %s: %w", s.path, err)
	}
	return nil
}

// Path returns the database file's path.
func (s *SQLite) Path() string { return s.path }

const columns = `id, key, source, op, model, region, body, redacted, code, status, message, request_id, retry, attempts, created_ns, failed_ns, not_before_ns, redrives`

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func nullKey(k string) any {
	if k == "" {
		return nil
	}
	return k
}

// values returns e's column values after id, in columns order.
func values(e *Entry) ([]any, error) {
	att := e.Attempts
	if att == nil {
		att = []Attempt{}
	}
	a, err := json.Marshal(att)
	if err != nil {
		return nil, fmt.Errorf("dlq: encoding attempts: %w", err)
	}
	body := e.Body
	if body == nil {
		body = []byte{}
	}
	return []any{nullKey(e.Key), e.Source, e.Op, e.Model, e.Region, body, e.Redacted, e.Code, e.Status, e.Message,
		e.RequestID, e.Retry, string(a), nanos(e.CreatedAt), nanos(e.FailedAt), nanos(e.NotBefore), e.Redrives}, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanEntry(r scanner) (*Entry, error) {
	var (
		e                          Entry
		key                        sql.NullString
		attempts                   string
		created, failed, notBefore int64
	)
	if err := r.Scan(&e.ID, &key, &e.Source, &e.Op, &e.Model, &e.Region, &e.Body, &e.Redacted, &e.Code, &e.Status,
		&e.Message, &e.RequestID, &e.Retry, &attempts, &created, &failed, &notBefore, &e.Redrives); err != nil {
		return nil, err
	}
	e.Key = key.String
	if err := json.Unmarshal([]byte(attempts), &e.Attempts); err != nil {
		return nil, fmt.Errorf("dlq: entry %d: decoding attempts: %w", e.ID, err)
	}
	e.CreatedAt, e.FailedAt, e.NotBefore = fromNanos(created), fromNanos(failed), fromNanos(notBefore)
	e.normalize()
	return &e, nil
}

// Put implements Store.
func (s *SQLite) Put(ctx context.Context, e *Entry) (int64, error) {
	vals, err := values(e)
	if err != nil {
		return 0, err
	}
	// One statement, so the upsert is atomic even between processes.
	q := `INSERT INTO dead_letters (` + strings.TrimPrefix(columns, "id, ") + `) VALUES (?` + strings.Repeat(", ?", len(vals)-1) + `)
		ON CONFLICT(key) DO UPDATE SET source = excluded.source, op = excluded.op, model = excluded.model,
			region = excluded.region, body = excluded.body, redacted = excluded.redacted, code = excluded.code,
			status = excluded.status, message = excluded.message, request_id = excluded.request_id,
			retry = excluded.retry, attempts = excluded.attempts, failed_ns = excluded.failed_ns,
			not_before_ns = excluded.not_before_ns, redrives = excluded.redrives
		RETURNING id`
	var id int64
	if err := s.db.QueryRowContext(ctx, q, vals...).Scan(&id); err != nil {
		return 0, fmt.Errorf("dlq: storing an entry in %s: %w", s.path, err)
	}
	return id, nil
}

// Get implements Store.
func (s *SQLite) Get(ctx context.Context, id int64) (*Entry, error) {
	e, err := scanEntry(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM dead_letters WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: id %d", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: reading entry %d from %s: %w", id, s.path, err)
	}
	return e, nil
}

// where renders f as a WHERE clause (Limit aside).
func where(f Filter) (string, []any) {
	var (
		conds []string
		args  []any
	)
	in := func(col string, n int) string {
		return col + " IN (?" + strings.Repeat(", ?", n-1) + ")"
	}
	if len(f.IDs) > 0 {
		conds = append(conds, in("id", len(f.IDs)))
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	if len(f.Codes) > 0 {
		conds = append(conds, in("code COLLATE NOCASE", len(f.Codes)))
		for _, c := range f.Codes {
			args = append(args, c)
		}
	}
	if len(f.Models) > 0 {
		conds = append(conds, in("model", len(f.Models)))
		for _, m := range f.Models {
			args = append(args, m)
		}
	}
	if !f.CreatedBefore.IsZero() {
		conds = append(conds, "created_ns < ?")
		args = append(args, f.CreatedBefore.UnixNano())
	}
	if !f.CreatedAfter.IsZero() {
		conds = append(conds, "created_ns > ?")
		args = append(args, f.CreatedAfter.UnixNano())
	}
	if !f.DueAt.IsZero() {
		conds = append(conds, "(not_before_ns = 0 OR not_before_ns <= ?)")
		args = append(args, f.DueAt.UnixNano())
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// List implements Store.
func (s *SQLite) List(ctx context.Context, f Filter) ([]*Entry, error) {
	w, args := where(f)
	q := `SELECT ` + columns + ` FROM dead_letters` + w + ` ORDER BY id`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("dlq: listing %s: %w", s.path, err)
	}
	defer rows.Close()
	out := []*Entry{}
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("dlq: listing %s: %w", s.path, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dlq: listing %s: %w", s.path, err)
	}
	return out, nil
}

// Update implements Store.
func (s *SQLite) Update(ctx context.Context, e *Entry) error {
	vals, err := values(e)
	if err != nil {
		return err
	}
	cols := strings.Split(strings.TrimPrefix(columns, "id, "), ", ")
	set := make([]string, len(cols))
	for i, c := range cols {
		set[i] = c + " = ?"
	}
	res, err := s.db.ExecContext(ctx, `UPDATE dead_letters SET `+strings.Join(set, ", ")+` WHERE id = ?`, append(vals, e.ID)...)
	if err != nil {
		return fmt.Errorf("dlq: updating entry %d in %s: %w", e.ID, s.path, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: id %d", ErrNotFound, e.ID)
	}
	return nil
}

// Delete implements Store.
func (s *SQLite) Delete(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM dead_letters WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("dlq: deleting entry %d from %s: %w", id, s.path, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: id %d", ErrNotFound, id)
	}
	return nil
}

// Purge implements Store.
func (s *SQLite) Purge(ctx context.Context, f Filter) (int, error) {
	w, args := where(f)
	res, err := s.db.ExecContext(ctx, `DELETE FROM dead_letters`+w, args...)
	if err != nil {
		return 0, fmt.Errorf("dlq: purging %s: %w", s.path, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Close implements Store.
func (s *SQLite) Close() error { return s.db.Close() }
