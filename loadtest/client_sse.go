package loadtest

import (
	"bytes"
	"io"
	"time"
)

// sseParser reads an OpenAI stream of server-sent events incrementally and
// records, into its Outcome, the time to the first content token, each gap
// between content tokens, the cost carried by the last chunk, and usage.
type sseParser struct {
	intended   time.Time
	o          *Outcome
	completion bool // legacy completions: content is "text", not "delta.content"

	gotToken bool
	last     time.Time // arrival of the previous content token
	tokens   int       // content chunks seen
	gotUsage bool
	done     bool   // [DONE] arrived
	errKind  string // set by an error event
}

// maxSSELine bounds one event line; a longer one is a broken stream.
const maxSSELine = 16 << 20

// read consumes r until EOF, [DONE] or an error, using buf as its window
// (grown, and stored back into *keep, when a line does not fit). Every event
// in one read is stamped with the time that read returned.
func (p *sseParser) read(r io.Reader, buf []byte, keep *[]byte) error {
	if len(buf) == 0 {
		buf = make([]byte, 8<<10)
	}
	start, end := 0, 0
	for !p.done {
		if end == len(buf) {
			if start > 0 {
				end = copy(buf, buf[start:end])
				start = 0
			} else {
				if len(buf) >= maxSSELine {
					return io.ErrShortBuffer
				}
				nb := make([]byte, 2*len(buf))
				copy(nb, buf[:end])
				buf = nb
				*keep = nb
			}
		}
		n, err := r.Read(buf[end:])
		if n > 0 {
			now := time.Now()
			end += n
			for start < end {
				nl := bytes.IndexByte(buf[start:end], '\n')
				if nl < 0 {
					break
				}
				p.line(buf[start:start+nl], now)
				start += nl + 1
				if p.done {
					return nil
				}
			}
			if start == end {
				start, end = 0, 0
			}
		}
		if err != nil {
			if err == io.EOF && start < end {
				p.line(buf[start:end], time.Now())
			}
			return err
		}
	}
	return nil
}

// line handles one line of the event stream (without its newline).
func (p *sseParser) line(l []byte, now time.Time) {
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	}
	if len(l) < 5 || string(l[:5]) != "data:" {
		return // blank separators, comments, event:/id: fields
	}
	p.event(bytes.TrimLeft(l[5:], " "), now)
}

// event handles one data payload.
func (p *sseParser) event(d []byte, now time.Time) {
	if string(d) == "[DONE]" {
		p.done = true
		return
	}
	if len(d) > 9 && string(d[:9]) == `{"error":` {
		code, _ := stringAfter(d, `"code":`)
		p.errKind = classifyOpenAICode(code)
		return
	}
	key := `"content":`
	if p.completion {
		key = `"text":`
	}
	if v := valueAfter(d, key); len(v) > 1 && v[0] == '"' && v[1] != '"' {
		p.tokens++
		if !p.gotToken {
			p.gotToken = true
			p.o.TTFT = now.Sub(p.intended)
		} else {
			p.o.ITL = append(p.o.ITL, now.Sub(p.last))
		}
		p.last = now
	}
	if f, ok := floatAfter(d, `"accelgate_cost_usd":`); ok {
		p.o.CostUSD = f
	}
	if in, out, ok := parseUsage(d); ok {
		p.gotUsage = true
		p.o.InputTokens, p.o.OutputTokens = in, out
	}
}
