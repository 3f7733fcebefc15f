package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/engine"
)

// Defaults of the Options fields whose zero value means "the default".
const (
	// DefaultTimeout is a call's deadline when its caller sends none: the
	// CLI's own default (keel converse --timeout), long enough for a long
	// generation with retries, short enough that a stuck call ends.
	DefaultTimeout = 5 * time.Minute
	// DefaultBodyLimit is the largest request body served. Bedrock has been
	// seen to serve a 25.6 MB request and refuse a 34 MB one ("Input is too
	// long."); 32 MiB lies between, as in the emulator.
	DefaultBodyLimit = 32 << 20
	// defaultBodiesInFlight is how many bodies of BodyLimit may be read at
	// once when BodyBytesInFlight is not set: 128 MiB at the default limit,
	// while SDKs' bodies are mostly kilobytes, so only very large bodies
	// (or strangers') ever wait their turn.
	defaultBodiesInFlight = 4
	// DefaultWriteTimeout bounds each write of a stream to the caller, and
	// the writing of a whole non-streaming answer: a client that reads
	// nothing for this long is cut, so it cannot hold the upstream call,
	// its quota or the reply's buffer. An SDK reads frames as they come; 30 s
	// without taking one byte is a stuck reader, not a slow one.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultReadHeaderTimeout bounds the wait for a request's headers. An
	// SDK sends its headers in one write; 10 s allows a slow link.
	DefaultReadHeaderTimeout = 10 * time.Second
)

// Options configure a Server. Engine is required; the zero value of every
// other field means the default it names.
type Options struct {
	// Engine runs the calls (keelx.Engine of a *keel.Keel, or engine.New).
	// Its endpoints and credentials are the gateway's upstream.
	Engine *engine.Engine
	// UpstreamBearer, when set, is a Bedrock API key sent upstream as
	// "Authorization: Bearer ..." on every attempt. It is used only when the
	// engine has no credentials of its own (an engine with credentials signs
	// with SigV4). Empty: none.
	UpstreamBearer string
	// Timeout is a call's deadline when its caller sends none (see
	// docs/gateway.md, Deadlines). Zero: DefaultTimeout.
	Timeout time.Duration
	// BodyLimit is the largest request body served; a larger one gets 400
	// ValidationException. Zero: DefaultBodyLimit.
	BodyLimit int64
	// BodyBytesInFlight bounds the bytes of request bodies being read at
	// once, each held from before its body is read until its caller is
	// authenticated: a request that does not fit is refused with 503
	// ServiceUnavailableException (which the SDKs retry), so that strangers
	// who know an access key ID cannot make the gateway hold many bodies.
	// Less than BodyLimit+1 is raised to it. Zero: 4 × BodyLimit.
	BodyBytesInFlight int64
	// WriteTimeout bounds each write of a stream to its caller, and the
	// writing of a whole non-streaming answer. Zero: DefaultWriteTimeout.
	WriteTimeout time.Duration
	// ReadHeaderTimeout bounds how long a connection may take to send a
	// request's headers (Serve); a slowloris client that trickles them is
	// dropped. Zero: DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// ProbeEvery is how often ProbeUpstream tries an upstream that has not
	// answered. Zero: DefaultProbeEvery.
	ProbeEvery time.Duration
	// Logger receives the access log: one line per request with the
	// caller, operation, model, status, code, attempts and duration, never
	// the body or a secret. Nil: no access log.
	Logger *slog.Logger
	// DLQ, when set, parks calls that failed for good, their Source set to
	// "gateway/" and the caller's name (its own Source is replaced): not
	// one whose caller went away, nor one its caller's SDK will send again
	// (a 429 or 5xx answer to attempt N < M of its Amz-Sdk-Request
	// header). Nil: none.
	DLQ *dlq.Recorder

	// CheckHeaders, when set, looks at a request's headers before its body
	// is read, so that a stranger is refused without the gateway reading
	// up to BodyLimit bytes. An error refuses the request as Authenticate's
	// do. Nil: no such check.
	CheckHeaders func(r *http.Request) error
	// InsecureOpen lets a gateway without Authenticate answer requests for
	// any Host name. False: an open gateway answers only requests whose
	// Host is a loopback name (localhost, 127.0.0.1, ::1, any port), so
	// that a web page cannot reach it through DNS rebinding.
	InsecureOpen bool
	// Authenticate identifies the caller of a request for model (the id as
	// the path names it, unescaped) from its headers and body (read whole,
	// bounded by BodyLimit), and checks that the caller may use the model.
	// An error refuses the request: a *Refusal is answered as it says, any
	// other error as 500 InternalServerException. Nil: the gateway is open
	// and every caller is the zero Caller (Interactive, no name).
	Authenticate func(r *http.Request, model string, body []byte) (Caller, error)
	// Limit holds tokens of caller's budget for model before the call is
	// sent: what the quota governor holds, the request's input estimate
	// plus its max tokens, or the model's largest output when it sets
	// none. The call then runs and release gets what it used as the
	// governor settles it: input + cache-write input + output × the
	// model's burndown (0 when it used nothing). An
	// error refuses the request: a *Refusal as it says, any other error as
	// 429 ThrottlingException. Nil: no per-caller budgets.
	// It may wait for the budget, up to ctx's end: ctx is the call's own,
	// with its deadline, and is cancelled when a shutdown cuts the calls
	// still running (the request is then answered 503, shutting down).
	Limit func(ctx context.Context, caller, model string, tokens int) (release func(used int), err error)
	// Observe is called once per request served on /model/, when its
	// response has been written (a stream's at its end). Nil: not called.
	Observe func(Event)
	// Status serves the status page at / (and every path not named
	// otherwise). Nil: a plain-text page saying none is configured.
	Status http.Handler
	// Metrics serves /metrics (Prometheus: the engine's registry). Nil:
	// /metrics answers 404.
	Metrics http.Handler
}

