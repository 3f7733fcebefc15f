// Package stream reads Bedrock Runtime event streams (ConverseStream and
// InvokeModelWithResponseStream) frame by frame, tells what each event
// means, and splices the streams of several attempts into the one stream a
// reader sees. It does no I/O of its own beyond reading the frames it is
// given; the engine decides when to retry or resume.
//
// The pieces, in the order a frame meets them:
//
//   - Reader decodes application/vnd.amazon.eventstream frames: prelude,
//     both CRC32 checksums, headers. It reads ahead what the body has, so a
//     burst of events costs one read, and allocates nothing per frame (the
//     SDK's decoder allocates for every header); it is checked against
//     aws-sdk-go-v2's own eventstream.Decoder by a differential fuzz test.
//   - Parser reads an event's JSON payload: the content block, the text of
//     a text delta, usage, and whether this is the stream's final event.
//     It allocates nothing per frame either.
//   - Splicer decides, event by event, what the reader sees: an event as
//     it arrived, held back until content starts, dropped (a continuation's
//     second messageStart) or rewritten (usage summed over the attempts).
//   - Continue rewrites a request body into its continuation: the text
//     received so far appended as a partial assistant message (a prefill),
//     or as an assistant turn followed by a user turn asking the model to
//     go on (continue-turn, for models that refuse a prefill), the output
//     limit lowered by what was already produced.
//   - Overlap finds where a continue-turn continuation repeats the end of
//     the text received so far, which the Splicer then drops.
//
// Nothing here is safe for concurrent use: one stream, one goroutine.
package stream
