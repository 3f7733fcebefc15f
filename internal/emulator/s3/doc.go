// Package s3 is the emulator's Amazon S3: a bounded in-memory Store of
// buckets and objects, and a Handler that serves the path-style subset of
// the S3 API that batch inference needs (put, get, head, delete, list v2,
// multipart uploads) with S3's XML errors.
//
// It is written here rather than taken from a library (gofakes3 was
// considered): gofakes3 keeps multipart parts outside its storage backend,
// where no bound reaches them, and brings a skip list, a coverage merger and
// their module graph for a few hundred lines of protocol. Buckets are made
// on first use. The emulator sends a request here when its SigV4 credential
// scope names the service s3.
package s3
