package cache

import "testing"

func TestDeterministic(t *testing.T) {
	tests := []struct {
		name, family, body string
		want               bool
	}{
		{"converse temperature 0", "converse", `{"inferenceConfig":{"maxTokens":5,"temperature":0}}`, true},
		{"converse temperature 0.0", "converse", `{"inferenceConfig":{"temperature":0.0}}`, true},
		{"converse no temperature", "converse", `{"inferenceConfig":{"maxTokens":5}}`, false},
		{"converse no inferenceConfig", "converse", `{"messages":[]}`, false},
		{"converse temperature 0.2", "converse", `{"inferenceConfig":{"temperature":0.2}}`, false},
		{"converse top-level temperature is not Converse's", "converse", `{"temperature":0}`, false},
		{"anthropic stream", "invoke-stream", `{"temperature":0,"max_tokens":5}`, true},
		{"converse stream", "converse-stream", `{"inferenceConfig":{"temperature":0}}`, true},
		{"anthropic", "invoke", `{"anthropic_version":"bedrock-2023-05-31","temperature":0,"max_tokens":5}`, true},
		{"anthropic default (1.0)", "invoke", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5}`, false},
		{"nova", "invoke", `{"inferenceConfig":{"temperature":0}}`, true},
		{"titan", "invoke", `{"textGenerationConfig":{"temperature":0}}`, true},
		{"titan 0.7", "invoke", `{"textGenerationConfig":{"temperature":0.7}}`, false},
		{"two temperatures, one not 0", "invoke", `{"temperature":0,"inferenceConfig":{"temperature":1}}`, false},
		{"null temperature", "invoke", `{"temperature":null}`, false},
		{"string temperature", "invoke", `{"temperature":"0"}`, false},
		{"not JSON", "invoke", `temperature=0`, false},
		{"broken JSON", "converse", `{"inferenceConfig":{"temperature":0}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Deterministic(tt.family, []byte(tt.body)); got != tt.want {
				t.Errorf("Deterministic(%s, %s) = %v, want %v", tt.family, tt.body, got, tt.want)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Mode
		bad  bool
	}{{"", ModeOff, false}, {"off", ModeOff, false}, {"deterministic", ModeDeterministic, false}, {"all", ModeAll, false}, {"some", ModeOff, true}} {
		m, err := ParseMode(tt.in)
		if m != tt.want || (err != nil) != tt.bad {
			t.Errorf("ParseMode(%q) = %v, %v", tt.in, m, err)
		}
		if !tt.bad && tt.in != "" && m.String() != tt.in {
			t.Errorf("%v.String() = %q", m, m.String())
		}
	}
}
