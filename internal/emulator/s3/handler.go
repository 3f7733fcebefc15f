package s3

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxListKeys is the largest page ListObjectsV2 returns, as S3 caps max-keys.
const maxListKeys = 1000

// maxCompleteBody bounds a CompleteMultipartUpload request's XML: 10,000
// parts of about 100 bytes each.
const maxCompleteBody = 2 << 20

// Handler serves path-style S3 requests ("/{bucket}/{key}") from a Store:
// PutObject, GetObject, HeadObject, DeleteObject, ListObjectsV2,
// CreateBucket, HeadBucket, and multipart uploads (create, upload part,
// complete, abort). Errors are S3's XML errors. A Handler is safe for
// concurrent use.
type Handler struct {
	// Store holds the objects; it must be set.
	Store *Store
	// Verify, when set, checks a request's signature given its whole body
	// (nil for a body not read yet: GET, HEAD, DELETE); a non-nil Error
	// answers the request.
	Verify func(r *http.Request, body []byte) *Error
}

// Serve answers r; requestID is sent as x-amz-request-id and in errors.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, requestID string) {
	w.Header().Set("X-Amz-Request-Id", requestID)
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	if err := h.serve(w, r, bucket, key, q); err != nil {
		writeError(w, r, err, bucket, key, requestID)
	}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, bucket, key string, q map[string][]string) error {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	_, uploads := q["uploads"]
	uploadID := get("uploadId")
	if bucket == "" {
		return ErrInvalidArgument.with("The emulator's S3 is path-style: the path must name a bucket (/{bucket}/{key}); ListBuckets is not served.")
	}
	if err := checkName(bucket, key); err != nil {
		return err
	}
	var body []byte
	var held int64 // bytes of body reserved in the Store, until it keeps them
	defer func() { h.Store.release(held) }()
	switch r.Method {
	case http.MethodPut, http.MethodPost:
		reserve := key != "" && r.Method == http.MethodPut
		var err error
		if body, err = h.readBody(r, reserve); err != nil {
			return err
		}
		if reserve {
			held = int64(len(body))
		}
	}
	if h.Verify != nil {
		if err := h.Verify(r, body); err != nil {
			return err
		}
	}
	s := h.Store
	switch {
	case key == "" && r.Method == http.MethodPut:
		if err := s.CreateBucket(bucket); err != nil {
			return err
		}
		w.Header().Set("Location", "/"+bucket)
		w.WriteHeader(http.StatusOK)
	case key == "" && r.Method == http.MethodHead:
		if _, _, err := s.List(bucket, "", "", 0); err != nil {
			return err
		}
		w.WriteHeader(http.StatusOK)
	case key == "" && r.Method == http.MethodGet:
		if get("list-type") != "2" {
			return ErrInvalidArgument.with("The emulator's S3 lists objects with ListObjectsV2 (list-type=2) only.")
		}
		return h.list(w, bucket, get)
	case key == "":
		return ErrInvalidArgument.with("The emulator's S3 does not serve %s on a bucket.", r.Method)
	case r.Method == http.MethodPost && uploads:
		id, err := s.CreateUpload(bucket, key, r.Header.Get("Content-Type"))
		if err != nil {
			return err
		}
		writeXML(w, initiateResult{Bucket: bucket, Key: key, UploadID: id})
	case r.Method == http.MethodPut && uploadID != "":
		n, err := strconv.Atoi(get("partNumber"))
		if err != nil {
			return ErrInvalidArgument.with("Part number must be an integer between 1 and %d, inclusive; got %q.", maxPartNumber, get("partNumber"))
		}
		held = 0 // uploadPartReserved keeps or gives back the body's bytes
		etag, err := s.uploadPartReserved(bucket, key, uploadID, n, body)
		if err != nil {
			return err
		}
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodPost && uploadID != "":
		var in completeRequest
		if err := xml.Unmarshal(body, &in); err != nil {
			return ErrMalformedXML
		}
		parts := make([]CompletedPart, len(in.Parts))
		for i, p := range in.Parts {
			parts[i] = CompletedPart{Number: p.PartNumber, ETag: p.ETag}
		}
		o, err := s.CompleteUpload(bucket, key, uploadID, parts)
		if err != nil {
			return err
		}
		writeXML(w, completeResult{Location: "/" + bucket + "/" + key, Bucket: bucket, Key: key, ETag: o.ETag})
	case r.Method == http.MethodDelete && uploadID != "":
		if err := s.AbortUpload(bucket, key, uploadID); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut:
		if r.Header.Get("X-Amz-Copy-Source") != "" {
			return ErrInvalidArgument.with("The emulator's S3 does not serve CopyObject.")
		}
		if err := checkName(bucket, key); err != nil {
			return err
		}
		held = 0
		o := s.putReserved(bucket, key, r.Header.Get("Content-Type"), body)
		w.Header().Set("ETag", o.ETag)
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		o, err := s.Get(bucket, key)
		if err != nil {
			return err
		}
		hd := w.Header()
		hd.Set("ETag", o.ETag)
		hd.Set("Content-Type", cmpOr(o.ContentType, "binary/octet-stream"))
		// ServeContent answers Range, If-Match and friends, and HEAD.
		http.ServeContent(w, r, "", o.LastModified, bytes.NewReader(o.Data))
	case r.Method == http.MethodDelete:
		if err := s.Delete(bucket, key); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		return ErrInvalidArgument.with("The emulator's S3 does not serve %s on an object.", r.Method)
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// readBody reads a request body. An object or part body (reserve) must
// declare its length, which is reserved in the Store before it is read; a
// streaming (aws-chunked) body is refused, as the SDKs send one only over
// TLS.
func (h *Handler) readBody(r *http.Request, reserve bool) ([]byte, error) {
	if strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") ||
		strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
		return nil, &Error{"NotImplemented", http.StatusNotImplemented,
			"The emulator's S3 does not accept aws-chunked (streaming) bodies; send the object with its Content-Length."}
	}
	n := r.ContentLength
	if n < 0 {
		return nil, &Error{"MissingContentLength", http.StatusLengthRequired, "You must provide the Content-Length HTTP header."}
	}
	if !reserve {
		if n > maxCompleteBody {
			return nil, ErrMalformedXML.with("The request body has %d bytes, over the emulator's limit of %d.", n, maxCompleteBody)
		}
	} else if err := h.Store.reserve(n); err != nil {
		return nil, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		if reserve {
			h.Store.release(n)
		}
		return nil, &Error{"IncompleteBody", http.StatusBadRequest, "You did not provide the number of bytes specified by the Content-Length HTTP header."}
	}
	return body, nil
}

func (h *Handler) list(w http.ResponseWriter, bucket string, get func(string) string) error {
	if get("delimiter") != "" {
		return &Error{"NotImplemented", http.StatusNotImplemented, "The emulator's ListObjectsV2 does not group keys by delimiter."}
	}
	max := maxListKeys
	if v := get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return ErrInvalidArgument.with("Provided max-keys not an integer or within integer range: %q.", v)
		}
		max = min(n, maxListKeys)
	}
	token := get("continuation-token")
	after := get("start-after")
	if token != "" {
		k, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			return ErrInvalidArgument.with("The continuation token provided is incorrect.")
		}
		after = string(k)
	}
	prefix := get("prefix")
	objs, more, err := h.Store.List(bucket, prefix, after, max)
	if err != nil {
		return err
	}
	res := listResult{Name: bucket, Prefix: prefix, KeyCount: len(objs), MaxKeys: max, IsTruncated: more,
		ContinuationToken: token, StartAfter: get("start-after")}
	for _, o := range objs {
		res.Contents = append(res.Contents, listEntry{Key: o.Key, LastModified: o.LastModified.Format(time.RFC3339),
			ETag: o.ETag, Size: len(o.Data), StorageClass: "STANDARD"})
	}
	if more {
		res.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(objs[len(objs)-1].Key))
	}
	writeXML(w, res)
	return nil
}

