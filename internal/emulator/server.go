package emulator

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/reply"
	"github.com/keel-run/keel/internal/emulator/s3"
)

// Operation names, as they appear in the request path and in fault.Request.
const (
	OpConverse       = "converse"
	OpConverseStream = "converse-stream"
	OpInvoke         = "invoke"
	OpInvokeStream   = "invoke-with-response-stream"
	OpCountTokens    = "count-tokens"
)

const (
	maxPooledBuffer = 1 << 20 // buffers beyond this are not kept for reuse
	minBodyGrowth   = 4 << 10 // a body of unknown length is read in steps of at least this
	// maxDiscardBytes is how much of a refused body is read and dropped
	// after the answer, so that a client still sending it reads the answer
	// rather than a reset; it costs time, not memory. Past it, net/http
	// closes the connection.
	maxDiscardBytes   = 64 << 20
	requestIDRandBits = 0x5deece66d

	// maxModelIDLength is Bedrock Runtime's own limit on a modelId (its API
	// reference: length 1 to 2048); a longer id is refused before anything
	// keeps it.
	maxModelIDLength = 2048
	// maxRegionLength bounds a region name; the longest AWS has today has 14
	// characters (ap-southeast-5), so 32 leaves room without letting a
	// client make the emulator keep long made-up strings.
	maxRegionLength = 32
)

// UnknownModel is the model an Outcome names when the request's model id
// resolves to no model the server serves, so that a client sending many
// bogus ids does not make the Observe hook's counters grow with each.
const UnknownModel = "(unknown)"

// Server is an emulated Amazon Bedrock Runtime (and the read-only part of the
// Bedrock control plane that lists models), as an http.Handler. Make one with
// New; most callers want Start, which also listens.
//
// A Server is safe for concurrent use. Its configuration cannot change after
// New; hooks in Options carry any state that must (quotas, scenarios).
type Server struct {
	opts   Options
	models map[string]target // by unescaped id: bare model ids and profile ids
	byPath map[string]string // escaped id as it appears in a path -> unescaped id
	list   []Model

	seq    atomic.Uint64
	idBase uint64

	quit      chan struct{} // closed by Close: hung and stalled handlers give up
	closeOnce sync.Once
	inflight  flights // requests being served

	pool    sync.Pool // *exchange
	prompts promptCache

	// buffered counts the request-body bytes held by requests being served,
	// bounded by Options.MaxBufferedBytes.
	buffered    atomic.Int64
	bodyTooLong string // the message for a body over MaxBodyBytes
	busyMessage string // the message when MaxBufferedBytes is reached

	mounts []mount // set up before serving, read-only after

	objects *s3.Store
	s3      s3.Handler
	jobs    jobTable
}

type mount struct {
	prefix string
	h      http.Handler
}

// Mount serves h for request paths that start with prefix (for example the
// admin API under "/_emulator/"), beside the Bedrock API. Mount must be
// called before the server serves its first request.
func (s *Server) Mount(prefix string, h http.Handler) {
	s.mounts = append(s.mounts, mount{prefix: prefix, h: h})
}

// New returns a Server configured by opts, or an error naming the option that
// is wrong.
func New(opts Options) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	models := append([]Model(nil), o.Models...)
	index, err := checkModels(models)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:   o,
		models: index,
		byPath: make(map[string]string, len(index)*2),
		list:   models,
		idBase: uint64(time.Now().UnixNano()) ^ requestIDRandBits,
		quit:   make(chan struct{}),
	}
	for id := range index {
		s.byPath[id] = id
		s.byPath[url.PathEscape(id)] = id
		s.byPath[strings.ReplaceAll(id, ":", "%3A")] = id
	}
	s.pool.New = func() any { return &exchange{s: s} }
	s.objects = s3.NewStore(o.S3MaxBytes, o.Clock.Now)
	s.s3.Store = s.objects
	if o.Verify != nil {
		s.s3.Verify = s.verifyS3
	}
	s.bodyTooLong = fmt.Sprintf("Input is too long: the request body is over the emulator's limit of %d bytes "+
		"(Options.MaxBodyBytes, keel emulate --max-body).", o.MaxBodyBytes)
	s.busyMessage = fmt.Sprintf("The emulator is holding its limit of %d bytes of request bodies "+
		"(Options.MaxBufferedBytes, keel emulate --max-buffered); try again later.", o.MaxBufferedBytes)
	return s, nil
}

