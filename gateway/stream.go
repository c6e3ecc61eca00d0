package gateway

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strconv"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/internal/jsonw"
)

// sseWriter turns a backend's chunks into OpenAI server-sent events.
//
// Every event is flushed as soon as it is written, except the one that must
// carry the request's cost: the chunk with a finish_reason (or, when the
// client asked for stream_options.include_usage, the usage chunk). The cost
// is only known when the backend returns, so the writer holds back each
// finish chunk until the next one arrives or the stream ends, then injects
// "accelgate_cost_usd" into the last one. Content chunks are never delayed.
type sseWriter struct {
	w       *bufio.Writer
	req     *backends.Request
	created int64
	buf     []byte
	pending []byte  // held-back finish (or upstream usage) chunk
	started [8]bool // role sent, per choice (small n); larger n use startedN
	startN  []bool  // for n > len(started)
	err     error   // first write error (client gone)
	wrote   bool    // an event was written (a failure can no longer be retried elsewhere)
	onFirst func()  // called once, just before the first event is written
}

func (sw *sseWriter) roleSent(i int) bool {
	if i < len(sw.started) {
		v := sw.started[i]
		sw.started[i] = true
		return v
	}
	for len(sw.startN) <= i {
		sw.startN = append(sw.startN, false)
	}
	v := sw.startN[i]
	sw.startN[i] = true
	return v
}

func (sw *sseWriter) event(payload []byte) error {
	if sw.err != nil {
		return sw.err
	}
	sw.wrote = true
	if f := sw.onFirst; f != nil {
		sw.onFirst = nil
		f()
	}
	if _, err := sw.w.WriteString("data: "); err != nil {
		sw.err = err
		return err
	}
	sw.w.Write(payload)
	sw.w.WriteString("\n\n")
	if err := sw.w.Flush(); err != nil {
		sw.err = err
	}
	return sw.err
}

func (sw *sseWriter) hold(chunk []byte) error {
	if sw.pending != nil {
		if err := sw.event(sw.pending); err != nil {
			return err
		}
	}
	sw.pending = append(sw.pending[:0], chunk...)
	return nil
}

// onChunk is the backends.StreamFunc.
func (sw *sseWriter) onChunk(c backends.Chunk) error {
	if sw.err != nil {
		return sw.err
	}
	if c.Raw != nil {
		if isFinal(c.Raw) {
			return sw.hold(c.Raw)
		}
		return sw.event(c.Raw)
	}
	if c.Text == "" && c.FinishReason == "" {
		return nil
	}
	sw.buf = sw.appendChunkHead(sw.buf[:0])
	sw.buf = append(sw.buf, `"choices":[{"index":`...)
	sw.buf = strconv.AppendInt(sw.buf, int64(c.Index), 10)
	if sw.req.Op == backends.OpChat {
		sw.buf = append(sw.buf, `,"delta":{`...)
		if !sw.roleSent(c.Index) {
			sw.buf = append(sw.buf, `"role":"assistant",`...)
		}
		if c.Text != "" || c.FinishReason == "" {
			sw.buf = append(sw.buf, `"content":`...)
			sw.buf = jsonw.AppendString(sw.buf, c.Text)
		} else {
			sw.buf = bytes.TrimSuffix(sw.buf, []byte(","))
		}
		sw.buf = append(sw.buf, '}')
	} else {
		sw.buf = append(sw.buf, `,"text":`...)
		sw.buf = jsonw.AppendString(sw.buf, c.Text)
	}
	sw.buf = append(sw.buf, `,"logprobs":null,"finish_reason":`...)
	sw.buf = jsonw.AppendStringOrNull(sw.buf, c.FinishReason)
	sw.buf = append(sw.buf, "}]}"...)
	if c.FinishReason != "" {
		return sw.hold(sw.buf)
	}
	return sw.event(sw.buf)
}

func (sw *sseWriter) appendChunkHead(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = jsonw.AppendString(b, sw.req.ID)
	if sw.req.Op == backends.OpChat {
		b = append(b, `,"object":"chat.completion.chunk","created":`...)
	} else {
		b = append(b, `,"object":"text_completion","created":`...)
	}
	b = strconv.AppendInt(b, sw.created, 10)
	b = append(b, `,"model":`...)
	b = jsonw.AppendString(b, sw.req.Model)
	return append(b, ',')
}

