package batch

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/keel-run/keel/internal/attempt"
)

// Format is the shape of an input record.
type Format string

// Input formats.
const (
	// FormatBedrock is Amazon Bedrock's batch-inference record:
	// {"recordId": "...", "modelInput": {...}}, where modelInput is the
	// model's native InvokeModel body (for Anthropic models, the Messages
	// body). It is sent with InvokeModel to the model named by --model.
	FormatBedrock Format = "bedrock"
	// FormatSimple is {"id": ..., "prompt": "..."}, with optional "system",
	// "model", "maxTokens" and "temperature". It is sent with Converse.
	FormatSimple Format = "simple"
	// FormatAuto recognises each line by its keys.
	FormatAuto Format = ""
)

// ParseFormat reads a format name: "auto" (or ""), "bedrock", "simple".
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return FormatAuto, nil
	case "bedrock":
		return FormatBedrock, nil
	case "simple":
		return FormatSimple, nil
	}
	return "", fmt.Errorf("unknown input format %q; want auto, bedrock or simple", s)
}

// Record is one input line, located in the file so its request can be read
// again when it is sent (the input is not held in memory).
type Record struct {
	ID     string          // the record id as text (a number's literal, a string's value)
	RawID  json.RawMessage // the id exactly as written, echoed in the result line
	Line   int             // 1-based line number
	Offset int64           // of the line's first byte
	Length int             // of the line, without its end of line
	Format Format
	Model  string // the record's own model; "" uses InputOptions.Model
}

// Input is a validated input file.
type Input struct {
	Path    string
	Size    int64
	SHA256  string // hex SHA-256 of the whole file: a resumed run must read the same input
	Records []Record
	Formats map[Format]int
}

// InputOptions say how to read an input file.
type InputOptions struct {
	// Format forces every line to one format; FormatAuto recognises each line.
	Format Format
	// Model is the model for records that name none. Bedrock-format records
	// never name one (Bedrock gives the model per job), so they need it.
	Model string
	// MaxErrors stops reading after this many bad lines; zero means 20.
	MaxErrors int
}

// InputError lists the bad lines of an input file.
type InputError struct {
	Path     string
	Problems []string // "line 3: ..."
	More     bool     // reading stopped at MaxErrors
}

func (e *InputError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "batch: %s: ", e.Path)
	if len(e.Problems) == 1 {
		b.WriteString(e.Problems[0])
	} else {
		fmt.Fprintf(&b, "%d bad lines:", len(e.Problems))
		for _, p := range e.Problems {
			b.WriteString("\n  ")
			b.WriteString(p)
		}
	}
	if e.More {
		b.WriteString("\n  (stopped there; there may be more)")
	}
	return b.String()
}