// Models returns the models the server emulates. The slice is the server's
// own; callers must not modify it.
func (s *Server) Models() []Model { return s.list }

// Idle returns a channel closed once no request is being served: at once
// when none is now. A request that starts after it is closed is not waited
// for.
func (s *Server) Idle() <-chan struct{} { return s.inflight.none() }

// Close makes every request that hangs or stalls on purpose give up at once,
// by closing its connection, and ends every batch job's goroutine (the jobs
// stay where they were). It does not stop the server from serving;
// Running.Close does both. Close is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.quit)
		s.closeJobs()
	})
}

// exchange is the state of one request. Exchanges are pooled, so buffers
// are reused from one request to the next.
type exchange struct {
	s     *Server
	w     http.ResponseWriter
	r     *http.Request
	ctx   context.Context
	start time.Time

	id, region, op, modelID string
	tier                    string // the service tier the request named; "" for none
	badTier                 string // the refusal of a tier that is no tier
	code                    string // the outcome's catalog code; "" for a complete reply
	tgt                     target
	cache                   cachePos // the request's cache point, if any
	mid                     *fault.MidStream
	wroteHeader             bool
	batch                   bool          // a batch job's record: no quota hooks, no pacing
	latency                 time.Duration // the plan's latency, not slept yet (see generate)

	body  []byte
	held  int64 // bytes of Server.buffered this request holds
	out   []byte
	inner []byte
	frame bytes.Buffer
	enc   *eventstream.Encoder
	hdrs  eventstream.Headers
	msgs  []reply.Message
	idBuf [36]byte

	conv converseBody
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) *exchange {
	x := s.pool.Get().(*exchange)
	x.w, x.r, x.ctx = w, r, r.Context()
	x.start = s.opts.Clock.Now()
	x.id = x.newRequestID()
	return x
}

func (s *Server) put(x *exchange) {
	s.buffered.Add(-x.held)
	x.held = 0
	if cap(x.body) > maxPooledBuffer || cap(x.out) > maxPooledBuffer || x.frame.Cap() > maxPooledBuffer || cap(x.inner) > maxPooledBuffer {
		return // let an unusually large request's buffers go
	}
	x.w, x.r, x.ctx = nil, nil, nil
	x.id, x.region, x.op, x.modelID, x.code, x.tier, x.badTier = "", "", "", "", "", "", ""
	x.tgt, x.mid, x.wroteHeader, x.cache, x.latency, x.batch = target{}, nil, false, cachePos{}, 0, false
	x.body, x.out, x.inner = x.body[:0], x.out[:0], x.inner[:0]
	x.frame.Reset()
	x.hdrs = x.hdrs[:0]
	clear(x.msgs)
	x.msgs = x.msgs[:0]
	x.conv.reset()
	s.pool.Put(x)
}

// newRequestID returns a fresh id shaped like the UUIDs Bedrock sends.
func (x *exchange) newRequestID() string {
	n := x.s.seq.Add(1)
	hi, lo := mix64(x.s.idBase+n), mix64(^(x.s.idBase ^ n))
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], hi)
	binary.BigEndian.PutUint64(raw[8:], lo)
	raw[6] = raw[6]&0x0f | 0x40 // version 4
	raw[8] = raw[8]&0x3f | 0x80 // RFC 4122 variant
	b := x.idBuf[:0]
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return string(b)
}

func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

var (
	jsonContentType        = []string{"application/json"}
	eventStreamContentType = []string{"application/vnd.amazon.eventstream"}
)

