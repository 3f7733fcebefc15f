package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/keel-run/keel/internal/sigv4verify"
)

// s3Client returns the official S3 client pointed at the emulator,
// path-style, its retries off.
func s3Client(rn *Running) *awss3.Client {
	return awss3.New(awss3.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(rn.URL),
		UsePathStyle:     true,
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""),
		RetryMaxAttempts: 1,
		HTTPClient:       testHTTPClient,
	})
}

// s3Code returns the S3 error code of err, or "" if it has none.
func s3Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestS3ObjectsWithSDK(t *testing.T) {
	rn := start(t, Options{})
	c := s3Client(rn)
	ctx := context.Background()

	// A bucket is made on first use.
	body := []byte(`{"recordId":"1"}` + "\n")
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("in-bucket"), Key: aws.String("a/b/in.jsonl"),
		Body: bytes.NewReader(body), ContentType: aws.String("application/jsonl")}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	got, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("in-bucket"), Key: aws.String("a/b/in.jsonl")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	b, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if !bytes.Equal(b, body) || aws.ToString(got.ContentType) != "application/jsonl" {
		t.Errorf("GetObject = %q (%s), want %q (application/jsonl)", b, aws.ToString(got.ContentType), body)
	}
	rng, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("in-bucket"), Key: aws.String("a/b/in.jsonl"), Range: aws.String("bytes=2-9")})
	if err != nil {
		t.Fatalf("GetObject with Range: %v", err)
	}
	b, _ = io.ReadAll(rng.Body)
	rng.Body.Close()
	if string(b) != string(body[2:10]) {
		t.Errorf("GetObject bytes=2-9 = %q, want %q", b, body[2:10])
	}
	head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("in-bucket"), Key: aws.String("a/b/in.jsonl")})
	if err != nil || aws.ToInt64(head.ContentLength) != int64(len(body)) {
		t.Errorf("HeadObject = %v, %v; want length %d", head, err, len(body))
	}

	for _, tc := range []struct {
		name, bucket, key, code string
	}{
		{"missing key", "in-bucket", "nope", "NoSuchKey"},
		{"missing bucket", "no-such-bucket", "k", "NoSuchBucket"},
		{"bad bucket name", "Bad_Bucket", "k", "InvalidBucketName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(tc.bucket), Key: aws.String(tc.key)})
			var nsk *s3types.NoSuchKey
			if s3Code(err) != tc.code {
				t.Fatalf("GetObject error = %v, want code %s", err, tc.code)
			}
			if tc.code == "NoSuchKey" && !errors.As(err, &nsk) {
				t.Errorf("GetObject error %T is not the SDK's *types.NoSuchKey", err)
			}
			_, err = c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(tc.bucket), Key: aws.String(tc.key)})
			if err == nil {
				t.Errorf("HeadObject succeeded, want an error")
			}
		})
	}

	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("in-bucket"), Key: aws.String("a/b/in.jsonl")}); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	if _, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("in-bucket"), Key: aws.String("a/b/in.jsonl")}); s3Code(err) != "NoSuchKey" {
		t.Errorf("GetObject after delete: %v, want NoSuchKey", err)
	}
	if n := rn.Server.Objects().Used(); n != 0 {
		t.Errorf("store holds %d bytes after the delete, want 0", n)
	}
}

