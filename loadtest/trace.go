package loadtest

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// Trace replay.
//
// A trace is a JSONL file (one JSON object per line) or a CSV file (a header
// row, then one row per request) with these columns, in any order:
//
//	timestamp_s    required  seconds from the start of the run (a number ≥ 0); rows must be in non-decreasing order
//	type           required  chat | completion | embedding | tensor
//	model                    default: llama-3.1-8b-instruct (chat, completion), bge-base-en-v1.5 (embedding), resnet-50 (tensor)
//	input_tokens             prompt (or embedding input) size in tokens; required (≥ 1) for chat, completion and embedding
//	output_tokens            max_tokens; required (≥ 1) for chat and completion, ignored otherwise
//	stream                   true | false (default false); only chat and completion rows can stream
//	slo_ms                   end-to-end target in milliseconds
//	slo_ttft_ms              time-to-first-token target in milliseconds
//	slo_tpot_ms              time-per-output-token target in milliseconds
//	priority                 critical | standard | sheddable (default standard)
//	session_id               multi-turn session the row belongs to
//	site                     where the client is (Item.Site)
//	inputs                   embedding rows: number of inputs (default 1), input_tokens split evenly among them
//	images                   tensor rows: images in the request (default 1)
//
// (inputs and images extend the basic schema so that exported synthetic
// workloads replay faithfully.) An empty CSV cell or a JSON null is a missing
// value; in JSONL, numbers and booleans may also be written as strings. Lines
// starting with # are comments; blank JSONL lines are skipped. Unknown columns
// are an error, so a misspelt column cannot silently fall back to a default.
//
// SLOs: a row that sets any of slo_ms, slo_ttft_ms and slo_tpot_ms gets
// exactly those targets (0 or missing = no target); a row that sets none gets
// StandardSLO for its type, stream, priority and output_tokens.
//
// Text: prompts are generated, deterministically, with input_tokens tokens of
// the package's corpus (see text.go). Chat rows that share a session_id form a
// conversation: each row's Messages are the session's earlier messages, an
// assistant reply as long as the previous row's output_tokens, and a new user
// message of the remaining input_tokens (at least 1 token, so InputTokens can
// exceed input_tokens in a trace whose sessions do not grow). Rows of other
// types carry SessionID and Turn only. Turns are numbered from 1 per session.
//
// Errors name the file (for OpenTrace), the line and the column:
//
//	trace.csv:17: output_tokens: "abc" is not an integer

// traceColumn identifies a column.
type traceColumn int

const (
	colTimestamp traceColumn = iota
	colType
	colModel
	colInputTokens
	colOutputTokens
	colStream
	colSLO
	colSLOTTFT
	colSLOTPOT
	colPriority
	colSessionID
	colSite
	colInputs
	colImages
	numColumns
)

var columnNames = [numColumns]string{
	"timestamp_s", "type", "model", "input_tokens", "output_tokens", "stream",
	"slo_ms", "slo_ttft_ms", "slo_tpot_ms", "priority", "session_id", "site",
	"inputs", "images",
}

func columnByName(name string) (traceColumn, bool) {
	for i, n := range columnNames {
		if n == name {
			return traceColumn(i), true
		}
	}
	return 0, false
}

// OpenTrace reads a whole trace file and returns a Source that replays it.
// The format comes from the extension (.jsonl, .ndjson or .json: JSONL; .csv:
// CSV) or, for other names, from the content. Errors start with path and the
// line number.
func OpenTrace(path string) (Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	format := ""
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson", ".json":
		format = "jsonl"
	case ".csv":
		format = "csv"
	}
	return parseTrace(f, format, path)
}

// ParseTrace reads a whole trace in the given format — "jsonl" (or "ndjson",
// "json"), "csv", or "" to detect it from the content (a first row starting
// with { is JSONL) — and returns a Source that replays it. Errors start with
// "line N:".
func ParseTrace(r io.Reader, format string) (Source, error) {
	return parseTrace(r, format, "")
}

