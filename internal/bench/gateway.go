package bench

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/keel-run/keel"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/reply"
	"github.com/keel-run/keel/internal/gateway"
	"github.com/keel-run/keel/internal/keelx"
	"github.com/keel-run/keel/internal/transport"
)

// The operations a gateway bench can send.
const (
	OpConverse       = "converse"
	OpConverseStream = "converse-stream"
)

// The gateway bench's goals (issue 18): keel's gateway serves at least
// GatewayMinThroughput of the bare proxy's requests per second and adds at
// most GatewayMaxAddedP50 to its median latency, at the same concurrency.
const (
	GatewayMinThroughput = 0.8
	GatewayMaxAddedP50   = 200 * time.Microsecond
)

// Limits on a GatewayConfig.
const (
	MaxGatewayConcurrency = 1024
	MaxGatewayDuration    = 10 * time.Minute
	MinGatewayDuration    = 100 * time.Millisecond
)

const (
	// gatewayRounds is how many slices each contender's measured time is
	// cut into, the contenders taking turns: a burst of other work on the
	// shared machine then lands on every contender rather than on one.
	gatewayRounds = 5
	// gatewayReply is every reply's length in tokens, fixed so that every
	// call costs the emulator the same and latency differences are the
	// middle's; about a short chat answer, which streams as that many
	// content deltas.
	gatewayReply = 60
	// gatewayMaxTokens is every call's max tokens: more than the reply, so
	// every reply ends on its own.
	gatewayMaxTokens = 200
	// gatewayCallTimeout bounds one call: with no simulated latency a call
	// takes milliseconds, so this means the server under test hung.
	gatewayCallTimeout = 10 * time.Second
	// gatewayPrompt is every call's user turn.
	gatewayPrompt = "Name three rivers in Europe and say in a sentence where each flows."
)

// A GatewayContender is what the load reaches the emulator through.
type GatewayContender struct {
	Name        string
	Description string
	// serve starts the middle in front of the emulator at upstream and
	// returns the URL to send to and what stops it; the emulator contender
	// returns upstream itself.
	serve func(upstream, region string) (url string, stop func(), err error)
}

// gatewayContenders in table order.
var gatewayContenders = []GatewayContender{
	{Name: "emulator", Description: "the emulator directly: the floor, what the client and the emulator cost",
		serve: func(upstream, _ string) (string, func(), error) { return upstream, func() {}, nil }},
	{Name: "proxy", Description: "a bare reverse proxy that only re-signs: httputil.ReverseProxy + aws-sdk-go-v2's SigV4 signer",
		serve: bareProxy},
	{Name: "keel", Description: "keel serve: gateway.New over keel.New with defaults (no access log), served by its own Serve",
		serve: keelGateway(false)},
	{Name: "keel-log", Description: "the same with keel serve's access log, a JSON line per call, written to io.Discard",
		serve: keelGateway(true)},
}

// DefaultGatewayContenders are the contenders a gateway bench compares
// when none are named.
var DefaultGatewayContenders = []string{"emulator", "proxy", "keel"}

// GatewayContenders lists the gateway bench's contenders in table order.
func GatewayContenders() []GatewayContender { return slices.Clone(gatewayContenders) }

// GatewayConfig configures a gateway bench. The zero value of each field
// means its default.
type GatewayConfig struct {
	// Concurrency is the number of workers, each sending its next call
	// when its last one ended (a closed loop). Zero: 16.
	Concurrency int
	// Duration is how long each contender is measured, in gatewayRounds
	// turns, after its warm-up. Zero: 10 s.
	Duration time.Duration
	// Op is the operation every call sends: OpConverse or
	// OpConverseStream. Empty: OpConverse.
	Op string
	// Model is the model every call names. Empty: DefaultOutageModel.
	Model string
	// Seed varies the emulators' replies.
	Seed int64
	// Contenders names the contenders to compare. Empty:
	// DefaultGatewayContenders.
	Contenders []string
}

