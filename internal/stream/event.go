package stream

import (
	"encoding/base64"
	"errors"

	"github.com/keel-run/keel/internal/jsonscan"
)

// Format is the kind of event stream: ConverseStream's events, or
// InvokeModelWithResponseStream's chunks, whose bytes are the model's own
// stream events (Anthropic Messages, Nova, Llama, Titan, ...).
type Format uint8

// Formats.
const (
	Converse Format = iota + 1
	Invoke
)

// Kind says what an event does to the reply.
type Kind uint8

// Kinds of events.
const (
	// KindOther is an event keel does not interpret; it passes through.
	KindOther Kind = iota
	// KindStart opens the message (messageStart, message_start). It carries
	// no content: a failure after it is still "before the first content".
	KindStart
	// KindBlockStart opens a content block (contentBlockStart,
	// content_block_start).
	KindBlockStart
	// KindDelta carries content: text, tool input, reasoning.
	KindDelta
	// KindBlockStop closes a content block.
	KindBlockStop
	// KindStop ends the message with a stop reason (messageStop,
	// message_delta, Nova's messageStop).
	KindStop
	// KindMetadata carries usage and metrics after the stop (ConverseStream's
	// metadata, Anthropic's message_stop).
	KindMetadata
)

// Block is the type of a content block.
type Block uint8

// Blocks.
const (
	BlockNone      Block = iota
	BlockText            // text
	BlockTool            // tool use (its input arrives as JSON deltas)
	BlockReasoning       // reasoning / extended thinking, signatures, redacted thinking
	BlockOther           // citations, images, anything else
)

// Usage is token usage as a stream reports it.
type Usage struct {
	InputTokens           int
	OutputTokens          int
	CacheReadInputTokens  int
	CacheWriteInputTokens int
}

// Add returns u + v, field by field.
func (u Usage) Add(v Usage) Usage {
	return Usage{u.InputTokens + v.InputTokens, u.OutputTokens + v.OutputTokens,
		u.CacheReadInputTokens + v.CacheReadInputTokens, u.CacheWriteInputTokens + v.CacheWriteInputTokens}
}

// Event is what Parser found in one event frame.
type Event struct {
	Kind  Kind
	Block Block // for KindBlockStart and KindDelta
	// Index is the content block index, or -1 when the event names none.
	Index int
	// Text is the text a text delta carries, unescaped; valid until the
	// next Parse. Empty for other events.
	Text []byte
	// Usage holds the counts the event reports; HasInput and HasOutput say
	// which of them it carried.
	Usage               Usage
	HasInput, HasOutput bool
	// Final marks the stream's last event (ConverseStream's metadata; an
	// InvokeModel chunk carrying amazon-bedrock-invocationMetrics, or
	// Anthropic's message_stop). A body that ends before it is truncated,
	// whatever the SDK says.
	Final bool
	// Anthropic reports an Anthropic Messages event inside an InvokeModel chunk.
	Anthropic bool
	// Unparsed reports a payload that is not the JSON keel expected. The
	// event passes through, but keel no longer knows what the reader has.
	Unparsed bool
}

// Parser reads the JSON payload of event frames. It keeps scratch buffers
// between calls and allocates nothing per event once they have grown. The
// zero Parser is ready to use.
type Parser struct {
	text  []byte // unescaped delta text
	esc   []byte // a chunk's base64, unescaped
	inner []byte // a chunk's bytes, decoded
}

// errNotChunk reports an InvokeModel event without base64 bytes.
var errNotChunk = errors.New("stream: chunk without bytes")

// Parse reads one event frame of the given format. Exception and error
// frames are not events; callers handle them before.
func (p *Parser) Parse(format Format, f *Frame) Event {
	p.text = p.text[:0]
	ev := Event{Index: -1}
	if format == Converse {
		p.converse(string(f.EventType), f.Payload, &ev)
		return ev
	}
	if string(f.EventType) != "chunk" {
		return ev // an event InvokeModelWithResponseStream does not define: pass it on
	}
	inner, err := p.chunkBytes(f.Payload)
	if err != nil {
		ev.Unparsed = true
		return ev
	}
	p.chunk(inner, &ev)
	return ev
}

// Inner returns the decoded bytes of the last InvokeModel chunk parsed.
func (p *Parser) Inner() []byte { return p.inner }