// ServeHTTP answers one request.
//
// The region a request is served in is taken, in order, from the SigV4
// credential scope of its Authorization header
// ("Credential=AKID/20250101/us-west-2/bedrock/aws4_request"), from a path
// prefix "/region/{region}" (for clients that do not sign), or from
// Options.DefaultRegion.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.setDate(w)
	for _, m := range s.mounts {
		if strings.HasPrefix(r.URL.Path, m.prefix) {
			m.h.ServeHTTP(w, r)
			return
		}
	}
	s.inflight.enter()
	defer s.inflight.exit()
	x := s.get(w, r)
	defer s.put(x)
	w.Header()["X-Amzn-Requestid"] = []string{x.id}
	if credentialService(r.Header.Get("Authorization")) == SigningS3 {
		x.serveS3()
		return
	}

	// RawPath is the path as sent when it differs from Path's default
	// escaping (a model id with %3A or %2F), which is what routing needs;
	// EscapedPath would re-validate it at a cost on every request.
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	var scope string
	x.region, scope, path = s.regionOf(r, path)
	if scope != "" {
		// What AWS answers a credential scoped to a region it does not have.
		x.fail(catalog.CodeInvalidSignature, "Credential should be scoped to a valid region, not '"+scope+"'. ")
		return
	}
	switch {
	case strings.HasPrefix(path, "/model/") && r.Method == http.MethodPost:
		x.serveRuntime(path[len("/model/"):])
	case path == "/foundation-models" && r.Method == http.MethodGet:
		x.serveListModels()
	case strings.HasPrefix(path, "/foundation-models/") && r.Method == http.MethodGet:
		x.serveGetModel(path[len("/foundation-models/"):])
	case path == "/inference-profiles" && r.Method == http.MethodGet:
		x.serveListProfiles()
	case strings.HasPrefix(path, "/inference-profiles/") && r.Method == http.MethodGet:
		x.serveGetProfile(path[len("/inference-profiles/"):])
	case path == "/" && r.Method == http.MethodPost:
		x.serveAWS()
	case path == "/model-invocation-job" && r.Method == http.MethodPost:
		x.serveCreateJob()
	case path == "/model-invocation-jobs" && r.Method == http.MethodGet:
		x.serveListJobs()
	case strings.HasPrefix(path, "/model-invocation-job/") && strings.HasSuffix(path, "/stop") && r.Method == http.MethodPost:
		x.serveStopJob(strings.TrimSuffix(path[len("/model-invocation-job/"):], "/stop"))
	case strings.HasPrefix(path, "/model-invocation-job/") && r.Method == http.MethodGet:
		x.serveGetJob(path[len("/model-invocation-job/"):])
	default:
		x.unknownOperation()
	}
}

// regionOf finds the request's region and returns the path without any
// /region/{region} prefix. A prefix that names no region is left in the
// path, which then names no operation. badScope is the credential scope's
// region when it is not a region name, and then region is "".
func (s *Server) regionOf(r *http.Request, path string) (region, badScope, rest string) {
	if p, ok := strings.CutPrefix(path, "/region/"); ok {
		if i := strings.IndexByte(p, '/'); i > 0 && validRegion(p[:i]) {
			region, path = p[:i], p[i:]
		}
	}
	if scope := credentialRegion(r.Header.Get("Authorization")); scope != "" {
		if !validRegion(scope) {
			return "", scope, path
		}
		region = scope
	}
	if region == "" {
		region = s.opts.DefaultRegion
	}
	return region, "", path
}