func (c GatewayConfig) withDefaults() GatewayConfig {
	c.Concurrency = cmp.Or(c.Concurrency, 16)
	c.Duration = cmp.Or(c.Duration, 10*time.Second)
	c.Op = cmp.Or(c.Op, OpConverse)
	c.Model = cmp.Or(c.Model, DefaultOutageModel)
	if len(c.Contenders) == 0 {
		c.Contenders = DefaultGatewayContenders
	}
	return c
}

// CheckGateway reports what is wrong with cfg, as RunGateway would,
// without running anything.
func CheckGateway(cfg GatewayConfig) error {
	_, _, _, err := checkGateway(cfg)
	return err
}

func checkGateway(cfg GatewayConfig) (GatewayConfig, []GatewayContender, Model, error) {
	cfg = cfg.withDefaults()
	switch {
	case cfg.Concurrency < 1 || cfg.Concurrency > MaxGatewayConcurrency:
		return cfg, nil, Model{}, fmt.Errorf("bench: concurrency %d: want from 1 to %d", cfg.Concurrency, MaxGatewayConcurrency)
	case cfg.Duration < MinGatewayDuration || cfg.Duration > MaxGatewayDuration:
		return cfg, nil, Model{}, fmt.Errorf("bench: duration %s: want from %s to %s", cfg.Duration, MinGatewayDuration, MaxGatewayDuration)
	case cfg.Op != OpConverse && cfg.Op != OpConverseStream:
		return cfg, nil, Model{}, fmt.Errorf("bench: operation %q: want %s or %s", cfg.Op, OpConverse, OpConverseStream)
	}
	cs, err := pickNamed(gatewayContenders, func(c GatewayContender) string { return c.Name }, DefaultGatewayContenders, cfg.Contenders)
	if err != nil {
		return cfg, nil, Model{}, err
	}
	m, err := ResolveModel(cfg.Model)
	if err != nil {
		return cfg, nil, Model{}, err
	}
	return cfg, cs, m, nil
}

// GatewayResult is what a gateway bench measured.
type GatewayResult struct {
	Op          string           `json:"op"`
	Model       string           `json:"model"`
	Concurrency int              `json:"concurrency"`
	Duration    time.Duration    `json:"-"` // measured per contender
	Warmup      time.Duration    `json:"-"` // per contender, before its first turn
	Rounds      int              `json:"rounds"`
	CPUs        int              `json:"cpus"` // GOMAXPROCS during the run
	Wall        time.Duration    `json:"-"`
	Contenders  []GatewayOutcome `json:"contenders"`
	// Compared is true when the proxy and keel both ran; then AddedP50 is
	// keel's p50 minus the proxy's, and Throughput keel's requests per
	// second over the proxy's.
	Compared   bool          `json:"compared"`
	AddedP50   time.Duration `json:"-"`
	Throughput float64       `json:"throughputRatio"`
}

// GatewayOutcome is one contender's measures.
type GatewayOutcome struct {
	Name string `json:"name"`
	// Calls completed (status 200, reply read to its end) in the measured
	// turns; Errors the others, FirstError the first of them.
	Calls      int    `json:"calls"`
	Errors     int    `json:"errors"`
	FirstError string `json:"firstError,omitempty"`
	// PerSecond is calls completed per second of measured time.
	PerSecond float64 `json:"perSecond"`
	// Latency percentiles of completed calls, request sent to reply read.
	P50, P99, P999 time.Duration `json:"-"`
	// Allocations and bytes allocated per call in the whole process (the
	// load's client and the emulator too) during the contender's turns.
	AllocsPerCall float64 `json:"allocsPerCall"`
	BytesPerCall  float64 `json:"bytesPerCall"`
	// ReplyBytes is the mean size of a reply's body.
	ReplyBytes float64 `json:"replyBytes"`

	lat   []time.Duration
	bytes int64
}

