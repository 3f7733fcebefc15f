package emulator

import (
	"net/http"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/s3"
)

// Objects returns the store behind the emulator's S3: what clients put
// there, and batch jobs' output. Tests may read and write it directly.
func (s *Server) Objects() *s3.Store { return s.objects }

// serveS3 answers a request signed for S3 (path-style, /{bucket}/{key}).
func (x *exchange) serveS3() {
	x.s.s3.Serve(x.w, x.r, x.id)
}

// verifyS3 applies Options.Verify to an S3 request, answering a rejection
// with the S3 error AWS sends for it.
func (s *Server) verifyS3(r *http.Request, body []byte) *s3.Error {
	rej := s.opts.Verify(r, body)
	if rej == nil {
		return nil
	}
	e := lookupError(rej.Code, rej.Message)
	code := "AccessDenied"
	switch rej.Code {
	case catalog.CodeInvalidSignature:
		code = "SignatureDoesNotMatch"
	case catalog.CodeUnrecognizedClient:
		code = "InvalidAccessKeyId"
	case catalog.CodeRequestExpired:
		code = "RequestTimeTooSkewed"
	}
	return &s3.Error{Code: code, Status: http.StatusForbidden, Message: e.message}
}