// validRegion reports whether s is shaped like an AWS region name: two
// lowercase letters, one or more words of lowercase letters, and a number,
// joined by dashes ("us-east-1", "us-gov-west-1"), in at most
// maxRegionLength bytes, without a regular expression on every request.
func validRegion(s string) bool {
	if len(s) > maxRegionLength || len(s) < 2 || !isLower(s[0]) || !isLower(s[1]) {
		return false
	}
	i, words := 2, 0
	for i < len(s) && s[i] == '-' {
		j := i + 1
		for j < len(s) && isLower(s[j]) {
			j++
		}
		if j == i+1 {
			break // not a word: the number follows
		}
		words, i = words+1, j
	}
	if words == 0 || i >= len(s) || s[i] != '-' {
		return false
	}
	j := i + 1
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	return j == len(s) && j > i+1
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

// credentialRegion returns the region of a SigV4 Authorization header's
// credential scope, or "".
func credentialRegion(auth string) string {
	region, _ := credentialScope(auth)
	return region
}

// credentialService returns the service of a SigV4 Authorization header's
// credential scope, or "".
func credentialService(auth string) string {
	_, service := credentialScope(auth)
	return service
}

// credentialScope returns the region and service of a SigV4 Authorization
// header's credential scope, or "" for each it cannot find.
func credentialScope(auth string) (region, service string) {
	i := strings.Index(auth, "Credential=")
	if i < 0 {
		return "", ""
	}
	scope := auth[i+len("Credential="):]
	if j := strings.IndexAny(scope, ", "); j >= 0 {
		scope = scope[:j]
	}
	// AKID/date/region/service/aws4_request
	for k := 0; k < 2; k++ {
		j := strings.IndexByte(scope, '/')
		if j < 0 {
			return "", ""
		}
		scope = scope[j+1:]
	}
	j := strings.IndexByte(scope, '/')
	if j <= 0 {
		return "", ""
	}
	region, scope = scope[:j], scope[j+1:]
	if k := strings.IndexByte(scope, '/'); k > 0 {
		service = scope[:k]
	}
	return region, service
}

// unknownOperation answers a request for a path or method that names no
// operation.
func (x *exchange) unknownOperation() {
	x.fail(codeUnknownOp, "")
}

// serveRuntime serves POST /model/{modelId}/{operation}.
func (x *exchange) serveRuntime(rest string) {
	slash := strings.LastIndexByte(rest, '/')
	if slash <= 0 {
		x.unknownOperation()
		return
	}
	switch op := rest[slash+1:]; op {
	case OpConverse, OpConverseStream, OpInvoke, OpInvokeStream, OpCountTokens:
		x.op = op
	default:
		x.unknownOperation()
		return
	}
	if obs := x.s.opts.Observe; obs != nil {
		defer func() {
			model := x.modelID
			if _, ok := x.s.lookup(model); !ok {
				model = UnknownModel
			}
			obs(Outcome{Model: model, Region: x.region, Operation: x.op, Code: x.code})
		}()
	}
	escaped := rest[:slash]
	if id, ok := x.s.byPath[escaped]; ok {
		x.modelID = id
	} else {
		if len(escaped) > 3*maxModelIDLength {
			// Too long even if every byte were escaped: not worth unescaping.
			x.fail(codeValidation, modelIDTooLong)
			return
		}
		id, err := url.PathUnescape(escaped)
		if err != nil {
			x.fail(codeValidation, "The provided model identifier is invalid.")
			return
		}
		if len(id) > maxModelIDLength {
			x.fail(codeValidation, modelIDTooLong)
			return
		}
		x.modelID = id
	}

	if !x.readBody() {
		return
	}
	x.readTier()
	var plan fault.Plan
	if x.s.opts.Planner != nil {
		plan = x.s.opts.Planner(fault.Request{Model: x.modelID, Region: x.region, Operation: x.op, Tier: cmp.Or(x.tier, bedrock.TierDefault)})
	}
	switch {
	case plan.Refuse:
		x.code = catalog.CodeConnectionReset
		x.abort(true)
		return
	case plan.Hang:
		x.hang()
		return
	}
	if v := x.s.opts.Verify; v != nil {
		if rej := v(x.r, x.body); rej != nil {
			x.fail(rej.Code, rej.Message)
			return
		}
	}
	// The latency comes before an injected error and before a reply, but
	// not before a refusal at the door (a bad signature, a bad request,
	// the quota), which Bedrock answers on arrival: an inference request
	// sleeps it once the quota admitted it (see generate).
	x.latency = plan.Latency
	if plan.Error != "" || x.op == OpCountTokens {
		if !x.sleepLatency() {
			x.gone()
			return
		}
	}
	if plan.Error != "" {
		x.fail(plan.Error, plan.ErrorMessage)
		return
	}
	if !x.resolveModel() || !x.checkTier() {
		return
	}
	x.mid = plan.MidStream

	switch x.op {
	case OpConverse, OpConverseStream:
		x.serveConverse()
	case OpInvoke, OpInvokeStream:
		x.serveInvoke()
	case OpCountTokens:
		x.serveCountTokens()
	}
}

// readBody reads the whole request body; it reports false, having answered,
// when it could not. The body counts against Options.MaxBufferedBytes from
// before it is read until the request ends: a declared length at once, a
// body of unknown length as its buffer grows.
func (x *exchange) readBody() bool {
	limit := x.s.opts.MaxBodyBytes
	b := x.body[:0]
	if n := x.r.ContentLength; n > limit {
		x.refuseBody(codeValidation, x.s.bodyTooLong)
		return false
	} else if n >= 0 {
		if !x.hold(n) {
			return false
		}
		if int64(cap(b)) <= n { // one more byte, to see the end without growing
			b = make([]byte, 0, n+1)
		}
	}
	for {
		room := min(int64(cap(b)), limit+1) // reading limit+1 bytes tells a body over the limit
		if int64(len(b)) == room {
			if room > limit {
				x.refuseBody(codeValidation, x.s.bodyTooLong)
				return false
			}
			room = min(max(2*room, minBodyGrowth), limit+1)
			if !x.hold(room) {
				return false
			}
			b = append(make([]byte, 0, room), b...)
		}
		if x.r.ContentLength < 0 && !x.hold(room) {
			return false // a body of unknown length holds what it may fill
		}
		n, err := x.r.Body.Read(b[len(b):room])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			x.body = b
			return false // the client went away; nobody to answer
		}
	}
	x.body = b
	if int64(len(b)) > limit {
		x.fail(codeValidation, x.s.bodyTooLong)
		return false
	}
	return true
}