// gatewayArena is one contender's emulator, the middle in front of it,
// and the client the load sends with.
type gatewayArena struct {
	c      GatewayContender
	rn     *emulator.Running
	close  func() // stops the middle
	url    string // the load sends to
	client *http.Client
	out    GatewayOutcome
	spent  time.Duration
	allocs uint64
	alloc  uint64
}

// RunGateway runs a gateway bench: per contender an emulator with no
// simulated latency and no faults, the contender's middle in front of it
// on its own listener, and a closed loop of Concurrency workers sending
// the same call through it. The contenders take turns: a warm-up each,
// then gatewayRounds turns each of Duration/gatewayRounds. It returns the
// measures, or ctx's error.
func RunGateway(ctx context.Context, cfg GatewayConfig) (*GatewayResult, error) {
	cfg, cs, m, err := checkGateway(cfg)
	if err != nil {
		return nil, err
	}
	body, header, err := gatewayRequest(ctx, m)
	if err != nil {
		return nil, err
	}
	var arenas []*gatewayArena
	defer func() {
		for _, a := range arenas {
			a.stop()
		}
	}()
	for _, c := range cs {
		a, err := startGatewayArena(c, cfg, m)
		if err != nil {
			return nil, err
		}
		arenas = append(arenas, a)
	}
	path := "/model/" + url.PathEscape(m.ID) + "/" + cfg.Op
	turn := cfg.Duration / gatewayRounds
	warmup := min(time.Second, max(turn, MinGatewayDuration))
	start := time.Now()
	for _, a := range arenas {
		if _, err := a.load(ctx, cfg.Concurrency, warmup, path, body, header, nil); err != nil {
			return nil, err
		}
	}
	for range gatewayRounds {
		for _, a := range arenas {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			spent, err := a.load(ctx, cfg.Concurrency, turn, path, body, header, &a.out)
			runtime.ReadMemStats(&after)
			if err != nil {
				return nil, err
			}
			a.spent += spent
			a.allocs += after.Mallocs - before.Mallocs
			a.alloc += after.TotalAlloc - before.TotalAlloc
		}
	}
	res := &GatewayResult{Op: cfg.Op, Model: m.ID, Concurrency: cfg.Concurrency, Duration: cfg.Duration, Warmup: warmup,
		Rounds: gatewayRounds, CPUs: runtime.GOMAXPROCS(0), Wall: time.Since(start)}
	for _, a := range arenas {
		res.Contenders = append(res.Contenders, a.outcome())
	}
	proxy := slices.IndexFunc(res.Contenders, func(o GatewayOutcome) bool { return o.Name == "proxy" })
	keel := slices.IndexFunc(res.Contenders, func(o GatewayOutcome) bool { return o.Name == "keel" })
	if proxy >= 0 && keel >= 0 && res.Contenders[proxy].Calls > 0 && res.Contenders[keel].Calls > 0 {
		p, k := res.Contenders[proxy], res.Contenders[keel]
		res.Compared, res.AddedP50, res.Throughput = true, k.P50-p.P50, k.PerSecond/p.PerSecond
	}
	return res, nil
}

// startGatewayArena starts c's emulator and middle, and the load's client.
//
// Every goroutine of the arena carries the profiler labels contender (its
// name) and role (load, middle or emulator), inherited from the goroutine
// that serves or sends, so that a CPU profile of the whole bench can be cut
// to one contender's middle (go tool pprof -tagfocus).
func startGatewayArena(c GatewayContender, cfg GatewayConfig, m Model) (*gatewayArena, error) {
	var (
		rn  *emulator.Running
		err error
	)
	pprof.Do(context.Background(), pprof.Labels("contender", c.Name, "role", "emulator"), func(context.Context) {
		rn, err = emulator.Start(emulator.Options{Seed: cfg.Seed, DefaultRegion: m.Region,
			ReplyLength: reply.Range{Min: gatewayReply, Max: gatewayReply}})
	})
	if err != nil {
		return nil, err
	}
	a := &gatewayArena{c: c, rn: rn, close: func() {}}
	a.out.Name = c.Name
	pprof.Do(context.Background(), pprof.Labels("contender", c.Name, "role", "middle"), func(context.Context) {
		a.url, a.close, err = c.serve(rn.URL, m.Region)
	})
	if err != nil {
		rn.Close()
		return nil, fmt.Errorf("bench: contender %s: %w", c.Name, err)
	}
	// The load's client: HTTP/1.1 keep-alive, a connection per worker.
	a.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency, DisableCompression: true},
		Timeout: gatewayCallTimeout, CheckRedirect: transport.NoRedirect}
	return a, nil
}

