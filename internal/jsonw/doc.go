// Package jsonw appends JSON values by hand into caller-owned buffers, for the
// encoders on the hot paths (the gateway's responses, the KServe v2 codec, the
// load generator's requests): the shapes they write are fixed and small, and
// appending keeps reflection and per-field allocations off those paths.
// Nothing here allocates beyond growing the destination.
package jsonw
