package engine

import (
	"fmt"
	"testing"
)

func TestLabelSet(t *testing.T) {
	const haiku = "anthropic.claude-3-haiku-20240307-v1:0"
	tests := []struct {
		name  string
		set   *labelSet
		first []string // given first, in order
		value string
		want  string
	}{
		{name: "a new value while there is room", set: newRegionLabels(), value: "us-east-1", want: "us-east-1"},
		{name: "a new value past the bound", set: newRegionLabels(), first: junk("zz-junk-", maxRegionLabels), value: "us-east-1", want: otherLabel},
		{name: "a value seen before the bound was reached", set: newRegionLabels(), first: append([]string{"us-east-1"}, junk("zz-junk-", 2*maxRegionLabels)...),
			value: "us-east-1", want: "us-east-1"},
		{name: "a model of the table past the bound", set: newModelLabels(), first: junk("anthropic.claude-junk-", 2*maxModelLabels),
			value: haiku, want: haiku},
		{name: "its inference profile past the bound", set: newModelLabels(), first: junk("anthropic.claude-junk-", 2*maxModelLabels),
			value: "us." + haiku, want: "us." + haiku},
		{name: "an unknown model past the bound", set: newModelLabels(), first: junk("anthropic.claude-junk-", maxModelLabels),
			value: "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc", want: otherLabel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range tt.first {
				tt.set.label(v)
			}
			if got := tt.set.label(tt.value); got != tt.want {
				t.Fatalf("label(%q) = %q, want %q", tt.value, got, tt.want)
			}
		})
	}
}

func junk(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(prefix, i)
	}
	return out
}
