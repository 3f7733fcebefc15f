package cache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keel-run/keel/internal/clock"
)

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS cache_entries (
	key        TEXT PRIMARY KEY,
	value      BLOB NOT NULL,
	expires_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_entries_expires ON cache_entries(expires_ns);
`

// sqliteSchemaVersion is stored in PRAGMA user_version; a file of another
// version is a file of other rules, and is started afresh like a corrupt
// one (it is a cache).
const sqliteSchemaVersion = 1

// SQLite is a Store in one SQLite file (modernc.org/sqlite, pure Go): it
// survives restarts and may be shared by the processes of one machine.
// It is bounded by bytes: past the bound, entries closest to expiry (the
// oldest, as every entry of one configuration has the same TTL) are
// evicted. It is safe for concurrent use.
//
// The file is created readable by its owner only (it holds prompts and
// replies). A file that is not a SQLite database, is corrupt, or was
// written by another schema is moved aside (to PATH.corrupt), logged once,
// and a new one started: the cache reads as empty, never wrong.
// synchronous=NORMAL: a cache may lose its last writes in a power cut, and
// need not pay an fsync per reply.
type SQLite struct {
	db   *sql.DB
	path string
	max  int64
	clk  clock.Clock

	mu        sync.Mutex
	bytes     int64 // an upper estimate of the values' bytes, made exact at each eviction
	evictions int64
}

// OpenSQLite opens (creating if needed) the cache file at path, holding at
// most maxBytes of values; clk decides expiry (nil: the wall clock) and log
// hears of a corrupt file (nil: slog.Default()).
func OpenSQLite(path string, maxBytes int64, clk clock.Clock, log *slog.Logger) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("cache: sqlite store names no file (want sqlite:PATH)")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("cache: sqlite file name %q contains '?' or '#'; rename it", path)
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if log == nil {
		log = slog.Default()
	}
	s := &SQLite{path: path, max: maxBytes, clk: clk}
	err := s.open()
	if err != nil && unusable(err) {
		log.Warn("cache: the sqlite file is unreadable; moved aside, starting empty", "path", path, "moved", path+".corrupt", "err", err.Error())
		if err = moveAside(path); err == nil {
			err = s.open()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cache: %s: %w", path, err)
	}
	return s, nil
}

// errOtherSchema marks a file keel's cache did not write, or wrote under
// other rules.
var errOtherSchema = errors.New("not a keel cache file of this version")

// unusable reports an error that says the file is not a usable cache:
// not a database, corrupt, or of another schema.
func unusable(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return true
		}
	}
	return errors.Is(err, errOtherSchema)
}

func moveAside(path string) error {
	if err := os.Rename(path, path+".corrupt"); err != nil {
		return err
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (s *SQLite) open() error {
	// A new file is readable by its owner only (SQLite gives the -wal and
	// -shm files the same mode).
	if f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, os.ErrExist) {
		return err
	}
	db, err := sql.Open("sqlite", s.path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	if err := s.migrate(db); err != nil {
		db.Close()
		return err
	}
	var total int64
	if err := db.QueryRow(`SELECT CAST(total(length(value)) AS INTEGER) FROM cache_entries`).Scan(&total); err != nil {
		db.Close()
		return err
	}
	s.db, s.bytes = db, total
	return nil
}

func (s *SQLite) migrate(db *sql.DB) error {
	var check string
	if err := db.QueryRow("PRAGMA quick_check").Scan(&check); err != nil {
		return err
	}
	if check != "ok" {
		return &corruptError{check}
	}
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	var other int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'cache_entries'`).Scan(&other); err != nil {
		return err
	}
	if other > 0 || (v != 0 && v != sqliteSchemaVersion) {
		return fmt.Errorf("%w (schema %d, %d other tables)", errOtherSchema, v, other)
	}
	_, err := db.Exec(sqliteSchema + fmt.Sprintf("PRAGMA user_version = %d;", sqliteSchemaVersion))
	return err
}

// corruptError is a quick_check that found damage.
type corruptError struct{ report string }

func (e *corruptError) Error() string { return "integrity check: " + e.report }
func (e *corruptError) Is(target error) bool {
	return target == errOtherSchema
}

// Get implements Store.
func (s *SQLite) Get(ctx context.Context, key string) ([]byte, bool, error) {
	var v []byte
	err := s.db.QueryRowContext(ctx, `SELECT value FROM cache_entries WHERE key = ? AND expires_ns > ?`, key, s.clk.Now().UnixNano()).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cache: reading %s: %w", s.path, err)
	}
	return v, true, nil
}

// Set implements Store.
func (s *SQLite) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	size := int64(len(value))
	if size > s.max || ttl <= 0 {
		_, err := s.db.ExecContext(ctx, `DELETE FROM cache_entries WHERE key = ?`, key)
		return s.wrap(err)
	}
	now := s.clk.Now()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO cache_entries(key, value, expires_ns) VALUES(?, ?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_ns = excluded.expires_ns`,
		key, value, now.Add(ttl).UnixNano()); err != nil {
		return s.wrap(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bytes += size
	if s.bytes <= s.max {
		return nil
	}
	return s.wrap(s.evict(ctx, now))
}

// evict drops the expired entries, then the oldest, until the values fit
// the bound; it makes the byte count exact. Called with mu held.
func (s *SQLite) evict(ctx context.Context, now time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM cache_entries WHERE expires_ns <= ?`, now.UnixNano()); err != nil {
		return err
	}
	if err := s.db.QueryRowContext(ctx, `SELECT CAST(total(length(value)) AS INTEGER) FROM cache_entries`).Scan(&s.bytes); err != nil {
		return err
	}
	excess := s.bytes - s.max
	if excess <= 0 {
		return nil
	}
	// The oldest entries whose sizes, summed in order, first cover the
	// excess.
	res, err := s.db.ExecContext(ctx, `DELETE FROM cache_entries WHERE key IN (
		SELECT key FROM (SELECT key, length(value) AS size,
			sum(length(value)) OVER (ORDER BY expires_ns, key ROWS UNBOUNDED PRECEDING) AS run FROM cache_entries)
		WHERE run - size < ?)`, excess)
	if err != nil {
		return err
	}
	n, _ := res.RowsAffected()
	s.evictions += n
	return s.db.QueryRowContext(ctx, `SELECT CAST(total(length(value)) AS INTEGER) FROM cache_entries`).Scan(&s.bytes)
}

func (s *SQLite) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("cache: writing %s: %w", s.path, err)
}

// Purge implements Store.
func (s *SQLite) Purge(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM cache_entries`); err != nil {
		return s.wrap(err)
	}
	s.bytes = 0
	return nil
}

// Stats implements Store.
func (s *SQLite) Stats(ctx context.Context) (StoreStats, error) {
	st := StoreStats{}
	err := s.db.QueryRowContext(ctx, `SELECT count(*), CAST(total(length(value)) AS INTEGER) FROM cache_entries WHERE expires_ns > ?`,
		s.clk.Now().UnixNano()).Scan(&st.Entries, &st.Bytes)
	if err != nil {
		return st, fmt.Errorf("cache: reading %s: %w", s.path, err)
	}
	s.mu.Lock()
	st.Evictions = s.evictions
	s.mu.Unlock()
	return st, nil
}

// Path returns the file's path.
func (s *SQLite) Path() string { return s.path }

// Close implements Store.
func (s *SQLite) Close() error { return s.db.Close() }