// ReadInput reads and validates every line of the input file at path
// before anything is sent, so a bad line 9,000 is found before record 1 is
// paid for. Blank lines are skipped; a byte-order mark and CRLF line ends are
// accepted. Record ids must be unique. Lines that decoding would change
// without a word are refused: a key twice in one object (the last would
// win) and bytes that are not UTF-8 (they would become U+FFFD). Bedrock-format
// records without opts.Model are one problem, however many there are.
func ReadInput(path string, opts InputOptions) (*Input, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	defer f.Close()
	max := opts.MaxErrors
	if max <= 0 {
		max = 20
	}
	in := &Input{Path: path, Formats: map[Format]int{}}
	ie := &InputError{Path: path}
	seen := map[string]int{}
	noModel, noModelAt := 0, -1 // Bedrock-format records without a model; their problem's index
	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(f, h), 1<<16)
	var off int64
	for n := 1; ; n++ {
		line, rerr := br.ReadBytes('\n')
		start := off
		off += int64(len(line))
		if rerr != nil && rerr != io.EOF {
			return nil, fmt.Errorf("batch: reading %s: %w", path, rerr)
		}
		content := bytes.TrimRight(line, "\r\n")
		if n == 1 && bytes.HasPrefix(content, []byte("\xef\xbb\xbf")) {
			content = content[3:]
			start += 3
		}
		if len(bytes.TrimSpace(content)) > 0 {
			rec, perr := parseLine(content, opts)
			if errors.Is(perr, errNoModel) {
				noModel++
				if noModelAt >= 0 {
					continue // said once, counted at the end
				}
				noModelAt = len(ie.Problems)
			}
			if perr == nil {
				if first, dup := seen[rec.ID]; dup {
					perr = fmt.Errorf("record id %s is already used on line %d; ids must be unique", rec.RawID, first)
				}
			}
			if perr != nil {
				ie.Problems = append(ie.Problems, fmt.Sprintf("line %d: %v", n, perr))
				if len(ie.Problems) >= max {
					ie.More = true
					break
				}
			} else {
				seen[rec.ID] = n
				rec.Line, rec.Offset, rec.Length = n, start, len(content)
				in.Records = append(in.Records, rec)
				in.Formats[rec.Format]++
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	if noModel > 1 {
		ie.Problems[noModelAt] = strings.Replace(ie.Problems[noModelAt], "this Bedrock-format record names",
			fmt.Sprintf("%d Bedrock-format records (this line and %d more) name", noModel, noModel-1), 1)
	}
	if len(ie.Problems) > 0 {
		return nil, ie
	}
	if len(in.Records) == 0 {
		return nil, fmt.Errorf("batch: %s has no records", path)
	}
	in.Size = off
	in.SHA256 = hex.EncodeToString(h.Sum(nil))
	return in, nil
}

// line is every key either format may use.
type line struct {
	RecordID    json.RawMessage `json:"recordId"`
	ModelInput  json.RawMessage `json:"modelInput"`
	ID          json.RawMessage `json:"id"`
	Prompt      *string         `json:"prompt"`
	System      *string         `json:"system"`
	Model       *string         `json:"model"`
	MaxTokens   json.RawMessage `json:"maxTokens"`
	Temperature *float64        `json:"temperature"`
}

var (
	bedrockKeys = []string{"recordId", "modelInput"}
	simpleKeys  = []string{"id", "prompt", "system", "model", "maxTokens", "temperature"}
)

const wantShapes = `want {"recordId": "...", "modelInput": {...}} (Bedrock batch format) or {"id": "...", "prompt": "..."} (simple format)`

// errNoModel is a Bedrock-format record read without a model; ReadInput
// reports it once for the file.
var errNoModel = errors.New("this Bedrock-format record names no model (Bedrock gives the model per job); pass the model id with --model")

func parseLine(b []byte, opts InputOptions) (Record, error) {
	if !utf8.Valid(b) {
		i := invalidUTF8(b)
		return Record{}, fmt.Errorf("not valid UTF-8 (byte %#x at column %d); the line is not sent: decoding would replace the byte with U+FFFD and change the text; save the file as UTF-8", b[i], i+1)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return Record{}, fmt.Errorf("not valid JSON (at byte %d: %v); each line must be one JSON object", se.Offset, err)
		}
		return Record{}, fmt.Errorf("not a JSON object; %s", wantShapes)
	}
	if i := loneSurrogate(b); i >= 0 {
		return Record{}, fmt.Errorf("escape %s at column %d is half of a UTF-16 surrogate pair, without its other half: it is not a character; the line is not sent: decoding would replace it with U+FFFD and change the text", b[i:i+6], i+1)
	}
	if k := duplicateKey(b); k != "" {
		return Record{}, fmt.Errorf("key %q appears twice in one object; a JSON decoder would keep only the last, so say it once", k)
	}
	format := opts.Format
	if format == FormatAuto {
		switch {
		case keys["modelInput"] != nil || keys["recordId"] != nil:
			format = FormatBedrock
		case keys["prompt"] != nil || keys["id"] != nil:
			format = FormatSimple
		default:
			return Record{}, fmt.Errorf("not a batch record; %s", wantShapes)
		}
	}
	allowed := bedrockKeys
	if format == FormatSimple {
		allowed = simpleKeys
	}
	var unknown []string
	for k := range keys {
		if !contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Record{}, fmt.Errorf("unknown key %q in a %s-format record; want %s", unknown[0], format, strings.Join(allowed, ", "))
	}
	var l line
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&l); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Record{}, fmt.Errorf("%q must be %s, got a JSON %s", te.Field, typeName(te.Field), te.Value)
		}
		return Record{}, fmt.Errorf("%v", strings.TrimPrefix(err.Error(), "json: "))
	}
	rec := Record{Format: format}
	switch format {
	case FormatBedrock:
		id, err := recordID(l.RecordID, "recordId", false)
		if err != nil {
			return Record{}, err
		}
		rec.ID, rec.RawID = id, l.RecordID
		if len(bytes.TrimSpace(l.ModelInput)) == 0 || bytes.TrimSpace(l.ModelInput)[0] != '{' {
			return Record{}, errors.New(`"modelInput" must be a JSON object: the model's InvokeModel body`)
		}
		if opts.Model == "" {
			return Record{}, errNoModel
		}
	case FormatSimple:
		id, err := recordID(l.ID, "id", true)
		if err != nil {
			return Record{}, err
		}
		rec.ID, rec.RawID = id, l.ID
		if l.Prompt == nil || strings.TrimSpace(*l.Prompt) == "" {
			return Record{}, errors.New(`"prompt" must be a non-empty string`)
		}
		if l.Model != nil && *l.Model == "" {
			return Record{}, errors.New(`"model" is empty; leave it out to use --model`)
		}
		if l.Model == nil && opts.Model == "" {
			return Record{}, errors.New(`the record names no "model" and no --model was given`)
		}
		if l.Model != nil {
			rec.Model = *l.Model
		}
		if l.MaxTokens != nil {
			if n, err := strconv.ParseInt(string(l.MaxTokens), 10, 32); err != nil || n < 1 {
				return Record{}, fmt.Errorf(`"maxTokens" must be a positive integer, got %s`, l.MaxTokens)
			}
		}
		if l.Temperature != nil && (*l.Temperature < 0 || *l.Temperature > 1) {
			return Record{}, fmt.Errorf(`"temperature" must be between 0 and 1, got %v`, *l.Temperature)
		}
	default:
		return Record{}, fmt.Errorf("unknown input format %q", format)
	}
	return rec, nil
}

