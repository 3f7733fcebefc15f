package cache

import (
	"errors"
	"testing"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"sorted keys at every level", `{"b":1,"a":{"d":[{"z":1,"y":2}],"c":null}}`, `{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}`},
		{"whitespace dropped", "{ \"a\" :\t[ 1 , 2 ]\n}", `{"a":[1,2]}`},
		{"numbers kept exactly", `{"t":0.0,"u":1E3,"v":-0,"w":12345678901234567890}`, `{"t":0.0,"u":1E3,"v":-0,"w":12345678901234567890}`},
		{"escapes made minimal", `{"s":"caf\u00e9 \/ \"q\" \n"}`, `{"s":"café / \"q\" \u000a"}`},
		{"escaped key sorted by its value", `{"b":1,"\u0061":2}`, `{"a":2,"b":1}`},
		{"literals", `{"a":true,"b":false,"c":null}`, `{"a":true,"b":false,"c":null}`},
		{"an escaped U+FFFD is kept", `{"s":"\ufffd"}`, "{\"s\":\"\ufffd\"}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical([]byte(tt.in))
			if err != nil || string(got) != tt.want {
				t.Errorf("Canonical(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCanonicalRefuses(t *testing.T) {
	for _, in := range []string{
		``, `not json`, `[1,2]`, `"s"`, `{"a":1`, `{"a":1}{}`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":1}}`,
		"{\"s\":\"\xff\"}", `{"s":"\ud800"}`, `{"a":01}`,
	} {
		if got, err := Canonical([]byte(in)); !errors.Is(err, ErrNotJSON) {
			t.Errorf("Canonical(%q) = %s, %v; want ErrNotJSON", in, got, err)
		}
	}
}

func TestKeyOf(t *testing.T) {
	base := Request{Family: "converse", Model: "m", Body: []byte(`{"messages":[{"role":"user"}],"inferenceConfig":{"temperature":0}}`)}
	k0, err := KeyOf(base)
	if err != nil {
		t.Fatal(err)
	}
	same := base
	same.Body = []byte(`{ "inferenceConfig": {"temperature": 0}, "messages": [ {"role": "user"} ] }`)
	if k, _ := KeyOf(same); k != k0 {
		t.Error("two serialisations of one request got different keys")
	}
	hdr := base
	hdr.Header = []string{"B", "2", "A", "1"}
	hdr2 := base
	hdr2.Header = []string{"A", "1", "B", "2"}
	kh, _ := KeyOf(hdr)
	if kh2, _ := KeyOf(hdr2); kh != kh2 || kh == k0 {
		t.Error("header pairs: order must not matter, presence must")
	}
	for _, tt := range []struct {
		name   string
		change func(*Request)
	}{
		{"family", func(r *Request) { r.Family = "invoke" }},
		{"model", func(r *Request) { r.Model = "m2" }},
		{"tier", func(r *Request) { r.Tier = "flex" }},
		{"caller", func(r *Request) { r.Caller = "alice" }},
		{"body", func(r *Request) {
			r.Body = []byte(`{"messages":[{"role":"user"}],"inferenceConfig":{"temperature":0.0}}`)
		}},
		{"field boundaries", func(r *Request) { r.Model, r.Tier = "", "m" }},
	} {
		r := base
		tt.change(&r)
		if k, err := KeyOf(r); err != nil || k == k0 {
			t.Errorf("%s: changing it kept the key (err %v)", tt.name, err)
		}
	}
	if _, err := KeyOf(Request{Family: "converse", Body: []byte("plain text")}); !errors.Is(err, ErrNotJSON) {
		t.Errorf("a text body: err %v, want ErrNotJSON", err)
	}
}