// plainProtocols are HTTP/1.1 and HTTP/2 with prior knowledge on a plain
// listener, as the emulator and the gateway serve.
func plainProtocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}

func (a *gatewayArena) stop() {
	a.client.CloseIdleConnections()
	a.close()
	a.rn.Close()
}

// load runs the closed loop for d: n workers, each sending the call and
// reading the reply to its end, then the next, until d has passed. A call
// under way at d ends before load returns and is counted. It records in
// out when out is not nil, and returns how long the loop took.
func (a *gatewayArena) load(ctx context.Context, n int, d time.Duration, path string, body []byte, header http.Header, out *GatewayOutcome) (time.Duration, error) {
	type worker struct {
		lat    []time.Duration
		bytes  int64
		errors int
		first  error
	}
	ws := make([]worker, n)
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	labels := pprof.Labels("contender", a.c.Name, "role", "load")
	for i := range ws {
		w := &ws[i]
		wg.Go(func() {
			pprof.SetGoroutineLabels(pprof.WithLabels(ctx, labels))
			for ctx.Err() == nil && time.Now().Before(end) {
				t0 := time.Now()
				nb, err := a.call(ctx, path, body, header)
				if err != nil {
					w.errors++
					if w.first == nil {
						w.first = err
					}
					continue
				}
				w.lat = append(w.lat, time.Since(t0))
				w.bytes += nb
			}
		})
	}
	wg.Wait()
	spent := time.Since(start)
	if err := ctx.Err(); err != nil {
		return spent, err
	}
	if out != nil {
		for _, w := range ws {
			out.lat = append(out.lat, w.lat...)
			out.bytes += w.bytes
			out.Errors += w.errors
			if w.first != nil && out.FirstError == "" {
				out.FirstError = w.first.Error()
			}
		}
	}
	return spent, nil
}

// call sends one call and reads its reply to the end; a status other than
// 200 is an error.
func (a *gatewayArena) call(ctx context.Context, path string, body []byte, header http.Header) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header = header.Clone()
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, fmt.Errorf("reading the reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("status %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"))
	}
	return n, nil
}

func (a *gatewayArena) outcome() GatewayOutcome {
	o := a.out
	o.Calls = len(o.lat)
	if o.Calls > 0 {
		slices.Sort(o.lat)
		o.P50, o.P99, o.P999 = quantile(o.lat, 0.50), quantile(o.lat, 0.99), quantile(o.lat, 0.999)
		o.ReplyBytes = float64(o.bytes) / float64(o.Calls)
	}
	if a.spent > 0 {
		o.PerSecond = float64(o.Calls) / a.spent.Seconds()
	}
	if calls := o.Calls + o.Errors; calls > 0 {
		o.AllocsPerCall = float64(a.allocs) / float64(calls)
		o.BytesPerCall = float64(a.alloc) / float64(calls)
	}
	o.lat = nil
	return o
}

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// gatewayRequest builds the one call every worker sends: a Converse body
// and the headers aws-sdk-go-v2 would send with it, signed once. Nothing
// in the bench checks signatures (the emulators accept any, keel's gateway
// runs open on loopback, the proxy re-signs), so one signature serves
// every call and the load's client spends nothing on signing.
func gatewayRequest(ctx context.Context, m Model) ([]byte, http.Header, error) {
	body := fmt.Appendf(nil, `{"messages":[{"role":"user","content":[{"text":%q}]}],"inferenceConfig":{"maxTokens":%d}}`,
		gatewayPrompt, gatewayMaxTokens)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1/model/"+url.PathEscape(m.ID)+"/converse", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "keel-bench-gateway")
	if err := signRequest(ctx, req, body, m.Region); err != nil {
		return nil, nil, err
	}
	return body, req.Header, nil
}