// hold makes the exchange hold n bytes of the server's buffering budget,
// answering with ServiceUnavailableException, and reporting false, when
// that would pass Options.MaxBufferedBytes.
func (x *exchange) hold(n int64) bool {
	more := n - x.held
	if more <= 0 {
		return true
	}
	if x.s.buffered.Add(more) > x.s.opts.MaxBufferedBytes {
		x.s.buffered.Add(-more)
		x.refuseBody(catalog.CodeServiceUnavailable, x.s.busyMessage)
		return false
	}
	x.held = n
	return true
}

// refuseBody answers with an error before the body has been read, then
// reads and drops what is left of it, up to maxDiscardBytes.
func (x *exchange) refuseBody(code, message string) {
	x.fail(code, message)
	if x.r.ContentLength > maxDiscardBytes {
		return
	}
	x.flush()
	io.CopyN(io.Discard, x.r.Body, maxDiscardBytes)
}

// modelIDTooLong is the message of Bedrock's constraint on modelId (AWS's
// validation wording; the value is not repeated, as for a sensitive field).
const modelIDTooLong = "1 validation error detected: Value at 'modelId' failed to satisfy constraint: " +
	"Member must have length less than or equal to 2048"

// lookup finds the target a model id names: a bare model id, an inference
// profile id, or the ARN of either.
func (s *Server) lookup(id string) (target, bool) {
	if strings.HasPrefix(id, "arn:") {
		for _, kind := range [...]string{":foundation-model/", ":inference-profile/"} {
			if i := strings.Index(id, kind); i >= 0 {
				id = id[i+len(kind):]
				break
			}
		}
	}
	t, ok := s.models[id]
	return t, ok
}