// converse reads a ConverseStream event: its type is in the :event-type
// header, its fields in the JSON payload.
func (p *Parser) converse(eventType string, payload []byte, ev *Event) {
	s := jsonscan.New(payload, maxDepth)
	switch eventType {
	case "messageStart":
		ev.Kind = KindStart
		return
	case "contentBlockStart":
		ev.Kind = KindBlockStart
		ev.Block = BlockOther
	case "contentBlockDelta":
		ev.Kind = KindDelta
		ev.Block = BlockOther
	case "contentBlockStop":
		ev.Kind = KindBlockStop
	case "messageStop":
		ev.Kind = KindStop
		return
	case "metadata":
		ev.Kind = KindMetadata
		ev.Final = true
	default:
		return
	}
	s.Object(func(key []byte) {
		switch string(key) {
		case "contentBlockIndex":
			ev.Index = integer(&s)
		case "start": // contentBlockStart
			s.Object(func(key []byte) {
				if string(key) == "toolUse" {
					ev.Block = BlockTool
				}
			})
		case "delta": // contentBlockDelta
			s.Object(func(key []byte) {
				switch string(key) {
				case "text":
					ev.Block = BlockText
					p.text = s.String(p.text)
				case "toolUse":
					ev.Block = BlockTool
				case "reasoningContent":
					ev.Block = BlockReasoning
				}
			})
		case "usage": // metadata
			ev.HasInput, ev.HasOutput = true, true
			s.Object(func(key []byte) {
				switch string(key) {
				case "inputTokens":
					ev.Usage.InputTokens = integer(&s)
				case "outputTokens":
					ev.Usage.OutputTokens = integer(&s)
				case "cacheReadInputTokens", "cacheReadInputTokenCount":
					ev.Usage.CacheReadInputTokens = integer(&s)
				case "cacheWriteInputTokens", "cacheWriteInputTokenCount":
					ev.Usage.CacheWriteInputTokens = integer(&s)
				}
			})
		}
	})
	if s.Failed() {
		*ev = Event{Index: -1, Kind: ev.Kind, Final: ev.Final, Unparsed: true}
		return
	}
	ev.Text = p.text
}

// chunkBytes decodes a chunk payload {"bytes":"<base64>"} into p.inner.
func (p *Parser) chunkBytes(payload []byte) ([]byte, error) {
	s := jsonscan.New(payload, maxDepth)
	found := false
	p.esc = p.esc[:0]
	s.Object(func(key []byte) {
		if string(key) == "bytes" {
			p.esc = s.String(p.esc)
			found = true
		}
	})
	if s.Failed() || !found {
		return nil, errNotChunk
	}
	n := base64.StdEncoding.DecodedLen(len(p.esc))
	if cap(p.inner) < n {
		p.inner = make([]byte, n)
	}
	m, err := base64.StdEncoding.Decode(p.inner[:n], p.esc)
	if err != nil {
		return nil, err
	}
	p.inner = p.inner[:m]
	return p.inner, nil
}