func parseTrace(r io.Reader, format, name string) (Source, error) {
	p := &traceParser{name: name, intern: map[string]string{}}
	br := bufio.NewReaderSize(r, 64<<10)
	switch strings.ToLower(format) {
	case "":
		if sniffJSONL(br) {
			format = "jsonl"
		} else {
			format = "csv"
		}
	case "jsonl", "ndjson", "json":
		format = "jsonl"
	case "csv":
	default:
		return nil, fmt.Errorf("unknown trace format %q (want jsonl or csv)", format)
	}
	var err error
	if format == "jsonl" {
		err = p.readJSONL(br)
	} else {
		err = p.readCSV(br)
	}
	if err != nil {
		return nil, err
	}
	// Mark each session's last row so replay can drop its state there.
	seen := map[string]bool{}
	for i := len(p.rows) - 1; i >= 0; i-- {
		if id := p.rows[i].session; id != "" && !seen[id] {
			seen[id] = true
			p.rows[i].last = true
		}
	}
	return &traceSource{
		rows:     p.rows,
		r:        rand.New(rand.NewPCG(0x7472_6163_65, 0x7465_7874)), // "trace", "text": fixed, replay is deterministic
		sessions: map[string]*traceSession{},
	}, nil
}

// sniffJSONL reports whether the first row that is not blank or a comment
// starts with {.
func sniffJSONL(br *bufio.Reader) bool {
	b, _ := br.Peek(64 << 10)
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		return line[0] == '{'
	}
	return false
}

// traceRow is one parsed row, ready to replay.
type traceRow struct {
	at       time.Duration
	op       backends.Op
	stream   bool
	last     bool // the last row of its session
	priority backends.Priority
	model    string
	session  string
	site     string
	in, out  int
	count    int // embedding inputs or tensor images
	slo      backends.SLO
}

type traceParser struct {
	name   string
	rows   []traceRow
	intern map[string]string
	prevAt time.Duration
}

// rowValues holds one row's values by column; set marks those present.
type rowValues struct {
	val [numColumns]string
	set [numColumns]bool
}

// errAt formats an error for a line.
func (p *traceParser) errAt(line int, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if p.name == "" {
		return fmt.Errorf("line %d: %s", line, msg)
	}
	return fmt.Errorf("%s:%d: %s", p.name, line, msg)
}

func (p *traceParser) readCSV(r io.Reader) error {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	csvErr := func(err error) error {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return p.errAt(pe.Line, "%v", pe.Err)
		}
		return err
	}
	header, err := cr.Read()
	if err == io.EOF {
		return p.errAt(1, "empty trace: want a header row naming the columns (%s)", strings.Join(columnNames[:], ", "))
	}
	if err != nil {
		return csvErr(err)
	}
	hline, _ := cr.FieldPos(0)
	cols := make([]traceColumn, len(header))
	var have [numColumns]bool
	for i, h := range header {
		h = strings.TrimSpace(h)
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // byte-order mark
		}
		c, ok := columnByName(h)
		if !ok {
			return p.errAt(hline, "unknown column %q (want %s)", h, strings.Join(columnNames[:], ", "))
		}
		if have[c] {
			return p.errAt(hline, "column %q appears twice", h)
		}
		have[c] = true
		cols[i] = c
	}
	for _, c := range []traceColumn{colTimestamp, colType} {
		if !have[c] {
			return p.errAt(hline, "missing column %q", columnNames[c])
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvErr(err)
		}
		line, _ := cr.FieldPos(0)
		var v rowValues
		for i, s := range rec {
			s = strings.TrimSpace(s)
			v.val[cols[i]], v.set[cols[i]] = s, s != ""
		}
		if err := p.add(line, &v); err != nil {
			return err
		}
	}
}

