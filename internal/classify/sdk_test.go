package classify_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	smithy "github.com/aws/smithy-go"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
)

const testRequestID = "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"

// fakeBedrock answers as Bedrock Runtime would for the failure named in the
// model id: /model/<mode>.<Code>/<operation>.
//
//	http.<Code>    error response with X-Amzn-ErrorType (with its coral suffix)
//	body.<Code>    error response naming the code only in the body's __type
//	stream.<Code>  200 event stream: one event, then an exception frame
//	corrupt.x      200 event stream whose second frame fails its checksum
//	truncate.x     200 event stream cut in the middle of its second frame
//	retry-after.<Code> like http.<Code>, with Retry-After: 7
type fakeBedrock struct {
	hits atomic.Int64
}

func (f *fakeBedrock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	parts := strings.Split(r.URL.Path, "/") // "", "model", id, op
	if len(parts) != 4 {
		http.Error(w, "bad path", http.StatusNotFound)
		return
	}
	mode, code, _ := strings.Cut(parts[2], ".")
	op := parts[3]
	switch mode {
	case "http", "body", "retry-after":
		e := catalog.Must(code)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-RequestId", testRequestID)
		body := map[string]string{"message": e.DefaultMessage}
		if mode == "body" {
			body["__type"] = "com.amazonaws.bedrock#" + e.WireCode()
		} else {
			w.Header().Set("X-Amzn-ErrorType", e.WireCode()+":http://internal.amazon.com/coral/com.amazon.bedrock/")
		}
		if mode == "retry-after" {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(e.Status)
		json.NewEncoder(w).Encode(body)
	case "stream", "corrupt", "truncate":
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		w.Header().Set("X-Amzn-RequestId", testRequestID)
		w.WriteHeader(http.StatusOK)
		w.Write(eventFrame(op))
		switch mode {
		case "stream":
			w.Write(exceptionFrame(catalog.Must(code)))
		case "corrupt":
			f := eventFrame(op)
			f[len(f)-6] ^= 0xff // a payload byte: the message CRC no longer matches
			w.Write(f)
		case "truncate":
			f := eventFrame(op)
			w.Write(f[:len(f)/2])
		}
	default:
		http.Error(w, "unknown mode "+mode, http.StatusNotFound)
	}
}

// eventFrame is a harmless first event for the operation's stream.
func eventFrame(op string) []byte {
	var m eventstream.Message
	m.Headers.Set(":message-type", eventstream.StringValue("event"))
	m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	if op == "converse-stream" {
		m.Headers.Set(":event-type", eventstream.StringValue("messageStart"))
		m.Payload = []byte(`{"role":"assistant"}`)
	} else {
		m.Headers.Set(":event-type", eventstream.StringValue("chunk"))
		m.Payload = []byte(`{"bytes":"eyJ0eXBlIjoibWVzc2FnZV9zdGFydCJ9"}`)
	}
	return encode(m)
}

// exceptionFrame is the frame Bedrock sends for e inside a stream.
func exceptionFrame(e *catalog.Entry) []byte {
	var m eventstream.Message
	m.Headers.Set(":message-type", eventstream.StringValue("exception"))
	m.Headers.Set(":exception-type", eventstream.StringValue(e.StreamName()))
	m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	m.Payload, _ = json.Marshal(map[string]string{"message": e.DefaultMessage})
	return encode(m)
}

func encode(m eventstream.Message) []byte {
	var b bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&b, m); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// newClient returns the official client pointed at url, its own retries off
// unless opts say otherwise.
func newClient(url string, opts ...func(*bedrockruntime.Options)) *bedrockruntime.Client {
	o := bedrockruntime.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "SECRET", ""),
		Retryer:      aws.NopRetryer{},
	}
	for _, fn := range opts {
		fn(&o)
	}
	return bedrockruntime.New(o)
}

// wireEntries are the entries that arrive as an HTTP error response.
func wireEntries() []*catalog.Entry {
	var es []*catalog.Entry
	for _, e := range catalog.All() {
		if e.WireCode() != "" && e.Status >= 400 {
			es = append(es, e)
		}
	}
	return es
}