const xmlns = "http://s3.amazonaws.com/doc/2006-03-01/"

type initiateResult struct {
	XMLName  xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ InitiateMultipartUploadResult"`
	Bucket   string
	Key      string
	UploadID string `xml:"UploadId"`
}

type completeRequest struct {
	Parts []struct {
		PartNumber int
		ETag       string
	} `xml:"Part"`
}

type completeResult struct {
	XMLName  xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ CompleteMultipartUploadResult"`
	Location string
	Bucket   string
	Key      string
	ETag     string
}

type listResult struct {
	XMLName               xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListBucketResult"`
	Name                  string
	Prefix                string
	KeyCount              int
	MaxKeys               int
	IsTruncated           bool
	ContinuationToken     string `xml:",omitempty"`
	NextContinuationToken string `xml:",omitempty"`
	StartAfter            string `xml:",omitempty"`
	Contents              []listEntry
}

type listEntry struct {
	Key          string
	LastModified string
	ETag         string
	Size         int
	StorageClass string
}

type errorBody struct {
	XMLName    xml.Name `xml:"Error"`
	Code       string
	Message    string
	BucketName string `xml:",omitempty"`
	Key        string `xml:",omitempty"`
	RequestID  string `xml:"RequestId"`
}

func writeXML(w http.ResponseWriter, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		panic("s3: marshal " + err.Error()) // the response types always marshal
	}
	b = append([]byte(xml.Header), b...)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// writeError answers with err as S3 does: an XML Error body (none for
// HEAD) with its status. An error that is not an *Error is an
// InternalError.
func writeError(w http.ResponseWriter, r *http.Request, err error, bucket, key, requestID string) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{"InternalError", http.StatusInternalServerError, err.Error()}
	}
	b, _ := xml.Marshal(errorBody{Code: e.Code, Message: e.Message, BucketName: bucket, Key: key, RequestID: requestID})
	b = append([]byte(xml.Header), b...)
	w.Header().Set("Content-Type", "application/xml")
	if r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.Status)
	w.Write(b)
}
