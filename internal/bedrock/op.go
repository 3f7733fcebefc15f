package bedrock

// Op is a Bedrock Runtime operation, named by its URL path suffix.
type Op string

// Operations keel handles.
const (
	Converse                 Op = "converse"
	ConverseStream           Op = "converse-stream"
	Invoke                   Op = "invoke"
	InvokeWithResponseStream Op = "invoke-with-response-stream"
	CountTokens              Op = "count-tokens"
)

// Streaming reports whether the operation answers with an event stream.
func (o Op) Streaming() bool { return o == ConverseStream || o == InvokeWithResponseStream }

// Valid reports whether o is one of the operations above.
func (o Op) Valid() bool {
	switch o {
	case Converse, ConverseStream, Invoke, InvokeWithResponseStream, CountTokens:
		return true
	}
	return false
}