// undatedWithSuffix reports whether id is a served model's id with a
// ":0" suffix it does not have ("anthropic.claude-opus-4-6-v1:0").
func undatedWithSuffix(s *Server, id string) bool {
	base, ok := strings.CutSuffix(id, ":0")
	if !ok {
		return false
	}
	_, ok = s.lookup(base)
	return ok
}

// resolveModel finds the model the request names and checks it can be
// invoked in the request's region, answering with Bedrock's error if not.
func (x *exchange) resolveModel() bool {
	t, ok := x.s.lookup(x.modelID)
	switch {
	case !ok && undatedWithSuffix(x.s, x.modelID):
		// An undated id (Claude 4.6 on) with the ":0" the dated ones carry.
		x.fail(codeValidation, "The provided model identifier is invalid.")
		return false
	case !ok && looksLikeModelID(x.modelID):
		x.fail(codeNotFound, "Could not resolve the foundation model from the provided model identifier.")
		return false
	case !ok:
		x.fail(codeValidation, "The provided model identifier is invalid.")
		return false
	case t.profile != "" && !profileCallable(t.profile, x.region):
		// A geographic profile is only callable from its own geography.
		x.fail(codeValidation, "The provided model identifier is invalid.")
		return false
	case t.profile == "" && t.model.ProfileOnly && x.op != OpCountTokens:
		x.fail(codeValidation, "Invocation of model ID "+t.model.ID+" with on-demand throughput isn’t supported. "+
			"Retry your request with the ID or ARN of an inference profile that contains this model.")
		return false
	}
	x.tgt = t
	return true
}

// sleepLatency sleeps the plan's latency, once; it reports false if the
// client gave up, or the server closed, meanwhile (the caller settles what
// was admitted, then calls gone, which may end the handler).
func (x *exchange) sleepLatency() bool {
	d := x.latency
	x.latency = 0
	return d <= 0 || x.sleep(d)
}

// sleep waits d on the server's clock. It reports false if the client gave
// up or the server is closing first.
func (x *exchange) sleep(d time.Duration) bool {
	if d <= 0 {
		return x.ctx.Err() == nil
	}
	t := x.s.opts.Clock.NewTimer(d)
	select {
	case <-t.C():
		return true
	case <-x.ctx.Done():
	case <-x.s.quit:
	}
	t.Stop()
	return false
}

// hang sends nothing until the client gives up or the server closes.
func (x *exchange) hang() {
	if x.code == "" {
		x.code = catalog.CodeClientTimeout
	}
	select {
	case <-x.ctx.Done():
	case <-x.s.quit:
	}
	x.gone()
}

// gone ends an exchange whose wait was cut short. If the client left there
// is nobody to answer; if the server is closing, the connection is reset so
// the client sees an error rather than a reply that merely stops (which the
// SDK's event-stream reader would take for a complete stream).
func (x *exchange) gone() {
	if x.ctx.Err() == nil {
		if x.code == "" || x.code == catalog.CodeClientTimeout {
			x.code = catalog.CodeConnectionReset
		}
		x.abort(true)
		return
	}
	if x.code == "" {
		x.code = catalog.CodeClientTimeout
	}
}

// abort ends the exchange without an HTTP ending: what was written so far
// is flushed, then the connection is closed, with a TCP reset (RST) when rst
// is set and a plain close (FIN) otherwise. Where the connection cannot be
// taken over (HTTP/2, a ResponseRecorder), it panics with
// http.ErrAbortHandler, which net/http turns into a closed stream.
func (x *exchange) abort(rst bool) {
	if x.wroteHeader {
		if f, ok := x.w.(http.Flusher); ok {
			f.Flush()
		}
	}
	conn, _, err := http.NewResponseController(x.w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok && rst {
		tc.SetLinger(0) // close sends RST instead of FIN
	}
	conn.Close()
}

func (x *exchange) flush() {
	if f, ok := x.w.(http.Flusher); ok {
		f.Flush()
	}
}

// elapsed is the time since the request arrived, on the server's clock.
func (x *exchange) elapsed() time.Duration {
	return x.s.opts.Clock.Now().Sub(x.start)
}