// signRequest signs req, whose body is body, for Bedrock in region with
// the bench's fake credentials, replacing any signature it carried.
func signRequest(ctx context.Context, req *http.Request, body []byte, region string) error {
	creds, err := fakeCredentials.Retrieve(ctx)
	if err != nil {
		return err
	}
	for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256"} {
		req.Header.Del(h)
	}
	sum := sha256.Sum256(body)
	return v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "bedrock", region, time.Now())
}

// bareProxy is the proxy contender: httputil.ReverseProxy to upstream
// that re-signs each request with the bench's credentials, and nothing
// else, on an http.Server that speaks what the gateway speaks. It is given
// what any proxy under load should have, so that it costs what a
// re-signing proxy must and no more: a pool of copy buffers (without one,
// ReverseProxy allocates 32 KiB per response), and an upstream pool of as
// many idle connections per host as keel's transport
// (transport.DefaultMaxIdleConnsPerHost), so that neither middle
// re-handshakes where the other does not.
func bareProxy(upstream, region string) (string, func(), error) {
	target, err := url.Parse(upstream)
	if err != nil {
		return "", nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = transport.DefaultMaxIdleConnsPerHost
	p := &httputil.ReverseProxy{
		Transport:  tr,
		BufferPool: &proxyBuffers{},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			body, err := io.ReadAll(pr.Out.Body)
			if err == nil {
				err = signRequest(pr.Out.Context(), pr.Out, body, region)
			}
			if err != nil {
				// The transport fails the request with err: a 502.
				pr.Out.Body = io.NopCloser(errReader{err})
				return
			}
			pr.Out.Body = io.NopCloser(bytes.NewReader(body))
			pr.Out.ContentLength = int64(len(body))
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: gatewayCallTimeout, Protocols: plainProtocols()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln) // ErrServerClosed at stop
	}()
	return "http://" + ln.Addr().String(), func() {
		srv.Close()
		<-done
		tr.CloseIdleConnections()
	}, nil
}

// keelGateway is the keel contender: keel with its defaults sending to
// upstream (as keel serve --endpoint upstream without a configuration
// file), the gateway in front of its engine, open (the load is on
// loopback), served by the gateway's own Serve on its own listener. With
// logged, the gateway writes its access log as keel serve does, to
// io.Discard: the cost of formatting the lines, not of writing them out.
func keelGateway(logged bool) func(upstream, region string) (string, func(), error) {
	return func(upstream, region string) (string, func(), error) {
		k, err := keel.New(aws.Config{Region: region, Credentials: aws.NewCredentialsCache(fakeCredentials)}, keel.Options{Endpoint: upstream})
		if err != nil {
			return "", nil, err
		}
		eng := keelx.Engine(k)
		opts := gateway.Options{Engine: eng}
		if logged {
			opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}
		gw, err := gateway.New(opts)
		if err != nil {
			return "", nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			gw.Serve(ln, nil) // nil at Close
		}()
		return "http://" + ln.Addr().String(), func() {
			gw.Close()
			<-served
			eng.HTTPClient().CloseIdleConnections()
		}, nil
	}
}

// proxyBuffers is the proxy's pool of copy buffers.
type proxyBuffers struct{ p sync.Pool }

// proxyBuffer is the size of the proxy's copy buffers: ReverseProxy's own.
const proxyBuffer = 32 << 10

func (b *proxyBuffers) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, proxyBuffer)
}

func (b *proxyBuffers) Put(p []byte) { b.p.Put(&p) }

// errReader fails every read with its error.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