func (p *traceParser) readJSONL(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\ufeff"))
		}
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b, &obj); err != nil {
			return p.errAt(line, "not a JSON object: %v", err)
		}
		var v rowValues
		for k, raw := range obj {
			c, ok := columnByName(k)
			if !ok {
				return p.errAt(line, "unknown column %q (want %s)", k, strings.Join(columnNames[:], ", "))
			}
			raw = bytes.TrimSpace(raw)
			switch {
			case string(raw) == "null":
				continue
			case raw[0] == '"':
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					return p.errAt(line, "%s: %v", k, err)
				}
				s = strings.TrimSpace(s)
				v.val[c], v.set[c] = s, s != ""
			case raw[0] == '{' || raw[0] == '[':
				return p.errAt(line, "%s: %s is not a single value", k, raw)
			default:
				v.val[c], v.set[c] = string(raw), true
			}
		}
		if err := p.add(line, &v); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return p.errAt(line+1, "%v", err)
	}
	return nil
}

func (p *traceParser) str(s string) string {
	if v, ok := p.intern[s]; ok {
		return v
	}
	s = strings.Clone(s)
	p.intern[s] = s
	return s
}

// add validates one row and appends it.
func (p *traceParser) add(line int, v *rowValues) error {
	bad := func(c traceColumn, format string, args ...any) error {
		return p.errAt(line, "%s: %s", columnNames[c], fmt.Sprintf(format, args...))
	}
	intCol := func(c traceColumn) (int, error) {
		if !v.set[c] {
			return 0, nil
		}
		n, err := strconv.Atoi(v.val[c])
		if err != nil {
			if f, ferr := strconv.ParseFloat(v.val[c], 64); ferr == nil && f == math.Trunc(f) && math.Abs(f) < 1<<31 {
				n, err = int(f), nil // 12.0, 1e3
			}
		}
		if err != nil {
			return 0, bad(c, "%q is not an integer", v.val[c])
		}
		if n < 0 {
			return 0, bad(c, "%d is negative", n)
		}
		return n, nil
	}
	msCol := func(c traceColumn) (time.Duration, error) {
		if !v.set[c] {
			return 0, nil
		}
		f, err := strconv.ParseFloat(v.val[c], 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, bad(c, "%q is not a number", v.val[c])
		}
		if f < 0 || f > 1e12 {
			return 0, bad(c, "%s is out of range (0 to 10¹² ms)", v.val[c])
		}
		return time.Duration(math.Round(f * 1e6)), nil
	}
	var row traceRow

	// timestamp_s
	if !v.set[colTimestamp] {
		return bad(colTimestamp, "missing (every row needs one)")
	}
	ts, err := strconv.ParseFloat(v.val[colTimestamp], 64)
	if err != nil || math.IsNaN(ts) || math.IsInf(ts, 0) {
		return bad(colTimestamp, "%q is not a number", v.val[colTimestamp])
	}
	if ts < 0 || ts > 1e9 {
		return bad(colTimestamp, "%s is out of range (0 to 10⁹ s)", v.val[colTimestamp])
	}
	row.at = time.Duration(math.Round(ts * 1e9))
	if row.at < p.prevAt {
		return bad(colTimestamp, "%s is before the previous row's %s (rows must be in time order)", v.val[colTimestamp], strconv.FormatFloat(p.prevAt.Seconds(), 'f', -1, 64))
	}
	p.prevAt = row.at

	// type and model
	if !v.set[colType] {
		return bad(colType, "missing (want chat, completion, embedding or tensor)")
	}
	switch v.val[colType] {
	case "chat":
		row.op = backends.OpChat
	case "completion":
		row.op = backends.OpCompletion
	case "embedding":
		row.op = backends.OpEmbedding
	case "tensor":
		row.op = backends.OpTensor
	default:
		return bad(colType, "%q is not chat, completion, embedding or tensor", v.val[colType])
	}
	llm := row.op == backends.OpChat || row.op == backends.OpCompletion
	switch {
	case v.set[colModel]:
		row.model = p.str(v.val[colModel])
	case llm:
		row.model = ModelLLM
	case row.op == backends.OpEmbedding:
		row.model = ModelEmbeddings
	default:
		row.model = ModelVision
	}

	// tokens
	if row.in, err = intCol(colInputTokens); err != nil {
		return err
	}
	if row.out, err = intCol(colOutputTokens); err != nil {
		return err
	}
	if row.op != backends.OpTensor {
		if row.in < 1 {
			return bad(colInputTokens, "missing or 0 (required ≥ 1 for %s rows)", row.op)
		}
		if row.in > maxTextTokens {
			return bad(colInputTokens, "%d is more than the text generator's %d", row.in, maxTextTokens)
		}
	}
	if llm && row.out < 1 {
		return bad(colOutputTokens, "missing or 0 (required ≥ 1 for %s rows)", row.op)
	}
	if !llm {
		row.out = 0
	}

	// stream
	if v.set[colStream] {
		b, err := strconv.ParseBool(v.val[colStream])
		if err != nil {
			return bad(colStream, "%q is not true or false", v.val[colStream])
		}
		if b && !llm {
			return bad(colStream, "%s rows cannot stream", row.op)
		}
		row.stream = b
	}

	// priority
	row.priority = backends.Standard
	if v.set[colPriority] {
		if row.priority, err = backends.ParsePriority(v.val[colPriority]); err != nil {
			return bad(colPriority, "%v", err)
		}
	}

	// SLO
	if v.set[colSLO] || v.set[colSLOTTFT] || v.set[colSLOTPOT] {
		if row.slo.E2E, err = msCol(colSLO); err != nil {
			return err
		}
		if row.slo.TTFT, err = msCol(colSLOTTFT); err != nil {
			return err
		}
		if row.slo.TPOT, err = msCol(colSLOTPOT); err != nil {
			return err
		}
	} else {
		row.slo = StandardSLO(row.op, row.stream, row.priority, row.out)
	}

	// inputs, images
	n, err := intCol(colInputs)
	if err != nil {
		return err
	}
	if row.op == backends.OpEmbedding {
		row.count = max(n, 1)
		if v.set[colInputs] && n < 1 {
			return bad(colInputs, "must be ≥ 1")
		}
		if row.count > row.in {
			return bad(colInputs, "%d inputs cannot share %d input tokens", row.count, row.in)
		}
	}
	if n, err = intCol(colImages); err != nil {
		return err
	}
	if row.op == backends.OpTensor {
		if v.set[colImages] && n < 1 {
			return bad(colImages, "must be ≥ 1")
		}
		row.count = max(n, 1)
	}

	if v.set[colSessionID] {
		row.session = p.str(v.val[colSessionID])
	}
	if v.set[colSite] {
		row.site = p.str(v.val[colSite])
	}
	p.rows = append(p.rows, row)
	return nil
}