// isFinal reports whether a raw upstream chunk carries a finish_reason or is
// a usage-only chunk: the chunks the cost may have to ride on.
func isFinal(raw []byte) bool {
	if i := bytes.Index(raw, []byte(`"finish_reason":`)); i >= 0 {
		rest := bytes.TrimLeft(raw[i+len(`"finish_reason":`):], " ")
		return len(rest) > 0 && rest[0] == '"'
	}
	return bytes.Contains(raw, []byte(`"usage":{`))
}

// finish writes the held-back chunk with the cost (and, for structured
// backends, the usage chunk), then [DONE].
func (sw *sseWriter) finish(res *backends.Result) {
	if res.Raw == nil && sw.req.IncludeUsage && !bytes.Contains(sw.pending, []byte(`"usage":{`)) {
		if sw.pending != nil {
			sw.event(sw.pending)
			sw.pending = nil
		}
		sw.buf = sw.appendChunkHead(sw.buf[:0])
		sw.buf = append(sw.buf, `"choices":[],"usage":`...)
		sw.buf = appendUsage(sw.buf, res.Usage.PromptTokens, res.Usage.CompletionTokens, false)
		sw.buf = append(sw.buf, '}')
		sw.pending = append(sw.pending[:0], sw.buf...)
	}
	if sw.pending != nil {
		sw.event(injectCost(sw.pending, res.CostUSD))
		sw.pending = nil
	}
	sw.event([]byte("[DONE]"))
}

// fail flushes what was held back and reports err as a final error event.
func (sw *sseWriter) fail(err error) {
	if sw.pending != nil {
		sw.event(sw.pending)
		sw.pending = nil
	}
	st := Classify(err)
	sw.buf = appendOpenAIError(sw.buf[:0], errorMessage(err), st.OpenAIType, errorParam(err), st.OpenAICode)
	sw.event(sw.buf)
	sw.event([]byte("[DONE]"))
}

// streamRun is a streaming request running on the fleet. ready is closed
// when its first event is about to be written (backend is then where it
// runs, and the events follow on body) or when it failed before any event
// (err: nothing was sent, so the client gets a plain HTTP error).
type streamRun struct {
	ready   chan struct{}
	err     error
	backend *backends.Descriptor
	body    *io.PipeReader
}

// startStream runs a placed streaming request in its own goroutine, its
// events written into a pipe that becomes the response body: the handler
// commits to 200 only once the first event exists. When fasthttp is done
// with the body (the stream ended, or the client went away) it closes the
// pipe, the next write fails and the backend is told to stop.
func (s *Server) startStream(p *Placement, req *backends.Request, m *backends.Model, created int64) *streamRun {
	pr, pw := io.Pipe()
	run := &streamRun{ready: make(chan struct{}), body: pr}
	go func() {
		bw := bufio.NewWriter(pw)
		failed := s.runStream(bw, p, req, m, created, func(p *Placement) {
			run.backend = p.Backend()
			close(run.ready)
		})
		if failed != nil {
			run.err = failed
			close(run.ready)
		}
		bw.Flush()
		pw.Close()
	}()
	return run
}

// runStream runs a placed streaming request, writing its events to w. It
// calls first, with the placement serving it, before the first event is
// written. A failure before any event, once no other backend takes over, is
// returned (and nothing written); a failure after one becomes an error event.
func (s *Server) runStream(w *bufio.Writer, p *Placement, req *backends.Request, m *backends.Model, created int64, first func(*Placement)) error {
	ctx, cancel := context.WithDeadline(context.Background(), req.Deadline)
	defer cancel()
	sw := &sseWriter{w: w, req: req, created: created}
	sw.onFirst = func() { first(p) }
	for attempt := 1; ; attempt++ {
		res, err := p.d.Run(ctx, p, req, m, sw.onChunk) // the generation that placed it
		if sw.err != nil {
			return nil // the client went away; the backend has been told to stop
		}
		if err != nil && !sw.wrote && sw.pending == nil {
			// Nothing reached the client: a backend that failed may be
			// replaced by another, like a non-streaming request's; when
			// none does, the client gets the error as an HTTP status.
			if np, ok := p.d.RetryStream(ctx, p, req, m, attempt, err); ok {
				p = &np
				continue
			}
			return err
		}
		if err != nil {
			sw.fail(err)
			return nil
		}
		sw.finish(res)
		return nil
	}
}