// chunk reads the model event inside an InvokeModel chunk. One walk over the
// keys covers every family: Anthropic's typed events ("type"), Nova's
// Converse-like objects, Llama's "generation" and Titan's "outputText"; any
// chunk with amazon-bedrock-invocationMetrics is the stream's last.
func (p *Parser) chunk(inner []byte, ev *Event) {
	s := jsonscan.New(inner, maxDepth)
	var typ, deltaType, blockType []byte
	var hasText bool
	var nova Kind
	novaBlock := BlockNone
	s.Object(func(key []byte) {
		switch string(key) {
		case "type":
			typ = str(&s)
		case "index":
			ev.Index = integer(&s)
		case "delta": // Anthropic content_block_delta and message_delta
			s.Object(func(key []byte) {
				switch string(key) {
				case "type":
					deltaType = str(&s)
				case "text":
					p.text = s.String(p.text)
					hasText = true
				}
			})
		case "content_block":
			s.Object(func(key []byte) {
				if string(key) == "type" {
					blockType = str(&s)
				}
			})
		case "message": // message_start
			s.Object(func(key []byte) {
				if string(key) == "usage" {
					p.anthropicUsage(&s, ev)
				}
			})
		case "usage": // message_delta
			p.anthropicUsage(&s, ev)
		case "amazon-bedrock-invocationMetrics":
			ev.Final = true
			ev.HasInput, ev.HasOutput = true, true
			s.Object(func(key []byte) {
				switch string(key) {
				case "inputTokenCount":
					ev.Usage.InputTokens = integer(&s)
				case "outputTokenCount":
					ev.Usage.OutputTokens = integer(&s)
				case "cacheReadInputTokenCount":
					ev.Usage.CacheReadInputTokens = integer(&s)
				case "cacheWriteInputTokenCount":
					ev.Usage.CacheWriteInputTokens = integer(&s)
				}
			})
		// Nova's InvokeModel stream: Converse's events as keys.
		case "messageStart":
			nova = KindStart
		case "contentBlockStart":
			nova, novaBlock = KindBlockStart, BlockOther
			s.Object(func(key []byte) {
				switch string(key) {
				case "start":
					s.Object(func(key []byte) {
						if string(key) == "toolUse" {
							novaBlock = BlockTool
						}
					})
				case "contentBlockIndex":
					ev.Index = integer(&s)
				}
			})
		case "contentBlockDelta":
			nova, novaBlock = KindDelta, BlockOther
			s.Object(func(key []byte) {
				switch string(key) {
				case "delta":
					s.Object(func(key []byte) {
						switch string(key) {
						case "text":
							novaBlock = BlockText
							p.text = s.String(p.text)
						case "toolUse":
							novaBlock = BlockTool
						case "reasoningContent":
							novaBlock = BlockReasoning
						}
					})
				case "contentBlockIndex":
					ev.Index = integer(&s)
				}
			})
		case "contentBlockStop":
			nova = KindBlockStop
			s.Object(func(key []byte) {
				if string(key) == "contentBlockIndex" {
					ev.Index = integer(&s)
				}
			})
		case "messageStop":
			nova = KindStop
		case "metadata":
			nova = KindMetadata
		// Llama and Titan: one chunk per token.
		case "generation", "outputText":
			if !s.Null() {
				p.text = s.String(p.text)
				hasText = len(p.text) > 0
				if hasText {
					nova, novaBlock = KindDelta, BlockText
				}
			}
		}
	})
	if s.Failed() {
		*ev = Event{Index: -1, Unparsed: true}
		return
	}
	ev.Anthropic = len(typ) > 0
	switch string(typ) {
	case "":
		ev.Kind, ev.Block = nova, novaBlock
		if ev.Kind == KindDelta && ev.Index < 0 {
			ev.Index = 0
		}
	case "message_start":
		ev.Kind = KindStart
	case "content_block_start":
		ev.Kind = KindBlockStart
		switch string(blockType) {
		case "text":
			ev.Block = BlockText
		case "tool_use", "server_tool_use":
			ev.Block = BlockTool
		case "thinking", "redacted_thinking":
			ev.Block = BlockReasoning
		default:
			ev.Block = BlockOther
		}
	case "content_block_delta":
		ev.Kind = KindDelta
		switch string(deltaType) {
		case "text_delta":
			ev.Block = BlockText
		case "input_json_delta":
			ev.Block = BlockTool
		case "thinking_delta", "signature_delta":
			ev.Block = BlockReasoning
		default:
			ev.Block = BlockOther
		}
	case "content_block_stop":
		ev.Kind = KindBlockStop
	case "message_delta":
		ev.Kind = KindStop
	case "message_stop":
		ev.Kind = KindMetadata
		ev.Final = true
	}
	if ev.Block == BlockText && hasText || novaBlock == BlockText {
		ev.Text = p.text
	}
}

// anthropicUsage reads an Anthropic usage object.
func (p *Parser) anthropicUsage(s *jsonscan.Scanner, ev *Event) {
	s.Object(func(key []byte) {
		switch string(key) {
		case "input_tokens":
			ev.Usage.InputTokens = integer(s)
			ev.HasInput = true
		case "output_tokens":
			ev.Usage.OutputTokens = integer(s)
			ev.HasOutput = true
		case "cache_read_input_tokens":
			ev.Usage.CacheReadInputTokens = integer(s)
		case "cache_creation_input_tokens":
			ev.Usage.CacheWriteInputTokens = integer(s)
		}
	})
}