// traceSource replays parsed rows.
type traceSource struct {
	rows     []traceRow
	i        int
	r        *rand.Rand
	sessions map[string]*traceSession
}

type traceSession struct {
	turn    int
	msgs    []backends.Message
	tokens  int
	prevOut int
}

func (s *traceSource) Next(it *Item) bool {
	if s.i >= len(s.rows) {
		return false
	}
	row := &s.rows[s.i]
	*it = Item{
		Seq:          int64(s.i),
		At:           row.at,
		Op:           row.op,
		Model:        row.model,
		Stream:       row.stream,
		Priority:     row.priority,
		SLO:          row.slo,
		InputTokens:  row.in,
		OutputTokens: row.out,
		SessionID:    row.session,
		Site:         row.site,
	}
	s.i++
	c := corpus()
	var ss *traceSession
	if row.session != "" {
		ss = s.sessions[row.session]
		if ss == nil {
			ss = &traceSession{}
			s.sessions[row.session] = ss
		}
		ss.turn++
		it.Turn = ss.turn
		if row.last {
			delete(s.sessions, row.session)
		}
	}
	switch row.op {
	case backends.OpChat:
		if ss == nil {
			it.Messages = []backends.Message{{Role: roleUser, Content: c.text(s.r, row.in)}}
			break
		}
		if ss.prevOut > 0 {
			ss.msgs = append(ss.msgs, backends.Message{Role: roleAssistant, Content: c.text(s.r, ss.prevOut)})
			ss.tokens += ss.prevOut
		}
		user := max(row.in-ss.tokens, 1)
		ss.msgs = append(ss.msgs, backends.Message{Role: roleUser, Content: c.text(s.r, user)})
		ss.tokens += user
		ss.prevOut = row.out
		it.InputTokens = ss.tokens
		it.Messages = append([]backends.Message(nil), ss.msgs...)
	case backends.OpCompletion:
		it.Prompt = c.text(s.r, row.in)
	case backends.OpEmbedding:
		it.Inputs = make([]string, row.count)
		each, extra := row.in/row.count, row.in%row.count
		for i := range it.Inputs {
			n := each
			if i < extra {
				n++
			}
			it.Inputs[i] = c.text(s.r, n)
		}
	case backends.OpTensor:
		it.Images = row.count
	}
	return true
}