// TestSDKErrors classifies the errors the official bedrock-runtime client
// returns for every catalog entry that arrives as an HTTP error, with the
// code in the X-Amzn-ErrorType header and with it only in the body.
func TestSDKErrors(t *testing.T) {
	srv := httptest.NewServer(&fakeBedrock{})
	defer srv.Close()
	client := newClient(srv.URL)

	for _, e := range wireEntries() {
		for _, mode := range []string{"http", "body"} {
			t.Run(e.Code+"/"+mode, func(t *testing.T) {
				_, err := client.Converse(context.Background(), &bedrockruntime.ConverseInput{
					ModelId: aws.String(mode + "." + e.Code),
				})
				if err == nil {
					t.Fatal("Converse succeeded")
				}
				var opErr *smithy.OperationError
				if !errors.As(err, &opErr) {
					t.Fatalf("SDK error %T is not an OperationError", err)
				}
				r := classify.FromError(err)
				if r.Entry != e {
					t.Fatalf("FromError(%v) = %s, want %s", err, name(r.Entry), e.Code)
				}
				if r.Status != e.Status {
					t.Errorf("Status = %d, want %d", r.Status, e.Status)
				}
				if r.Code != e.WireCode() {
					t.Errorf("Code = %q, want %q", r.Code, e.WireCode())
				}
				if r.Message != e.DefaultMessage {
					t.Errorf("Message = %q, want %q", r.Message, e.DefaultMessage)
				}
				if r.RequestID != testRequestID {
					t.Errorf("RequestID = %q", r.RequestID)
				}
				// Modeled exceptions come back typed, not as a generic API error.
				if base, _ := catalog.Lookup(e.WireCode()); base.Source == "bedrock-runtime" {
					var generic *smithy.GenericAPIError
					if errors.As(err, &generic) {
						t.Errorf("%s came back as a GenericAPIError", e.WireCode())
					}
				}
			})
		}
	}
}

func TestSDKTypedException(t *testing.T) {
	srv := httptest.NewServer(&fakeBedrock{})
	defer srv.Close()
	_, err := newClient(srv.URL).Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId: aws.String("retry-after." + catalog.CodeThrottling),
	})
	var te *types.ThrottlingException
	if !errors.As(err, &te) {
		t.Fatalf("error %T is not a *types.ThrottlingException", err)
	}
	r := classify.FromError(err)
	if r.Entry.Code != catalog.CodeThrottling || r.RetryAfter != 7*time.Second {
		t.Errorf("FromError = %s RetryAfter %v, want ThrottlingException 7s", name(r.Entry), r.RetryAfter)
	}
	// The typed exception alone, as a stream reader returns it, still has
	// its true status.
	if r := classify.FromError(te); r.Status != 429 || r.RequestID != "" {
		t.Errorf("bare exception: Status %d RequestID %q", r.Status, r.RequestID)
	}
}

// TestSDKStreamExceptions sends every streamable exception inside a 200
// event stream and checks the error the client's stream reader returns
// keeps the exception's true status.
func TestSDKStreamExceptions(t *testing.T) {
	srv := httptest.NewServer(&fakeBedrock{})
	defer srv.Close()
	client := newClient(srv.URL)

	for _, e := range catalog.All() {
		if !e.Streamable {
			continue
		}
		t.Run(e.Code+"/invoke-with-response-stream", func(t *testing.T) {
			out, err := client.InvokeModelWithResponseStream(context.Background(), &bedrockruntime.InvokeModelWithResponseStreamInput{
				ModelId: aws.String("stream." + e.Code), Body: []byte(`{}`),
			})
			if err != nil {
				t.Fatalf("InvokeModelWithResponseStream: %v", err)
			}
			checkStreamErr(t, e, drain(out.GetStream().Events()), out.GetStream().Err(), out.GetStream().Close)
		})
		if e.Code == catalog.CodeModelTimeout {
			continue // not a member of ConverseStreamOutput
		}
		t.Run(e.Code+"/converse-stream", func(t *testing.T) {
			out, err := client.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{
				ModelId: aws.String("stream." + e.Code),
			})
			if err != nil {
				t.Fatalf("ConverseStream: %v", err)
			}
			checkStreamErr(t, e, drain(out.GetStream().Events()), out.GetStream().Err(), out.GetStream().Close)
		})
	}
}

func drain[T any](ch <-chan T) int {
	n := 0
	for range ch {
		n++
	}
	return n
}

func checkStreamErr(t *testing.T, e *catalog.Entry, events int, err error, closeFn func() error) {
	t.Helper()
	defer closeFn()
	if events != 1 {
		t.Errorf("read %d events before the exception, want 1", events)
	}
	if err == nil {
		t.Fatal("stream ended without an error")
	}
	r := classify.FromError(err)
	if r.Entry != e {
		t.Fatalf("FromError(%v) = %s, want %s", err, name(r.Entry), e.Code)
	}
	if r.Status != e.Status || r.Status == 400 && e.Code != catalog.CodeValidation {
		t.Errorf("Status = %d, want the true status %d", r.Status, e.Status)
	}
	if r.Message != e.DefaultMessage {
		t.Errorf("Message = %q", r.Message)
	}
}

