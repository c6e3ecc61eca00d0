// Package jsonscan scans JSON text in place, without decoding it: the
// primitives the hot paths use to find and skip the top-level members of a
// request body. The upstream transports edit "model" and "stream_options"
// with them (backends/upstream/jsonedit.go), and the gateway builds the
// batch key of embeddings and completions requests (gateway/batchkey.go).
// A scan walks the bytes once: Space skips whitespace, String and Value
// return the index just past a string or any value (-1 when malformed or
// truncated), and KeyIs compares a key with its escapes decoded. Nothing
// here allocates.
package jsonscan