func TestS3ListObjectsV2Pages(t *testing.T) {
	rn := start(t, Options{})
	c := s3Client(rn)
	ctx := context.Background()
	var want []string
	for i := range 7 {
		k := fmt.Sprintf("out/job/%02d.jsonl.out", i)
		want = append(want, k)
		if _, err := rn.Server.Objects().Put("list-bucket", k, "", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rn.Server.Objects().Put("list-bucket", "other/x", "", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		max    int32
		prefix string
		want   []string
		pages  int
	}{
		{"pages of 3", 3, "out/", want, 3},
		{"one page", 1000, "out/", want, 1},
		{"no match", 10, "zzz", nil, 1},
		{"all", 0, "", append([]string{"other/x"}, want...), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &awss3.ListObjectsV2Input{Bucket: aws.String("list-bucket"), Prefix: aws.String(tc.prefix)}
			if tc.max > 0 {
				in.MaxKeys = aws.Int32(tc.max)
			}
			p := awss3.NewListObjectsV2Paginator(c, in)
			var got []string
			pages := 0
			for p.HasMorePages() {
				out, err := p.NextPage(ctx)
				if err != nil {
					t.Fatalf("ListObjectsV2: %v", err)
				}
				pages++
				for _, o := range out.Contents {
					got = append(got, aws.ToString(o.Key))
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") || pages != tc.pages {
				t.Errorf("listed %v in %d pages, want %v in %d", got, pages, tc.want, tc.pages)
			}
		})
	}
}

func TestS3MultipartUpload(t *testing.T) {
	rn := start(t, Options{})
	c := s3Client(rn)
	ctx := context.Background()
	bucket, key := aws.String("mp-bucket"), aws.String("big/input.jsonl")
	parts := [][]byte{bytes.Repeat([]byte("a"), 5<<20), []byte("tail")}

	upload := func(t *testing.T) (string, []s3types.CompletedPart) {
		cr, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: bucket, Key: key})
		if err != nil {
			t.Fatalf("CreateMultipartUpload: %v", err)
		}
		var done []s3types.CompletedPart
		for i, p := range parts {
			n := aws.Int32(int32(i + 1))
			out, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: bucket, Key: key, UploadId: cr.UploadId,
				PartNumber: n, Body: bytes.NewReader(p)})
			if err != nil {
				t.Fatalf("UploadPart %d: %v", i+1, err)
			}
			done = append(done, s3types.CompletedPart{PartNumber: n, ETag: out.ETag})
		}
		return aws.ToString(cr.UploadId), done
	}

	t.Run("complete", func(t *testing.T) {
		id, done := upload(t)
		if _, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: bucket, Key: key,
			UploadId: aws.String(id), MultipartUpload: &s3types.CompletedMultipartUpload{Parts: done}}); err != nil {
			t.Fatalf("CompleteMultipartUpload: %v", err)
		}
		o, err := rn.Server.Objects().Get("mp-bucket", "big/input.jsonl")
		if err != nil || !bytes.Equal(o.Data, bytes.Join(parts, nil)) {
			t.Fatalf("object after complete: %v, %d bytes", err, len(o.Data))
		}
		if !strings.HasSuffix(o.ETag, `-2"`) {
			t.Errorf("ETag %s is not a multipart ETag of 2 parts", o.ETag)
		}
	})
	t.Run("parts out of order", func(t *testing.T) {
		id, done := upload(t)
		done[0], done[1] = done[1], done[0]
		_, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: bucket, Key: key,
			UploadId: aws.String(id), MultipartUpload: &s3types.CompletedMultipartUpload{Parts: done}})
		if s3Code(err) != "InvalidPartOrder" {
			t.Errorf("CompleteMultipartUpload = %v, want InvalidPartOrder", err)
		}
		if _, err := c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: bucket, Key: key, UploadId: aws.String(id)}); err != nil {
			t.Errorf("AbortMultipartUpload: %v", err)
		}
	})
	t.Run("abort", func(t *testing.T) {
		before := rn.Server.Objects().Used()
		id, _ := upload(t)
		if _, err := c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: bucket, Key: key, UploadId: aws.String(id)}); err != nil {
			t.Fatalf("AbortMultipartUpload: %v", err)
		}
		if got := rn.Server.Objects().Used(); got != before {
			t.Errorf("store holds %d bytes after abort, want %d as before", got, before)
		}
		_, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: bucket, Key: key, UploadId: aws.String(id),
			PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte("x"))})
		if s3Code(err) != "NoSuchUpload" {
			t.Errorf("UploadPart after abort = %v, want NoSuchUpload", err)
		}
	})
}

func TestS3StoreBound(t *testing.T) {
	rn := start(t, Options{S3MaxBytes: 1000})
	c := s3Client(rn)
	ctx := context.Background()
	put := func(key string, n int) error {
		_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("small"), Key: aws.String(key),
			Body: bytes.NewReader(make([]byte, n))})
		return err
	}
	if err := put("a", 600); err != nil {
		t.Fatalf("PutObject 600 bytes: %v", err)
	}
	err := put("b", 600)
	if s3Code(err) != "InsufficientStorage" || !strings.Contains(err.Error(), "limit of 1000 bytes") {
		t.Errorf("PutObject past the bound = %v, want InsufficientStorage naming the limit", err)
	}
	if err := put("a", 300); err != nil { // replacing an object frees its bytes
		t.Errorf("PutObject replacing a: %v", err)
	}
	if got := rn.Server.Objects().Used(); got != 300 {
		t.Errorf("store holds %d bytes, want 300", got)
	}
}

func TestS3SignatureChecked(t *testing.T) {
	rn := start(t, Options{Verify: func(r *http.Request, body []byte) *Rejection {
		if SigningName(r) != SigningS3 {
			return &Rejection{Code: "InvalidSignatureException", Message: "wrong service"}
		}
		if r.Method == http.MethodPut && len(body) == 0 {
			return &Rejection{Code: "InvalidSignatureException", Message: "no body"}
		}
		return &Rejection{Code: "UnrecognizedClientException", Message: "The security token included in the request is invalid."}
	}})
	_, err := s3Client(rn).PutObject(context.Background(), &awss3.PutObjectInput{Bucket: aws.String("sig-bucket"),
		Key: aws.String("k"), Body: strings.NewReader("abc")})
	if s3Code(err) != "InvalidAccessKeyId" {
		t.Errorf("PutObject with a rejected key = %v, want InvalidAccessKeyId", err)
	}
	if n := rn.Server.Objects().Used(); n != 0 {
		t.Errorf("store holds %d bytes after a rejected put, want 0", n)
	}
}

