package s3

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMaxBytes is the default bound on the bytes a Store holds (objects
// and multipart parts together): room for a batch job's input and output
// files of a few hundred megabytes, small enough for any test machine.
const DefaultMaxBytes = 1 << 30

// Limits S3 itself sets, which the Store enforces as S3 does.
const (
	// maxKeyLength is S3's limit on an object key, in bytes.
	maxKeyLength = 1024
	// minPartSize is the smallest part of a multipart upload but the last (5 MiB).
	minPartSize = 5 << 20
	// maxPartNumber is the highest part number of a multipart upload.
	maxPartNumber = 10000
)

// Error is an S3 error: the code and HTTP status S3 answers with, and a
// message. errors.Is matches two Errors of the same code, so a Store's
// errors, which carry details, match the sentinels below.
type Error struct {
	Code    string
	Status  int
	Message string
}

func (e *Error) Error() string { return "s3: " + e.Code + ": " + e.Message }

// Is reports whether target is an *Error of the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// with returns a copy of e with a message of its own.
func (e *Error) with(format string, args ...any) *Error {
	return &Error{Code: e.Code, Status: e.Status, Message: fmt.Sprintf(format, args...)}
}

// Errors the Store and Handler return, each answered as the S3 error of its
// code. ErrFull is the emulator's own: S3 has no bound, so it has no code
// for passing one; 507 is not retried by the SDKs, which would only fail again.
var (
	ErrNoSuchBucket      = &Error{"NoSuchBucket", http.StatusNotFound, "The specified bucket does not exist"}
	ErrNoSuchKey         = &Error{"NoSuchKey", http.StatusNotFound, "The specified key does not exist."}
	ErrNoSuchUpload      = &Error{"NoSuchUpload", http.StatusNotFound, "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."}
	ErrInvalidBucketName = &Error{"InvalidBucketName", http.StatusBadRequest, "The specified bucket is not valid."}
	ErrKeyTooLong        = &Error{"KeyTooLongError", http.StatusBadRequest, "Your key is too long (over 1024 bytes)."}
	ErrInvalidArgument   = &Error{"InvalidArgument", http.StatusBadRequest, "Invalid Argument"}
	ErrInvalidPart       = &Error{"InvalidPart", http.StatusBadRequest, "One or more of the specified parts could not be found."}
	ErrInvalidPartOrder  = &Error{"InvalidPartOrder", http.StatusBadRequest, "The list of parts was not in ascending order."}
	ErrEntityTooSmall    = &Error{"EntityTooSmall", http.StatusBadRequest, "Your proposed upload is smaller than the minimum allowed object size."}
	ErrMalformedXML      = &Error{"MalformedXML", http.StatusBadRequest, "The XML you provided was not well-formed or did not validate against our published schema."}
	ErrFull              = &Error{"InsufficientStorage", http.StatusInsufficientStorage, "The emulator's object store is full."}
)

// Object is one stored object. Its Data must not be modified.
type Object struct {
	Key          string
	Data         []byte
	ETag         string // quoted, as S3 sends it
	LastModified time.Time
	ContentType  string
}

// Store is an in-memory, bounded set of buckets of objects. The zero Store
// is not usable; make one with NewStore. A Store is safe for concurrent use.
type Store struct {
	now func() time.Time
	max int64

	mu      sync.Mutex
	used    int64 // bytes of objects, parts, and reservations of bodies being read
	buckets map[string]map[string]*Object
	uploads map[string]*upload
	seq     uint64
}

type upload struct {
	bucket, key, contentType string
	parts                    map[int]part
}

type part struct {
	data []byte
	etag string
}

// NewStore returns an empty Store that holds at most maxBytes (zero means
// DefaultMaxBytes) and dates objects by now (nil means time.Now).
func NewStore(maxBytes int64, now func() time.Time) *Store {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if now == nil {
		now = time.Now
	}
	return &Store{now: now, max: maxBytes, buckets: map[string]map[string]*Object{}, uploads: map[string]*upload{}}
}

// MaxBytes returns the bound on the bytes the Store holds.
func (s *Store) MaxBytes() int64 { return s.max }

// Used returns the bytes the Store holds now.
func (s *Store) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// ValidBucketName reports whether name follows S3's bucket naming rules:
// 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending
// with a letter or digit.
func ValidBucketName(name string) bool {
	if len(name) < 3 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-'
		if !ok || (i == 0 || i == len(name)-1) && (c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func checkName(bucket, key string) error {
	if !ValidBucketName(bucket) {
		return ErrInvalidBucketName.with("The specified bucket is not valid: %q (3 to 63 lowercase letters, digits, dots and hyphens).", bucket)
	}
	if len(key) > maxKeyLength {
		return ErrKeyTooLong
	}
	return nil
}

// reserve counts n more bytes against the bound, or returns ErrFull.
func (s *Store) reserve(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > s.max-s.used {
		return ErrFull.with("The emulator's object store is full: %d bytes more would pass its limit of %d bytes (%d held).", n, s.max, s.used)
	}
	s.used += n
	return nil
}

func (s *Store) release(n int64) {
	s.mu.Lock()
	s.used -= n
	s.mu.Unlock()
}

// CreateBucket makes bucket if it does not exist.
func (s *Store) CreateBucket(bucket string) error {
	if err := checkName(bucket, ""); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets[bucket] == nil {
		s.buckets[bucket] = map[string]*Object{}
	}
	return nil
}

// Put stores data under bucket and key, making the bucket on first use, and
// returns the object. An object being replaced counts against the bound
// until its replacement is stored.
func (s *Store) Put(bucket, key, contentType string, data []byte) (*Object, error) {
	if err := checkName(bucket, key); err != nil {
		return nil, err
	}
	if err := s.reserve(int64(len(data))); err != nil {
		return nil, err
	}
	return s.putReserved(bucket, key, contentType, data), nil
}

// putReserved is Put of data whose bytes are already reserved, with its
// name already checked.
func (s *Store) putReserved(bucket, key, contentType string, data []byte) *Object {
	sum := md5.Sum(data)
	return s.commit(bucket, key, contentType, data, `"`+hex.EncodeToString(sum[:])+`"`)
}

// commit stores an object whose bytes are already reserved.
func (s *Store) commit(bucket, key, contentType string, data []byte, etag string) *Object {
	o := &Object{Key: key, Data: data, ETag: etag, LastModified: s.now().UTC().Truncate(time.Second),
		ContentType: contentType}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[bucket]
	if b == nil {
		b = map[string]*Object{}
		s.buckets[bucket] = b
	}
	if old := b[key]; old != nil {
		s.used -= int64(len(old.Data))
	}
	b[key] = o
	return o
}

// Get returns the object under bucket and key.
func (s *Store) Get(bucket, key string) (*Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[bucket]
	if b == nil {
		return nil, ErrNoSuchBucket
	}
	o := b[key]
	if o == nil {
		return nil, ErrNoSuchKey
	}
	return o, nil
}

// Delete removes the object under bucket and key; a key that is not there
// is no error, as in S3.
func (s *Store) Delete(bucket, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[bucket]
	if b == nil {
		return ErrNoSuchBucket
	}
	if o := b[key]; o != nil {
		s.used -= int64(len(o.Data))
		delete(b, key)
	}
	return nil
}

// List returns up to max objects of bucket whose keys start with prefix and
// sort after after, in key order, and whether more follow.
func (s *Store) List(bucket, prefix, after string, max int) ([]*Object, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[bucket]
	if b == nil {
		return nil, false, ErrNoSuchBucket
	}
	var all []*Object
	for k, o := range b {
		if strings.HasPrefix(k, prefix) && k > after {
			all = append(all, o)
		}
	}
	slices.SortFunc(all, func(a, b *Object) int { return strings.Compare(a.Key, b.Key) })
	if len(all) > max {
		return all[:max], true, nil
	}
	return all, false, nil
}

// CreateUpload starts a multipart upload and returns its id.
func (s *Store) CreateUpload(bucket, key, contentType string) (string, error) {
	if err := checkName(bucket, key); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	id := fmt.Sprintf("%016x%08x", s.now().UnixNano(), s.seq)
	s.uploads[id] = &upload{bucket: bucket, key: key, contentType: contentType, parts: map[int]part{}}
	return id, nil
}

func (s *Store) upload(bucket, key, id string) (*upload, error) {
	u := s.uploads[id]
	if u == nil || u.bucket != bucket || u.key != key {
		return nil, ErrNoSuchUpload
	}
	return u, nil
}

// UploadPart stores part n of upload id and returns its ETag.
func (s *Store) UploadPart(bucket, key, id string, n int, data []byte) (string, error) {
	if err := s.reserve(int64(len(data))); err != nil {
		return "", err
	}
	return s.uploadPartReserved(bucket, key, id, n, data)
}

// uploadPartReserved is UploadPart of data whose bytes are already
// reserved; on error it gives them back.
func (s *Store) uploadPartReserved(bucket, key, id string, n int, data []byte) (string, error) {
	sum := md5.Sum(data)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.upload(bucket, key, id)
	if err == nil && (n < 1 || n > maxPartNumber) {
		err = ErrInvalidArgument.with("Part number must be an integer between 1 and %d, inclusive; got %d.", maxPartNumber, n)
	}
	if err != nil {
		s.used -= int64(len(data))
		return "", err
	}
	if old, ok := u.parts[n]; ok {
		s.used -= int64(len(old.data))
	}
	u.parts[n] = part{data: data, etag: etag}
	return etag, nil
}

// CompletedPart names a part in a CompleteUpload call.
type CompletedPart struct {
	Number int
	ETag   string
}

// CompleteUpload joins the listed parts of upload id, in ascending part
// order, into the object, and returns it.
func (s *Store) CompleteUpload(bucket, key, id string, parts []CompletedPart) (*Object, error) {
	s.mu.Lock()
	u, err := s.upload(bucket, key, id)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if len(parts) == 0 {
		s.mu.Unlock()
		return nil, ErrMalformedXML.with("The XML you provided names no parts.")
	}
	for i := 1; i < len(parts); i++ {
		if parts[i].Number <= parts[i-1].Number {
			s.mu.Unlock()
			return nil, ErrInvalidPartOrder
		}
	}
	var size int
	sums := md5.New()
	for i, p := range parts {
		got, ok := u.parts[p.Number]
		switch {
		case !ok || strings.Trim(p.ETag, `"`) != strings.Trim(got.etag, `"`):
			s.mu.Unlock()
			return nil, ErrInvalidPart.with("Part %d could not be found, or its ETag does not match the part uploaded.", p.Number)
		case i < len(parts)-1 && len(got.data) < minPartSize:
			s.mu.Unlock()
			return nil, ErrEntityTooSmall.with("Part %d has %d bytes; every part but the last needs at least %d.",
				p.Number, len(got.data), minPartSize)
		}
		size += len(got.data)
		raw, _ := hex.DecodeString(strings.Trim(got.etag, `"`))
		sums.Write(raw)
	}
	data := make([]byte, 0, size)
	for _, p := range parts {
		data = append(data, u.parts[p.Number].data...)
	}
	// The parts' bytes become the object's; parts not listed are dropped.
	var dropped int64
	for n, p := range u.parts {
		if !slices.ContainsFunc(parts, func(c CompletedPart) bool { return c.Number == n }) {
			dropped += int64(len(p.data))
		}
	}
	s.used -= dropped
	delete(s.uploads, id)
	s.mu.Unlock()
	etag := `"` + hex.EncodeToString(sums.Sum(nil)) + "-" + strconv.Itoa(len(parts)) + `"`
	return s.commit(bucket, key, u.contentType, data, etag), nil
}

// AbortUpload drops upload id and its parts.
func (s *Store) AbortUpload(bucket, key, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.upload(bucket, key, id)
	if err != nil {
		return err
	}
	for _, p := range u.parts {
		s.used -= int64(len(p.data))
	}
	delete(s.uploads, id)
	return nil
}
