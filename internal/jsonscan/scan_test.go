package jsonscan_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/jsonscan"
)

// decode reads any value as encoding/json decodes it into an any.
func decode(s *jsonscan.Scanner) any {
	switch c := s.Peek(); {
	case c == '{':
		m := map[string]any{}
		s.Object(func(key []byte) { m[string(key)] = decode(s) })
		return m
	case c == '[':
		a := []any{}
		s.Array(func() { a = append(a, decode(s)) })
		return a
	case c == '"':
		return string(s.String(nil))
	case c == 't' || c == 'f':
		v := s.Value()
		return string(v) == "true"
	case c == 'n':
		s.Null()
		return nil
	}
	return s.Float()
}

// FuzzScan checks the scanner against encoding/json: the same documents are
// valid, they decode to the same values, and StringLen agrees with String.
func FuzzScan(f *testing.F) {
	for _, seed := range []string{
		`{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":3,"stopSequences":["x"]}}`,
		`{"system":[{"text":"\ud83d\ude00\u00e9"}],"messages":[{"content":[{"toolResult":{"content":[{"text":"t"}]}}]}]}`,
		`{"a":[1,-2.5e-3,true,false,null,{"b":"c"}]}`,
		`{"a\"b":"\ud800x\udc00\\\/\b\f\n\r\t","\u0041":"a` + "\xff\xc3\xa9" + `"}`,
		`[01]`, `-`, `1.`, `1e+`, `"` + "\x01" + `"`, `{"a":1,}`, `[1 2]`, ` null `, `{}x`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := jsonscan.New(b, 0)
		got := decode(&s)
		s.End()
		if valid := json.Valid(b); valid == s.Failed() {
			t.Fatalf("%q: scanner error %v, json.Valid %v", b, s.Err(), valid)
		}
		if s.Failed() {
			return
		}
		var want any
		if err := json.Unmarshal(b, &want); err != nil {
			return // a number out of float64's range: valid, but not decodable
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decoded %#v, encoding/json %#v", b, got, want)
		}
		lens := jsonscan.New(b, 0)
		var walk func()
		walk = func() {
			switch lens.Peek() {
			case '{':
				lens.Object(func([]byte) { walk() })
			case '[':
				lens.Array(walk)
			case '"':
				at := lens.Offset()
				n := lens.StringLen()
				str := jsonscan.New(b[at:], 0)
				if m := len(str.String(nil)); m != n {
					t.Fatalf("%q at %d: StringLen %d, String %d bytes", b, at, n, m)
				}
			}
		}
		walk()
	})
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		read func(*jsonscan.Scanner)
		want string
	}{
		{name: "empty", body: ``, want: "unexpected end of JSON at byte 0"},
		{name: "unterminated", body: `{"a":"abc`, want: "unterminated string at byte 9"},
		{name: "escape at the end", body: `"ab\`, want: "unterminated string at byte 3"},
		{name: "trailing data", body: `{} {}`, want: "data after the top-level value at byte 3"},
		{name: "missing colon", body: `{"a" 1}`, want: "expected ':' after a key at byte 5"},
		{name: "key not a string", body: `{1:2}`, want: "expected a string key at byte 1"},
		{name: "trailing comma", body: `{"a":1,}`, want: "expected a string key at byte 7"},
		{name: "bad literal", body: `{"a":tru}`, want: "invalid literal at byte 5"},
		{name: "leading zero", body: `{"a":01}`, want: "invalid number at byte 5"},
		{name: "bare minus", body: `[-]`, want: "invalid number at byte 1"},
		{name: "no fraction digits", body: `[1.]`, want: "invalid number at byte 1"},
		{name: "no exponent digits", body: `[1e+]`, want: "invalid number at byte 1"},
		{name: "control character", body: "{\"a\":\"x\ty\"}", want: "control character in string at byte 7"},
		{name: "bad escape", body: `{"a":"\x"}`, want: "invalid escape in string at byte 6"},
		{name: "bad unicode escape", body: `{"a":"\u12G4"}`, want: `invalid \u escape at byte 6`},
		{name: "missing comma in object", body: `{"a":1 "b":2}`, want: "expected ',' or '}' in an object at byte 7"},
		{name: "missing comma in array", body: `[1 2]`, want: "expected ',' or ']' in an array at byte 3"},
		{name: "unexpected character", body: `[}`, want: "unexpected character at byte 1"},
		{name: "nested too deeply", body: strings.Repeat("[", 10001) + strings.Repeat("]", 10001), want: "nested too deeply at byte 10000"},
		{name: "not an object", body: `[]`, read: func(s *jsonscan.Scanner) { s.Object(func([]byte) {}) },
			want: "expected an object at byte 0"},
		{name: "not an array", body: `{}`, read: func(s *jsonscan.Scanner) { s.Array(func() {}) },
			want: "expected an array at byte 0"},
		{name: "not a string", body: ` 5`, read: func(s *jsonscan.Scanner) { s.String(nil) },
			want: "expected a string at byte 1"},
		{name: "fraction for an int", body: `[5.5]`, read: func(s *jsonscan.Scanner) { s.Array(func() { s.Int() }) },
			want: "number is not an integer at byte 1"},
		{name: "exponent for an int", body: `1e3`, read: func(s *jsonscan.Scanner) { s.Int() },
			want: "number is not an integer at byte 0"},
		{name: "int too large", body: `99999999999999999999`, read: func(s *jsonscan.Scanner) { s.Int() },
			want: "number out of range at byte 0"},
		{name: "int too small", body: `-9223372036854775809`, read: func(s *jsonscan.Scanner) { s.Int() },
			want: "number out of range at byte 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := jsonscan.New([]byte(tt.body), 0)
			if tt.read != nil {
				tt.read(&s)
			} else {
				s.Skip()
				s.End()
			}
			err := s.Err()
			var se *jsonscan.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want a *SyntaxError", err)
			}
			if got := se.Msg + " at byte " + strconv.Itoa(se.Offset); got != tt.want {
				t.Errorf("error %q, want %q", got, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "jsonscan: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			// After an error every read returns at once with zero values.
			if s.Peek() != 0 || s.String(nil) != nil || s.Int() != 0 || s.Value() != nil {
				t.Error("a read after the error returned a value")
			}
		})
	}
}

func TestValues(t *testing.T) {
	s := jsonscan.New([]byte(` {"i":-42,"max":9223372036854775807,"min":-9223372036854775808,"f":2.5e3,"big":1e400,`+
		`"s":"a\u00e9\ud83d\ude00","esc\u0061ped":"x","n":null,"v":{"a":[1,"]"]},"skipped":[{"x":1}],"after":true} `), 0)
	var (
		i, max, min int
		f, big      float64
		str, esc    string
		null        bool
		value       string
		keys        []string
	)
	s.Object(func(key []byte) {
		keys = append(keys, string(key))
		switch string(key) {
		case "i":
			i = s.Int()
		case "max":
			max = s.Int()
		case "min":
			min = s.Int()
		case "f":
			f = s.Float()
		case "big":
			big = s.Float()
		case "s":
			str = string(s.String(nil))
		case "escaped":
			esc = string(s.String(nil))
		case "n":
			null = s.Null()
		case "v":
			value = string(s.Value())
		}
	})
	s.End()
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if i != -42 || max != math.MaxInt || min != math.MinInt || f != 2500 || !math.IsInf(big, 1) ||
		str != "aé😀" || esc != "x" || !null || value != `{"a":[1,"]"]}` {
		t.Errorf("read i=%d max=%d min=%d f=%v big=%v s=%q escaped=%q null=%v value=%q", i, max, min, f, big, str, esc, null, value)
	}
	if want := "i max min f big s escaped n v skipped after"; strings.Join(keys, " ") != want {
		t.Errorf("keys %q, want %q", keys, want)
	}
}

func TestDepth(t *testing.T) {
	for _, tt := range []struct {
		depth, limit int
		ok           bool
	}{{3, 3, true}, {4, 3, false}, {10000, 0, true}, {10001, 0, false}} {
		body := strings.Repeat(`[`, tt.depth) + strings.Repeat(`]`, tt.depth)
		s := jsonscan.New([]byte(body), tt.limit)
		s.Skip()
		if s.Failed() == tt.ok {
			t.Errorf("depth %d, limit %d: error %v, want ok %v", tt.depth, tt.limit, s.Err(), tt.ok)
		}
		if sub := s.Sub([]byte("[[]]")); tt.limit == 3 && tt.ok {
			sub.Skip()
			if sub.Failed() {
				t.Errorf("a Sub after the document failed: %v", sub.Err())
			}
		}
	}
	// A Sub starts as deep as its parent.
	s := jsonscan.New([]byte(`[[`), 3)
	s.Array(func() {
		inner := s.Sub([]byte(`[[[]]]`))
		inner.Skip()
		if inner.Err() == nil {
			t.Error("a Sub at depth 1 of 3 read three more levels")
		}
		s.Fail("stop")
	})
}

func TestDoesNotAllocate(t *testing.T) {
	body := []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello \u00e9 there"},` +
		`"usage":{"input_tokens":12,"output_tokens":3.0},"tags":["a","b"],"x":null}`)
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		s := jsonscan.New(body, 0)
		total := 0
		s.Object(func(key []byte) {
			switch string(key) {
			case "delta":
				s.Object(func(key []byte) {
					if string(key) == "text" {
						buf = s.String(buf[:0])
					}
				})
			case "usage":
				s.Object(func([]byte) { total += int(s.Float()) })
			case "tags":
				s.Array(func() { total += s.StringLen() })
			case "type":
				total += len(s.Raw())
			}
		})
		s.End()
		if s.Failed() || total != 36 {
			t.Fatalf("total %d, error %v", total, s.Err())
		}
	}); n != 0 {
		t.Errorf("%v allocations per scan", n)
	}
}
