// Package jsonscan reads JSON from a byte slice in one pass, checking its
// syntax as it goes, without reflection and without allocating on well-formed
// input. keel's hot paths read JSON with it: the stream parser's event
// fields, the emulator's request bodies and the usage in the engine's reply
// bodies.
//
// A Scanner walks one document. The caller steers: Peek says what comes next,
// Object and Array call back for each member and element, and String, Int,
// Float, Value and Skip read one value. Keys and raw strings are sub-slices of
// the input; String unescapes into a buffer the caller owns. The first syntax
// error stops the scanner (every later read returns zero values at once) and
// Err reports it with its byte offset.
//
// Strings decode as encoding/json decodes them: invalid UTF-8 and unpaired
// surrogate escapes become U+FFFD. A Scanner is not safe for concurrent use.
package jsonscan