// TestSDKStreamDamage: a corrupt frame surfaces as StreamCorrupt. A frame
// cut short is not reported by the SDK at all (it treats an unexpected EOF
// as the end of the stream), which is why keel inspects frames itself; the
// test pins that behaviour so the catalog's note stays true.
func TestSDKStreamDamage(t *testing.T) {
	srv := httptest.NewServer(&fakeBedrock{})
	defer srv.Close()
	client := newClient(srv.URL)

	out, err := client.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String("corrupt.x")})
	if err != nil {
		t.Fatal(err)
	}
	drain(out.GetStream().Events())
	serr := out.GetStream().Err()
	out.GetStream().Close()
	if r := classify.FromError(serr); r.Entry == nil || r.Entry.Code != catalog.CodeStreamCorrupt {
		t.Errorf("corrupt frame: FromError(%v) = %s, want StreamCorrupt", serr, name(r.Entry))
	}

	out, err = client.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String("truncate.x")})
	if err != nil {
		t.Fatal(err)
	}
	n := drain(out.GetStream().Events())
	serr = out.GetStream().Err()
	out.GetStream().Close()
	if n != 1 || serr != nil {
		t.Errorf("truncated stream: SDK gave %d events and error %v; the catalog says it reports no error", n, serr)
	}
}

// TestSDKDoesNotRetryModelNotReady pins the fact the catalog corrects: the
// SDK's standard retryer gives up on ModelNotReadyException at once, while
// it retries throttling and 503s.
func TestSDKDoesNotRetryModelNotReady(t *testing.T) {
	tests := []struct {
		name string
		code string
		hits int64
	}{
		{name: "model not ready is not retried", code: catalog.CodeModelNotReady, hits: 1},
		{name: "throttling is retried", code: catalog.CodeThrottling, hits: 3},
		{name: "service unavailable is retried", code: catalog.CodeServiceUnavailable, hits: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := &fakeBedrock{}
			srv := httptest.NewServer(fb)
			defer srv.Close()
			client := newClient(srv.URL, func(o *bedrockruntime.Options) {
				o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
					so.MaxAttempts = 3
					so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
					so.RateLimiter = ratelimit.None
				})
			})
			_, err := client.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String("http." + tt.code)})
			if err == nil {
				t.Fatal("Converse succeeded")
			}
			if got := fb.hits.Load(); got != tt.hits {
				t.Errorf("SDK sent %d attempts, want %d", got, tt.hits)
			}
			if r := classify.FromError(err); r.Entry.Code != tt.code || !r.Entry.Retryable() {
				t.Errorf("FromError = %s retryable=%v; keel retries it", name(r.Entry), r.Entry.Retryable())
			}
		})
	}
}

