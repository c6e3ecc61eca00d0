// Package upstream is a backends.Backend that forwards requests to an
// OpenAI-compatible HTTP server: vLLM, TGI, SGLang, llama.cpp, or accelgate's
// own emulator process.
//
// # What it owns
//
// One Backend owns a pool of keep-alive HTTP/1.1 connections to one upstream
// (at most Config.MaxConns at a time, idle ones reused last-in first-out), the
// byte-level edits of a request's body and of the response's model name, the
// incremental parsing of the upstream's server-sent events, the translation of
// the upstream's errors into accelgate's sentinels, and the cost estimate of
// each request. HTTP framing
// (writing the request, parsing the response header, chunked bodies) is done by
// github.com/valyala/fasthttp; the connections themselves are dialled and
// pooled here, so that a request can be aborted at any moment by acting on its
// own connection (fasthttp's HostClient offers no way to interrupt a request
// that is still waiting for its response header).
//
// # How a request passes through it
//
// Do picks the path from the operation (chat → /v1/chat/completions,
// completion → /v1/completions, embedding → /v1/embeddings; tensor requests
// are refused with backends.ErrUnavailable) and sends the client's JSON body
// unchanged, so fields the gateway does not model reach the upstream. There
// are two exceptions, both small byte-level edits of a copy (the body is never
// decoded, and Request.Body is left as it is for a retry elsewhere):
//
//   - A stream whose body does not ask for stream_options.include_usage: the
//     gateway needs the usage to attribute cost, so Do turns it on, and later
//     drops the upstream's usage-only chunk (the one with empty choices) when
//     the client did not ask for usage (Request.IncludeUsage false), after
//     parsing the usage out of it.
//   - A model with a name mapping (Config.ModelNames, the fleet file's
//     model_names): the upstream serves the public model under another name
//     (vLLM's --served-model-name). Do sets every top-level "model" member of
//     the body to the upstream name (adding one if there is none; "model" keys
//     of nested objects and inside strings are not touched, escaped keys are
//     recognised), and sets the top-level "model" of the response back to the
//     public name: in Result.Raw, and in every streamed chunk's Chunk.Raw
//     (edited into a buffer reused from chunk to chunk), so clients see the
//     name they asked for. A model without a mapping is neither copied nor
//     scanned.
//
// The context governs the request: its deadline becomes the connection's I/O
// deadline, and when it ends (the client went away, the hard timeout passed)
// the connection is interrupted and closed, before the response header as well
// as in the middle of a stream, so the upstream sees the disconnect and stops
// generating. Do then returns an error wrapping ctx.Err()
// (context.DeadlineExceeded for the hard timeout).
//
// A non-streaming response is returned whole in Result.Raw, with Usage parsed
// out of it. A streaming response is read event by event, never buffered as a
// whole: every "data:" payload is handed to the StreamFunc as Chunk.Raw, except
// "[DONE]" (the gateway writes its own) and the dropped usage chunk. An event
// carrying a top-level "error" member (OpenAI's object, TGI's string) or
// vLLM's flat {"object":"error",...} ends the stream with a
// *backends.UpstreamError, classified as an error answer with the status of
// its numeric code (500 when it has none), so a failure of the upstream
// mid-stream wraps backends.ErrUnavailable and counts against the backend. A
// body that ends before [DONE] and without any finish_reason, or a connection
// that drops in the middle of the body (a chunked body without its
// terminator, a Content-Length not reached), is a backends.ErrUnavailable
// error, never a truncated success. If the StreamFunc returns an error (the
// client went away), the connection is closed at once, so the upstream sees
// the disconnect and stops generating, and Do returns that error.
//
// Errors: a non-2xx answer becomes a *backends.UpstreamError parsed from the
// body (OpenAI's {"error":{...}} form, vLLM's flat {"object":"error",...} form,
// TGI's {"error":"...","error_type":"..."}, FastAPI's {"detail":"..."} or its
// validation list, rendered "body.messages: Field required; ...", the raw text
// cut to 1 KiB at a character boundary, or the status text for an empty
// body), which the gateway turns into an OpenAI error body. A 4xx other than
// those below is returned as is, for the gateway to relay; 429 also wraps
// backends.ErrShed; 5xx, 401, 403 and 408 (the upstream is failing, or
// accelgate's credentials or configuration are wrong, which the client cannot
// fix) also wrap backends.ErrUnavailable, as do connection and dial errors, so
// the gateway may retry elsewhere.
//
// # Credentials
//
// Config.APIKey (the fleet file's api_key_env, read from the environment when
// the fleet is built) is sent as "Authorization: Bearer <key>" on every
// request: chat, completions, embeddings, streaming or not. Without a key no
// Authorization header is sent. The key is never logged, and an upstream
// error message that quotes it (some servers echo the credentials they
// reject) has it replaced by "[redacted]" before the error leaves the package,
// since the gateway relays upstream messages to clients; keys shorter than 8
// bytes are not searched for, as they would match ordinary text. A 401 or 403
// from the upstream is accelgate's configuration, not the client's mistake: it
// wraps backends.ErrUnavailable (see Errors above).
//
// # Cost rule
//
// The gateway cannot see which requests an upstream server batches together,
// so the accelerator time of a request is estimated from its duration and the
// backend's concurrency:
//
//	Busy    = Total ÷ concurrency
//	CostUSD = Descriptor.PricePerSecond() × Busy
//
// where Total is the request's measured duration and concurrency is the number
// of requests this Backend had in flight when the request started, itself
// included (so at least 1). A request alone on the backend pays for all of its
// time; N requests sharing it pay about a 1/N share each.
//
// Timing.TTFT is the time to the first "data:" event of a stream, or to the
// whole response otherwise; Timing.Total is the full duration; QueueWait is
// left zero (the upstream's queue is not visible).
package upstream
