// Package httpconn is the HTTP/1.1 client plumbing shared by the upstream
// transports (backends/upstream for OpenAI-compatible servers, backends/kserve
// for KServe v2 HTTP servers): the parsing of a server's base URL, a pool of
// keep-alive connections bounded by a number of slots, and the exchange of one
// request on a pooled connection, interrupted at any moment when the request's
// context ends.
//
// The connections are pooled here rather than left to fasthttp.Client so that
// a request can be aborted at once by acting on its own connection (a past
// deadline unblocks its I/O) without touching the others.
package httpconn