// TestS3SignedWithSDK checks that the S3 client's signatures pass the
// emulator's SigV4 verifier for service s3, for every operation the
// emulator's S3 serves, and that a wrong secret is refused.
func TestS3SignedWithSDK(t *testing.T) {
	v := sigv4verify.New(sigv4verify.Options{Keys: map[string]string{"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}, Service: SigningS3})
	rn := start(t, Options{Verify: func(r *http.Request, body []byte) *Rejection { return (*Rejection)(v.Verify(r, body)) }})
	c := s3Client(rn)
	ctx := context.Background()
	bucket, key := aws.String("signed-bucket"), aws.String("dir/input.jsonl")
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: bucket, Key: key, Body: strings.NewReader("abc")}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if _, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: bucket, Key: key}); err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	if _, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("dir/")}); err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}
	cr, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: bucket, Key: key})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", err)
	}
	up, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: bucket, Key: key, UploadId: cr.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("x")})
	if err != nil {
		t.Fatalf("UploadPart: %v", err)
	}
	if _, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: bucket, Key: key, UploadId: cr.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{PartNumber: aws.Int32(1), ETag: up.ETag}}}}); err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: bucket, Key: key}); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	bad := awss3.New(awss3.Options{Region: "us-east-1", BaseEndpoint: aws.String(rn.URL), UsePathStyle: true, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wrong", ""), HTTPClient: testHTTPClient})
	_, err = bad.PutObject(ctx, &awss3.PutObjectInput{Bucket: bucket, Key: key, Body: strings.NewReader("abc")})
	if s3Code(err) != "SignatureDoesNotMatch" {
		t.Errorf("PutObject with a wrong secret = %v, want SignatureDoesNotMatch", err)
	}
}

// escapingKeys are object keys whose path segments need percent-encoding:
// S3 signs a path encoded once, unlike the other services (SigV4's
// canonical URI, "except for Amazon S3").
var escapingKeys = []string{
	"with space/a b.jsonl",
	"plus+sign/x+y.jsonl",
	"percent/100%25 and %20 literal.jsonl",
	"unicode/日本語-é.jsonl",
	"eq/k=v&a=b.jsonl",
	"marks/!'()*,;:@$~.jsonl",
}

// TestS3KeysThatNeedEscaping checks that signed put, get, head, list v2,
// multipart upload and delete work for keys that need escaping, and that the
// emulator keeps the key the client meant.
func TestS3KeysThatNeedEscaping(t *testing.T) {
	v := sigv4verify.New(sigv4verify.Options{Keys: map[string]string{"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}, Service: SigningS3})
	rn := start(t, Options{Verify: func(r *http.Request, body []byte) *Rejection { return (*Rejection)(v.Verify(r, body)) }})
	c := s3Client(rn)
	ctx := context.Background()
	bucket := aws.String("escape-bucket")
	for _, k := range escapingKeys {
		t.Run(k, func(t *testing.T) {
			key := aws.String(k)
			body := "body of " + k
			if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: bucket, Key: key, Body: strings.NewReader(body)}); err != nil {
				t.Fatalf("PutObject: %v", err)
			}
			if o, err := rn.Server.Objects().Get("escape-bucket", k); err != nil || string(o.Data) != body {
				t.Fatalf("store under %q: %v, %q; want %q", k, err, o.Data, body)
			}
			got, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: bucket, Key: key})
			if err != nil {
				t.Fatalf("GetObject: %v", err)
			}
			b, _ := io.ReadAll(got.Body)
			got.Body.Close()
			if string(b) != body {
				t.Errorf("GetObject = %q, want %q", b, body)
			}
			if _, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: bucket, Key: key}); err != nil {
				t.Errorf("HeadObject: %v", err)
			}
			// The key itself as the prefix, so the list's query needs escaping too.
			list, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: bucket, Prefix: key})
			if err != nil {
				t.Fatalf("ListObjectsV2: %v", err)
			}
			if len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != k {
				t.Errorf("ListObjectsV2 prefix %q = %d objects (first %q), want just it", k, len(list.Contents), firstKey(list))
			}

			mp := aws.String(k + ".multipart")
			cr, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: bucket, Key: mp})
			if err != nil {
				t.Fatalf("CreateMultipartUpload: %v", err)
			}
			up, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: bucket, Key: mp, UploadId: cr.UploadId,
				PartNumber: aws.Int32(1), Body: strings.NewReader(body)})
			if err != nil {
				t.Fatalf("UploadPart: %v", err)
			}
			if _, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: bucket, Key: mp, UploadId: cr.UploadId,
				MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{PartNumber: aws.Int32(1), ETag: up.ETag}}}}); err != nil {
				t.Fatalf("CompleteMultipartUpload: %v", err)
			}
			if o, err := rn.Server.Objects().Get("escape-bucket", *mp); err != nil || string(o.Data) != body {
				t.Errorf("multipart object under %q: %v", *mp, err)
			}
			for _, d := range []*string{key, mp} {
				if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: bucket, Key: d}); err != nil {
					t.Errorf("DeleteObject %q: %v", *d, err)
				}
			}
		})
	}
}

func firstKey(out *awss3.ListObjectsV2Output) string {
	if len(out.Contents) == 0 {
		return ""
	}
	return aws.ToString(out.Contents[0].Key)
}