// TestGoErrors classifies real network, TLS and context failures, both as
// net/http returns them and wrapped by the SDK.
func TestGoErrors(t *testing.T) {
	refused := refusedURL(t)
	reset := resetServer(t)
	hang := hangServer(t)
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the rejected handshakes are the point
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	okSrv := httptest.NewServer(&fakeBedrock{})
	defer okSrv.Close()

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()

	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{name: "refused via net/http", err: func() error { return post(http.DefaultClient, refused) }, want: catalog.CodeConnectionRefused},
		{name: "refused via SDK", err: func() error { return converse(context.Background(), newClient(refused)) }, want: catalog.CodeConnectionRefused},
		{name: "reset via net/http", err: func() error { return post(http.DefaultClient, reset) }, want: catalog.CodeConnectionReset},
		{name: "reset via SDK", err: func() error { return converse(context.Background(), newClient(reset)) }, want: catalog.CodeConnectionReset},
		{name: "client timeout via net/http", err: func() error {
			return post(&http.Client{Timeout: 30 * time.Millisecond}, hang)
		}, want: catalog.CodeClientTimeout},
		{name: "client timeout via SDK", err: func() error {
			return converse(context.Background(), newClient(hang, func(o *bedrockruntime.Options) {
				o.HTTPClient = &http.Client{Timeout: 30 * time.Millisecond}
			}))
		}, want: catalog.CodeClientTimeout},
		{name: "tls via net/http", err: func() error { return post(http.DefaultClient, tlsSrv.URL) }, want: catalog.CodeTLSFailure},
		{name: "tls via SDK", err: func() error { return converse(context.Background(), newClient(tlsSrv.URL)) }, want: catalog.CodeTLSFailure},
		{name: "canceled via SDK", err: func() error { return converse(canceled, newClient(okSrv.URL)) }, want: catalog.CodeContextCanceled},
		{name: "deadline via SDK", err: func() error { return converse(expired, newClient(okSrv.URL)) }, want: catalog.CodeDeadlineExceeded},
		{name: "invalid params via SDK", err: func() error {
			_, err := newClient(okSrv.URL).Converse(context.Background(), &bedrockruntime.ConverseInput{})
			return err
		}, want: catalog.CodeInvalidParameters},
		{name: "credentials via SDK", err: func() error {
			return converse(context.Background(), newClient(okSrv.URL, func(o *bedrockruntime.Options) {
				o.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
					return aws.Credentials{}, errors.New("no EC2 IMDS role found")
				})
			}))
		}, want: catalog.CodeCredentialsUnavailable},
		{name: "missing region via SDK", err: func() error {
			return converse(context.Background(), newClient(okSrv.URL, func(o *bedrockruntime.Options) {
				o.Region, o.BaseEndpoint = "", nil
			}))
		}, want: catalog.CodeMissingRegion},
		{name: "truncated frame", err: func() error {
			f := exceptionFrame(catalog.Must(catalog.CodeThrottling))
			_, err := eventstream.NewDecoder().Decode(bytes.NewReader(f[:len(f)-3]), nil)
			return fmt.Errorf("read stream: %w", err)
		}, want: catalog.CodeStreamTruncated},
		{name: "corrupt frame", err: func() error {
			f := exceptionFrame(catalog.Must(catalog.CodeThrottling))
			f[len(f)-5] ^= 1
			_, err := eventstream.NewDecoder().Decode(bytes.NewReader(f), nil)
			return fmt.Errorf("read stream: %w", err)
		}, want: catalog.CodeStreamCorrupt},
		{name: "dns not found", err: func() error {
			return &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "bedrock-runtime.us-fake-1.amazonaws.com", IsNotFound: true}}
		}, want: catalog.CodeDNSNotFound},
		{name: "dns temporary", err: func() error {
			return &net.DNSError{Err: "server misbehaving", Name: "bedrock-runtime.us-east-1.amazonaws.com", IsTemporary: true}
		}, want: catalog.CodeDNSFailure},
		{name: "keel's own error type", err: func() error {
			return fmt.Errorf("engine: %w", ownErr{catalog.Must(catalog.CodeStreamStalled)})
		}, want: catalog.CodeStreamStalled},
		{name: "unknown", err: func() error { return errors.New("something else") }, want: catalog.CodeUnclassified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err()
			if err == nil {
				t.Fatal("no error")
			}
			r := classify.FromError(err)
			if r.Entry == nil || r.Entry.Code != tt.want {
				t.Fatalf("FromError(%v) = %s, want %s", err, name(r.Entry), tt.want)
			}
			if r.Message == "" {
				t.Errorf("Message empty")
			}
			if r.Status != r.Entry.Status {
				t.Errorf("Status = %d, entry's %d", r.Status, r.Entry.Status)
			}
		})
	}
	if r := classify.FromError(nil); r.Entry != nil || r != (classify.Result{}) {
		t.Errorf("FromError(nil) = %+v", r)
	}
}

type ownErr struct{ e *catalog.Entry }

func (o ownErr) Error() string                { return "stalled" }
func (o ownErr) CatalogEntry() *catalog.Entry { return o.e }

func converse(ctx context.Context, c *bedrockruntime.Client) error {
	_, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String("http." + catalog.CodeThrottling)})
	return err
}

func post(c *http.Client, url string) error {
	resp, err := c.Post(url+"/model/m/converse", "application/json", strings.NewReader(`{}`))
	if err == nil {
		resp.Body.Close()
		return fmt.Errorf("unexpected response %s", resp.Status)
	}
	return err
}

// refusedURL returns the URL of a 127.0.0.1 port nothing listens on.
func refusedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// resetServer returns the URL of a server that reads the request and
// answers with a TCP reset.
func resetServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				br := bufio.NewReader(c)
				if req, err := http.ReadRequest(br); err == nil {
					req.Body.Close()
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}(c)
		}
	}()
	return "http://" + ln.Addr().String()
}

// hangServer returns the URL of a server that never answers until the test ends.
func hangServer(t *testing.T) string {
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv.URL
}

func name(e *catalog.Entry) string {
	if e == nil {
		return "<nil>"
	}
	return e.Code
}