// WriteTraceJSONL writes the first n Items of src (all of them when n ≤ 0;
// src must then end) as a JSONL trace that ParseTrace replays into the same
// requests: the same times, types, models, token counts, streams, priorities,
// SLOs, sessions, sites, embedding input counts and image counts. The
// generated text differs, though chat sessions keep their structure and
// message lengths; Item.Timeout is not part of the format.
func WriteTraceJSONL(w io.Writer, src Source, n int) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var it Item
	var b []byte
	for i := 0; n <= 0 || i < n; i++ {
		if !src.Next(&it) {
			break
		}
		b = appendTraceJSON(b[:0], &it)
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func appendTraceJSON(b []byte, it *Item) []byte {
	b = append(b, `{"timestamp_s":`...)
	b = appendFixed(b, int64(it.At), 1e9)
	b = append(b, `,"type":`...)
	b = appendTraceString(b, it.Op.String())
	b = append(b, `,"model":`...)
	b = appendTraceString(b, it.Model)
	b = append(b, `,"input_tokens":`...)
	b = strconv.AppendInt(b, int64(it.InputTokens), 10)
	switch it.Op {
	case backends.OpChat, backends.OpCompletion:
		b = append(b, `,"output_tokens":`...)
		b = strconv.AppendInt(b, int64(it.OutputTokens), 10)
		b = append(b, `,"stream":`...)
		b = strconv.AppendBool(b, it.Stream)
	case backends.OpEmbedding:
		b = append(b, `,"inputs":`...)
		b = strconv.AppendInt(b, int64(len(it.Inputs)), 10)
	case backends.OpTensor:
		b = append(b, `,"images":`...)
		b = strconv.AppendInt(b, int64(it.Images), 10)
	}
	b = append(b, `,"slo_ms":`...)
	b = appendFixed(b, int64(it.SLO.E2E), 1e6)
	b = append(b, `,"slo_ttft_ms":`...)
	b = appendFixed(b, int64(it.SLO.TTFT), 1e6)
	b = append(b, `,"slo_tpot_ms":`...)
	b = appendFixed(b, int64(it.SLO.TPOT), 1e6)
	b = append(b, `,"priority":`...)
	b = appendTraceString(b, it.Priority.String())
	if it.SessionID != "" {
		b = append(b, `,"session_id":`...)
		b = appendTraceString(b, it.SessionID)
	}
	if it.Site != "" {
		b = append(b, `,"site":`...)
		b = appendTraceString(b, it.Site)
	}
	return append(b, "}\n"...)
}

// appendFixed writes v/unit as an exact decimal (unit a power of ten).
func appendFixed(b []byte, v, unit int64) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	b = strconv.AppendInt(b, v/unit, 10)
	frac := v % unit
	if frac == 0 {
		return b
	}
	digits := len(strconv.FormatInt(unit, 10)) - 1
	s := strconv.FormatInt(frac, 10)
	b = append(b, '.')
	for range digits - len(s) {
		b = append(b, '0')
	}
	return append(b, strings.TrimRight(s, "0")...)
}

func appendTraceString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