// recordID checks an id: a non-empty string, or (when numbers are allowed)
// an integer.
func recordID(raw json.RawMessage, key string, numbers bool) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", fmt.Errorf("the record has no %q; keel needs one per record to resume without sending a record twice", key)
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || s == "" {
			return "", fmt.Errorf("%q must be a non-empty string", key)
		}
		return s, nil
	}
	if numbers {
		var n json.Number
		if err := json.Unmarshal(raw, &n); err == nil {
			if _, err := n.Int64(); err == nil {
				return n.String(), nil
			}
		}
		return "", fmt.Errorf("%q must be a string or an integer, got %s", key, raw)
	}
	return "", fmt.Errorf("%q must be a string, got %s", key, raw)
}

// invalidUTF8 returns the index of the first byte of b that is not UTF-8.
func invalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// loneSurrogate returns the offset of the first \uD800-\uDFFF escape in
// the JSON text b that is not a high surrogate followed at once by an
// escaped low one, or -1. b must be valid JSON.
func loneSurrogate(b []byte) int {
	hex4 := func(i int) (rune, bool) { // the \uXXXX escape at b[i:], if one
		if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 32)
		return rune(n), err == nil
	}
	in := false
	for i := 0; i < len(b); i++ {
		switch {
		case !in:
			in = b[i] == '"'
		case b[i] == '"':
			in = false
		case b[i] == '\\':
			r, ok := hex4(i)
			if !ok {
				i++ // a two-byte escape: \", \\, \n...
				continue
			}
			if utf16.IsSurrogate(r) {
				lo, ok := hex4(i + 6)
				if r >= 0xdc00 || !ok || lo < 0xdc00 || lo > 0xdfff {
					return i
				}
				i += 6
			}
			i += 5
		}
	}
	return -1
}

