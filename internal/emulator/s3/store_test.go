package s3

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

func TestStoreAccounting(t *testing.T) {
	tests := []struct {
		name string
		run  func(s *Store) error
		used int64
	}{
		{"put and replace", func(s *Store) error {
			if _, err := s.Put("acct-bucket", "k", "", make([]byte, 100)); err != nil {
				return err
			}
			_, err := s.Put("acct-bucket", "k", "", make([]byte, 30))
			return err
		}, 30},
		{"complete drops unlisted parts", func(s *Store) error {
			id, _ := s.CreateUpload("acct-bucket", "k", "")
			e1, _ := s.UploadPart("acct-bucket", "k", id, 1, make([]byte, minPartSize))
			s.UploadPart("acct-bucket", "k", id, 2, make([]byte, 10))
			e3, _ := s.UploadPart("acct-bucket", "k", id, 3, make([]byte, 7))
			_, err := s.CompleteUpload("acct-bucket", "k", id, []CompletedPart{{1, e1}, {3, e3}})
			return err
		}, minPartSize + 7},
		{"part to an unknown upload gives its bytes back", func(s *Store) error {
			_, err := s.UploadPart("acct-bucket", "k", "nope", 1, make([]byte, 10))
			if !errors.Is(err, ErrNoSuchUpload) {
				return errors.New("want NoSuchUpload")
			}
			return nil
		}, 0},
		{"bad part number", func(s *Store) error {
			id, _ := s.CreateUpload("acct-bucket", "k", "")
			_, err := s.UploadPart("acct-bucket", "k", id, maxPartNumber+1, make([]byte, 10))
			if !errors.Is(err, ErrInvalidArgument) {
				return errors.New("want InvalidArgument")
			}
			return nil
		}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStore(0, nil)
			if err := tc.run(s); err != nil {
				t.Fatal(err)
			}
			if got := s.Used(); got != tc.used {
				t.Errorf("Used = %d, want %d", got, tc.used)
			}
		})
	}
}

// TestStoreBoundUnderConcurrency checks that concurrent puts never hold
// more than the bound: each reserves its bytes before it is kept.
func TestStoreBoundUnderConcurrency(t *testing.T) {
	s := NewStore(1000, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	kept := 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Put("conc-bucket", string(rune('a'+i)), "", bytes.Repeat([]byte{1}, 100))
			if err == nil {
				mu.Lock()
				kept++
				mu.Unlock()
			} else if !errors.Is(err, ErrFull) {
				t.Errorf("Put: %v, want nil or ErrFull", err)
			}
		}()
	}
	wg.Wait()
	if kept != 10 || s.Used() != 1000 {
		t.Errorf("kept %d objects holding %d bytes, want 10 holding 1000", kept, s.Used())
	}
}
