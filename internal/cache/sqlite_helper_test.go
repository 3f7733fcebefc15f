package cache_test

import (
	"database/sql"
	"testing"
)

// otherDB adds a table of another program to the SQLite file at path.
func otherDB(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE dead_letters(id INTEGER)`); err != nil {
		t.Fatal(err)
	}
}