// duplicateKey returns the path (modelInput.messages[0].role) of the first
// key that appears twice in one object of the JSON value b, or "". b must
// be valid JSON.
func duplicateKey(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	k, _ := walkKeys(dec, "")
	return k
}

func walkKeys(dec *json.Decoder, path string) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return "", err
			}
			k, _ := kt.(string)
			p := k
			if path != "" {
				p = path + "." + k
			}
			if seen[k] {
				return p, nil
			}
			seen[k] = true
			if d, err := walkKeys(dec, p); d != "" || err != nil {
				return d, err
			}
		}
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if d, err := walkKeys(dec, fmt.Sprintf("%s[%d]", path, i)); d != "" || err != nil {
				return d, err
			}
		}
	default:
		return "", nil
	}
	_, err = dec.Token() // the closing delimiter
	return "", err
}

func typeName(field string) string {
	switch field {
	case "temperature":
		return "a number"
	}
	return "a string"
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// request builds the Bedrock Runtime call for a record from its line.
type request struct {
	op    attempt.Op
	model string
	body  []byte
}

// buildRequest turns a record's line into its call. opts are those the input
// was read with; maxTokens is the default for simple records that set none
// (zero: the model's own default).
func buildRequest(b []byte, rec Record, model string, maxTokens int) (request, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&l); err != nil {
		return request{}, fmt.Errorf("line %d changed since it was read: %v", rec.Line, err)
	}
	// The file is read again at send time: make sure it is still the same record.
	rawID, key, numbers := l.ID, "id", true
	if rec.Format == FormatBedrock {
		rawID, key, numbers = l.RecordID, "recordId", false
	}
	if id, err := recordID(rawID, key, numbers); err != nil || id != rec.ID {
		return request{}, fmt.Errorf("line %d changed since it was read (record %s is not there any more); do not edit the input of a running batch", rec.Line, rec.RawID)
	}
	switch rec.Format {
	case FormatBedrock:
		return request{op: attempt.Invoke, model: model, body: []byte(l.ModelInput)}, nil
	case FormatSimple:
		if l.Prompt == nil {
			return request{}, fmt.Errorf("line %d changed since it was read: no prompt", rec.Line)
		}
		if l.Model != nil {
			model = *l.Model
		}
		type text struct {
			Text string `json:"text"`
		}
		type message struct {
			Role    string `json:"role"`
			Content []text `json:"content"`
		}
		type inference struct {
			MaxTokens   int      `json:"maxTokens,omitempty"`
			Temperature *float64 `json:"temperature,omitempty"`
		}
		body := struct {
			Messages        []message  `json:"messages"`
			System          []text     `json:"system,omitempty"`
			InferenceConfig *inference `json:"inferenceConfig,omitempty"`
		}{Messages: []message{{Role: "user", Content: []text{{Text: *l.Prompt}}}}}
		if l.System != nil && *l.System != "" {
			body.System = []text{{Text: *l.System}}
		}
		mt := maxTokens
		if l.MaxTokens != nil {
			n, _ := strconv.Atoi(string(l.MaxTokens))
			mt = n
		}
		if mt > 0 || l.Temperature != nil {
			body.InferenceConfig = &inference{MaxTokens: mt, Temperature: l.Temperature}
		}
		out, err := json.Marshal(body)
		if err != nil {
			return request{}, err
		}
		return request{op: attempt.Converse, model: model, body: out}, nil
	}
	return request{}, fmt.Errorf("line %d: unknown format %q", rec.Line, rec.Format)
}