// Caller is who sent a request, as Authenticate says.
type Caller struct {
	// Name is the caller's name in logs, metrics and the status page.
	Name string
	// Priority is the caller's class in the quota governor's queues.
	Priority engine.Priority
}

// Event is what Observe gets for one request.
type Event struct {
	Caller    string
	Op        string // converse, converse-stream, ...; empty for a path naming none
	Model     string
	Status    int    // the HTTP status sent (200 for a stream that failed after it began)
	Code      string // catalog code of the failure; empty on success
	Attempts  int    // attempts sent upstream
	Duration  time.Duration
	Input     int  // input tokens, as the reply reported them (0: unknown)
	Output    int  // output tokens, as the reply reported them
	Refused   bool // the gateway or keel refused the call (auth, budget, quota, breaker) rather than the upstream
	Streaming bool
}

// Server is a Bedrock Runtime gateway. It is an http.Handler, safe for
// concurrent use. Most callers want Serve and Shutdown.
type Server struct {
	opts Options
	mux  *http.ServeMux
	// ready is set once the upstream has answered a call, or by SetReady.
	ready atomic.Bool
	// cut is cancelled when a drain runs out: every call still running is
	// cut with a typed error.
	cut     context.Context
	cutCall context.CancelFunc

	inflight tracker
	bodies   byteBudget // bytes of request bodies being read

	mu       sync.Mutex
	servers  []*http.Server
	stopping bool // Shutdown or Close has begun
}

// New validates opts and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Engine == nil {
		return nil, errors.New("gateway: Options.Engine is required")
	}
	if opts.Timeout < 0 || opts.BodyLimit < 0 || opts.BodyBytesInFlight < 0 || opts.WriteTimeout < 0 || opts.ReadHeaderTimeout < 0 || opts.ProbeEvery < 0 {
		return nil, fmt.Errorf("gateway: Timeout (%v), BodyLimit (%d), BodyBytesInFlight (%d), WriteTimeout (%v), ReadHeaderTimeout (%v) and ProbeEvery (%v) must not be negative",
			opts.Timeout, opts.BodyLimit, opts.BodyBytesInFlight, opts.WriteTimeout, opts.ReadHeaderTimeout, opts.ProbeEvery)
	}
	if opts.DLQ != nil && opts.DLQ.Store == nil {
		return nil, errors.New("gateway: Options.DLQ has no Store")
	}
	if strings.ContainsAny(opts.UpstreamBearer, "\r\n") {
		return nil, errors.New("gateway: Options.UpstreamBearer holds a line break")
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.BodyLimit == 0 {
		opts.BodyLimit = DefaultBodyLimit
	}
	if opts.BodyBytesInFlight == 0 {
		opts.BodyBytesInFlight = defaultBodiesInFlight * opts.BodyLimit
	}
	opts.BodyBytesInFlight = max(opts.BodyBytesInFlight, opts.BodyLimit+1)
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.ReadHeaderTimeout == 0 {
		opts.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if opts.ProbeEvery == 0 {
		opts.ProbeEvery = DefaultProbeEvery
	}
	s := &Server{opts: opts, mux: http.NewServeMux(), bodies: byteBudget{max: opts.BodyBytesInFlight}}
	s.cut, s.cutCall = context.WithCancel(context.Background())
	s.mux.HandleFunc("/model/", s.serveModel)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeText(w, http.StatusOK, "ok") })
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	metrics := opts.Metrics
	if metrics == nil {
		metrics = http.NotFoundHandler()
	}
	s.mux.Handle("/metrics", metrics)
	status := opts.Status
	if status == nil {
		status = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeText(w, http.StatusOK, "keel gateway: status page not configured")
		})
	}
	s.mux.Handle("/", status)
	return s, nil
}

// ServeHTTP serves one request. An open gateway refuses, on every path,
// a request for a Host that is not a loopback name (see
// Options.InsecureOpen); /model/ refuses it with the request's other
// refusals.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/model/") {
		if rf := s.hostRefusal(r); rf != nil {
			writeRefusal(w, rf, 0, "")
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// SetReady marks the gateway ready (/readyz answers 200) before any call
// has reached the upstream: `keel serve --emulator` calls it once its
// emulator runs.
func (s *Server) SetReady() { s.ready.Store(true) }

// Ready reports whether /readyz answers 200: the upstream has answered a
// call or a probe (ProbeUpstream) with any HTTP status, or SetReady was
// called.
func (s *Server) Ready() bool { return s.ready.Load() }

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	switch {
	case stopping:
		writeText(w, http.StatusServiceUnavailable, "not ready: shutting down")
		return
	case !s.Ready():
		writeText(w, http.StatusServiceUnavailable, "not ready: the upstream has not answered yet")
		return
	}
	writeText(w, http.StatusOK, "ready")
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(text + "\n"))
}
