package gateway

import (
	"bufio"
	"bytes"
	"context"
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

// runStream runs a placed streaming request inside fasthttp's body stream
// writer: headers are already sent, so failures become an error event.
func (s *Server) runStream(w *bufio.Writer, p *Placement, req *backends.Request, m *backends.Model, created int64) {
	ctx, cancel := context.WithDeadline(context.Background(), req.Deadline)
	defer cancel()
	sw := &sseWriter{w: w, req: req, created: created}
	for attempt := 1; ; attempt++ {
		res, err := p.d.Run(ctx, p, req, m, sw.onChunk) // the generation that placed it
		if sw.err != nil {
			return // the client went away; the backend has been told to stop
		}
		if err != nil && !sw.wrote && sw.pending == nil {
			// Nothing but the headers reached the client: a backend that
			// failed may be replaced by another, like a non-streaming
			// request's.
			if np, ok := p.d.RetryStream(ctx, p, req, m, attempt, err); ok {
				p = &np
				continue
			}
		}
		if err != nil {
			sw.fail(err)
			return
		}
		sw.finish(res)
		return
	}
}
