package bedrock

import "testing"

func TestOp(t *testing.T) {
	tests := []struct {
		op               Op
		valid, streaming bool
	}{
		{Converse, true, false},
		{ConverseStream, true, true},
		{Invoke, true, false},
		{InvokeWithResponseStream, true, true},
		{CountTokens, true, false},
		{"converse-stream ", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		if tt.op.Valid() != tt.valid || tt.op.Streaming() != tt.streaming {
			t.Errorf("%q: valid %v, streaming %v; want %v, %v", tt.op, tt.op.Valid(), tt.op.Streaming(), tt.valid, tt.streaming)
		}
	}
}
