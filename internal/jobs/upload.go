package jobs

import (
	"bytes"
	"context"
	"errors"
	"iter"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const (
	// multipartThreshold: a file larger than this is uploaded in parts, as
	// S3's guide advises from 100 MB: a part the network lost is sent again
	// alone, not the whole file (Bedrock takes files up to 1 GB by default).
	multipartThreshold = 100 << 20
	// multipartPartSize: 64 MiB parts put a 1 GB file in 16, far from S3's
	// 10,000 parts and above its 5 MiB minimum for all parts but the last.
	multipartPartSize = 64 << 20
	// jsonlType is the Content-Type of an uploaded input file.
	jsonlType = "application/jsonl"
)

// put uploads the lines, size bytes in all, as the object key: one
// PutObject, or a multipart upload when they are longer than
// multipartThreshold, which holds one part in memory at a time. Either
// way the object appears whole or not at all; a multipart upload that
// fails is aborted (a kill leaves it incomplete: a bucket lifecycle rule
// AbortIncompleteMultipartUpload clears those).
func (r *Runner) put(ctx context.Context, key string, size int64, lines iter.Seq2[[]byte, error]) error {
	threshold, partSize := int64(multipartThreshold), int64(multipartPartSize)
	if r.o.partSize > 0 {
		threshold, partSize = r.o.partSize, r.o.partSize
	}
	if size <= threshold {
		body := make([]byte, 0, size)
		for l, err := range lines {
			if err != nil {
				return err
			}
			body = append(body, l...)
		}
		_, err := r.o.S3Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(r.loc.Bucket), Key: aws.String(key),
			Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String(jsonlType)})
		return err
	}
	up, err := r.o.S3Client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(r.loc.Bucket), Key: aws.String(key),
		ContentType: aws.String(jsonlType), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})
	if err != nil {
		return err
	}
	parts, err := r.putParts(ctx, key, up.UploadId, lines, partSize)
	if err == nil {
		_, err = r.o.S3Client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(r.loc.Bucket), Key: aws.String(key),
			UploadId: up.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}})
	}
	if err != nil {
		// Best effort, even when ctx is done: the parts are billed until aborted.
		_, aerr := r.o.S3Client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: aws.String(r.loc.Bucket), Key: aws.String(key), UploadId: up.UploadId})
		return errors.Join(err, aerr)
	}
	return nil
}

// putParts uploads the lines, cut into parts of partSize bytes (the last
// shorter; a line may span two parts), and returns them for the completion.
func (r *Runner) putParts(ctx context.Context, key string, uploadID *string, lines iter.Seq2[[]byte, error], partSize int64) ([]s3types.CompletedPart, error) {
	var parts []s3types.CompletedPart
	send := func(b []byte) error {
		n := int32(len(parts) + 1)
		out, err := r.o.S3Client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(r.loc.Bucket), Key: aws.String(key), UploadId: uploadID,
			PartNumber: aws.Int32(n), Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})
		if err != nil {
			return err
		}
		parts = append(parts, s3types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
		return nil
	}
	buf := make([]byte, 0, partSize)
	for l, err := range lines {
		if err != nil {
			return nil, err
		}
		for len(l) > 0 {
			k := min(len(l), int(partSize)-len(buf))
			buf, l = append(buf, l[:k]...), l[k:]
			if int64(len(buf)) == partSize {
				if err := send(buf); err != nil {
					return nil, err
				}
				buf = buf[:0]
			}
		}
	}
	if len(buf) > 0 {
		if err := send(buf); err != nil {
			return nil, err
		}
	}
	return parts, nil
}
