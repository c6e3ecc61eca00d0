package batcher

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/internal/jsonw"
)

// MergeTensors concatenates the input tensors of reqs (KServe v2 requests for
// one model and version) along dimension 0, the batch dimension. Every
// request must carry the same inputs in the same order: same name, datatype
// and shape after dimension 0, and each of its inputs as many rows
// (dimension 0) as its first. Data is concatenated as is: fixed-size
// elements are little-endian back to back and BYTES elements carry their own
// length prefixes, so both concatenate row-wise.
//
// offsets has len(reqs)+1 entries: request k owns rows
// offsets[k]..offsets[k+1] of the merged tensors (offsets[len(reqs)] is the
// total). Errors wrap backends.ErrBadRequest.
func MergeTensors(reqs []*backends.Request) ([]backends.Tensor, []int, error) {
	if len(reqs) == 0 {
		return nil, nil, backends.BadRequestf("", "no requests to merge")
	}
	first := reqs[0].Tensors
	if len(first) == 0 {
		return nil, nil, backends.BadRequestf("", "request %q has no input tensors", reqs[0].ID)
	}
	offsets := make([]int, len(reqs)+1)
	for k, r := range reqs {
		if len(r.Tensors) != len(first) {
			return nil, nil, backends.BadRequestf("", "request %q has %d inputs, request %q has %d", r.ID, len(r.Tensors), reqs[0].ID, len(first))
		}
		var rows int64 = -1
		for i := range r.Tensors {
			t, f := &r.Tensors[i], &first[i]
			if t.Name != f.Name || t.Datatype != f.Datatype {
				return nil, nil, backends.BadRequestf(t.Name, "input %d of request %q is %s %s, request %q has %s %s",
					i, r.ID, t.Name, t.Datatype, reqs[0].ID, f.Name, f.Datatype)
			}
			if err := sameTrailing(t, f); err != nil {
				return nil, nil, err
			}
			if rows >= 0 && t.Shape[0] != rows {
				return nil, nil, backends.BadRequestf(t.Name, "input %q of request %q has %d rows, its first input %d", t.Name, r.ID, t.Shape[0], rows)
			}
			rows = t.Shape[0]
			if err := t.Validate(); err != nil {
				return nil, nil, err
			}
		}
		offsets[k+1] = offsets[k] + int(rows)
	}
	out := make([]backends.Tensor, len(first))
	for i := range first {
		size := 0
		for _, r := range reqs {
			size += len(r.Tensors[i].Data)
		}
		t := backends.Tensor{Name: first[i].Name, Datatype: first[i].Datatype, Shape: append([]int64(nil), first[i].Shape...), Data: make([]byte, 0, size)}
		t.Shape[0] = int64(offsets[len(reqs)])
		for _, r := range reqs {
			t.Data = append(t.Data, r.Tensors[i].Data...)
		}
		out[i] = t
	}
	return out, offsets, nil
}

// sameTrailing checks that t has a batch dimension and f's shape after it.
func sameTrailing(t, f *backends.Tensor) error {
	if len(t.Shape) == 0 {
		return backends.BadRequestf(t.Name, "input %q has no batch dimension", t.Name)
	}
	if len(t.Shape) != len(f.Shape) {
		return backends.BadRequestf(t.Name, "input %q has shape %v, another request's has %v", t.Name, t.Shape, f.Shape)
	}
	for d := 1; d < len(t.Shape); d++ {
		if t.Shape[d] != f.Shape[d] {
			return backends.BadRequestf(t.Name, "input %q has shape %v, another request's has %v", t.Name, t.Shape, f.Shape)
		}
	}
	return nil
}

// SplitTensors cuts merged output tensors back into each caller's rows:
// parts[k] holds every output restricted to rows offsets[k]..offsets[k+1]
// (offsets as MergeTensors returned them). Every output must be batched: its
// dimension 0 equals offsets[len(offsets)-1]. The parts' Data are
// capacity-limited views of the outputs' Data (no copy); their Shapes are
// their own. Errors wrap backends.ErrUnavailable: the backend returned
// outputs that do not match the batch.
func SplitTensors(outs []backends.Tensor, offsets []int) ([][]backends.Tensor, error) {
	if len(offsets) < 2 {
		return nil, fmt.Errorf("%w: split needs at least one caller's offsets", backends.ErrUnavailable)
	}
	callers := len(offsets) - 1
	total := offsets[callers]
	parts := make([][]backends.Tensor, callers)
	for k := range parts {
		parts[k] = make([]backends.Tensor, len(outs))
	}
	bounds := make([]int, len(offsets))
	for i := range outs {
		o := &outs[i]
		if len(o.Shape) == 0 || o.Shape[0] != int64(total) {
			return nil, fmt.Errorf("%w: output %q has shape %v, not a batch of %d rows", backends.ErrUnavailable, o.Name, o.Shape, total)
		}
		perRow := backends.NumElements(o.Shape[1:])
		if perRow < 0 {
			return nil, fmt.Errorf("%w: output %q has an invalid shape %v", backends.ErrUnavailable, o.Name, o.Shape)
		}
		if err := rowBounds(o, int(perRow), offsets, bounds); err != nil {
			return nil, err
		}
		for k := range callers {
			shape := append([]int64(nil), o.Shape...)
			shape[0] = int64(offsets[k+1] - offsets[k])
			parts[k][i] = backends.Tensor{Name: o.Name, Datatype: o.Datatype, Shape: shape,
				Data: o.Data[bounds[k]:bounds[k+1]:bounds[k+1]]}
		}
	}
	return parts, nil
}

// rowBounds fills bounds[k] with the byte offset of row offsets[k] in o.Data.
func rowBounds(o *backends.Tensor, perRow int, offsets, bounds []int) error {
	total := offsets[len(offsets)-1]
	if sz := o.Datatype.Size(); sz > 0 {
		if len(o.Data) != total*perRow*sz {
			return fmt.Errorf("%w: output %q has %d bytes, its shape %v needs %d", backends.ErrUnavailable, o.Name, len(o.Data), o.Shape, total*perRow*sz)
		}
		for k, off := range offsets {
			bounds[k] = off * perRow * sz
		}
		return nil
	}
	if o.Datatype != backends.BYTES {
		return fmt.Errorf("%w: output %q has an invalid datatype", backends.ErrUnavailable, o.Name)
	}
	// BYTES: walk the length prefixes, noting where each caller's rows start.
	pos, elem := 0, 0
	k := 0
	for row := 0; row <= total; row++ {
		for k < len(offsets) && offsets[k] == row {
			bounds[k] = pos
			k++
		}
		if row == total {
			break
		}
		for range perRow {
			if len(o.Data)-pos < 4 {
				return fmt.Errorf("%w: BYTES output %q ends inside element %d", backends.ErrUnavailable, o.Name, elem)
			}
			l := int(binary.LittleEndian.Uint32(o.Data[pos:]))
			if l > len(o.Data)-pos-4 {
				return fmt.Errorf("%w: BYTES output %q element %d overruns its data", backends.ErrUnavailable, o.Name, elem)
			}
			pos += 4 + l
			elem++
		}
	}
	if pos != len(o.Data) {
		return fmt.Errorf("%w: BYTES output %q has %d bytes after its %d elements", backends.ErrUnavailable, o.Name, len(o.Data)-pos, elem)
	}
	return nil
}

// MergeEmbeddings concatenates the inputs of embeddings requests; request k
// owns inputs offsets[k]..offsets[k+1].
func MergeEmbeddings(reqs []*backends.Request) (inputs []string, offsets []int) {
	return concatStrings(reqs, func(r *backends.Request) []string { return r.Inputs })
}

// MergeCompletions concatenates the prompts of completions requests (of one
// batch: the same n); request k owns prompts offsets[k]..offsets[k+1], so
// choices offsets[k]·n..offsets[k+1]·n of the merged call (an
// OpenAI-compatible server answers a prompt array prompt-major: choice i
// belongs to prompt i/n).
func MergeCompletions(reqs []*backends.Request) (prompts []string, offsets []int) {
	return concatStrings(reqs, func(r *backends.Request) []string { return r.Prompts })
}

// concatStrings concatenates the strings of(r) of every request; request k
// owns all[offsets[k]:offsets[k+1]].
func concatStrings(reqs []*backends.Request, of func(*backends.Request) []string) (all []string, offsets []int) {
	offsets = make([]int, len(reqs)+1)
	for k, r := range reqs {
		offsets[k+1] = offsets[k] + len(of(r))
	}
	all = make([]string, 0, offsets[len(reqs)])
	for _, r := range reqs {
		all = append(all, of(r)...)
	}
	return all, offsets
}

// MergeBody returns an OpenAI request body (a JSON object) with its
// top-level member key set to the JSON array of values: the merged call's
// body for an OpenAI-compatible upstream, built from the batch's first
// member's (key "input" for embeddings, "prompt" for completions). Every
// other member is kept byte for byte; the members come out sorted by key.
// A nil body gives nil (a backend that does not relay bodies). Errors wrap
// backends.ErrBadRequest.
func MergeBody(body []byte, key string, values []string) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil || members == nil {
		return nil, backends.BadRequestf("", "the request body is not a JSON object")
	}
	size := len(body) + len(key) + 4
	for _, v := range values {
		size += len(v) + 3
	}
	out := make([]byte, 0, size)
	out = append(out, '{')
	out = jsonw.AppendString(out, key)
	out = append(out, ":["...)
	for i, v := range values {
		if i > 0 {
			out = append(out, ',')
		}
		out = jsonw.AppendString(out, v)
	}
	out = append(out, ']')
	for _, k := range slices.Sorted(maps.Keys(members)) {
		if k == key {
			continue
		}
		out = append(out, ',')
		out = jsonw.AppendString(out, k)
		out = append(out, ':')
		out = append(out, bytes.TrimSpace(members[k])...)
	}
	return append(out, '}'), nil
}

// SplitResult cuts one merged Result (of a tensor, embeddings or
// completions batch) into one Result per caller, offsets as the merge
// returned them:
//
//   - Tensors: each caller's rows (SplitTensors); Embeddings: each caller's
//     vectors, in input order; Choices (completions, offsets in prompts):
//     choice i goes to the caller of prompt i/n, re-indexed from 0.
//   - Raw, an OpenAI-compatible upstream's JSON body: each caller gets an
//     OpenAI body of its own. Embeddings: {"object":"list","data":[...],
//     "model","usage"} with its vectors re-indexed from 0, each embedding
//     copied byte for byte (float array or base64 string, as the upstream
//     returned it). Completions: {"id" (the caller's request ID), "object":
//     "text_completion", "created", "model", "choices", "usage"} (and the
//     upstream's system_fingerprint), its choices re-indexed from 0 with
//     their other members (text, finish_reason, logprobs, ...) kept. The
//     model is the caller's Request.Model (the public name).
//   - Usage: prompt tokens split proportionally to each caller's own input
//     tokens when every caller's are known (Request.EstInputTokens > 0),
//     else by rows; completion tokens likewise, except for completions,
//     where they are split by the bytes of each caller's choices' text (the
//     upstream reports no per-choice usage; by input tokens when no choice
//     has text); rounded by largest remainder so the parts sum to the
//     batch's usage exactly.
//   - Timing: each caller gets the batch's QueueWait, TTFT and Total; Busy
//     and CostUSD are split by rows (the emulator's cost rule for batches;
//     completions: by prompts, all with the same n).
//
// Errors wrap backends.ErrUnavailable: the backend's answer does not match
// the batch.
func SplitResult(res *backends.Result, reqs []*backends.Request, offsets []int) ([]*backends.Result, error) {
	if len(offsets) != len(reqs)+1 {
		return nil, fmt.Errorf("%w: %d offsets for %d callers", backends.ErrUnavailable, len(offsets), len(reqs))
	}
	n := len(reqs)
	total := offsets[n]
	out := make([]*backends.Result, n)
	for k := range out {
		out[k] = &backends.Result{Timing: res.Timing}
	}
	completions := n > 0 && reqs[0].Op == backends.OpCompletion
	perPrompt := 1
	if completions {
		perPrompt = max(reqs[0].N, 1)
	}
	var textBytes []int // completions: each caller's choices' text bytes
	var embRaw [][]json.RawMessage
	var cmpRaw *completionsJSON
	switch {
	case res.Raw != nil && completions:
		c, err := parseCompletions(res.Raw, total*perPrompt)
		if err != nil {
			return nil, err
		}
		cmpRaw = c
		textBytes = make([]int, n)
		for k := range n {
			for _, ch := range c.choices[offsets[k]*perPrompt : offsets[k+1]*perPrompt] {
				textBytes[k] += ch.textLen
			}
		}
	case res.Raw != nil && n > 0 && reqs[0].Op == backends.OpEmbedding:
		vecs, err := parseEmbeddings(res.Raw, total)
		if err != nil {
			return nil, err
		}
		embRaw = make([][]json.RawMessage, n)
		for k := range n {
			embRaw[k] = vecs[offsets[k]:offsets[k+1]:offsets[k+1]]
		}
	case res.Raw != nil:
		return nil, fmt.Errorf("%w: an upstream's raw answer to a merged %s batch cannot be split", backends.ErrUnavailable, reqs[0].Op)
	case completions && len(res.Choices) > 0:
		choices, err := splitChoices(res.Choices, offsets, perPrompt)
		if err != nil {
			return nil, err
		}
		textBytes = make([]int, n)
		for k := range n {
			out[k].Choices = choices[k]
			for _, c := range choices[k] {
				textBytes[k] += len(c.Text)
			}
		}
	}
	if len(res.Tensors) > 0 {
		parts, err := SplitTensors(res.Tensors, offsets)
		if err != nil {
			return nil, err
		}
		for k := range out {
			out[k].Tensors = parts[k]
		}
	}
	if len(res.Embeddings) > 0 {
		if len(res.Embeddings) != total {
			return nil, fmt.Errorf("%w: %d embeddings for %d inputs", backends.ErrUnavailable, len(res.Embeddings), total)
		}
		for k := range out {
			out[k].Embeddings = res.Embeddings[offsets[k]:offsets[k+1]:offsets[k+1]]
		}
	}
	rows := make([]int, n)
	weights := make([]int, n)
	byTokens := true
	for k, r := range reqs {
		rows[k] = offsets[k+1] - offsets[k]
		weights[k] = r.EstInputTokens
		if r.EstInputTokens <= 0 {
			byTokens = false
		}
	}
	if !byTokens {
		copy(weights, rows)
	}
	prompt := apportion(res.Usage.PromptTokens, weights)
	cw := weights
	if textBytes != nil && slices.ContainsFunc(textBytes, func(b int) bool { return b > 0 }) {
		cw = textBytes
	}
	completion := apportion(res.Usage.CompletionTokens, cw)
	busy := apportion(int(res.Timing.Busy), rows)
	rowSum := max(total, 1)
	for k := range out {
		u := &out[k].Usage
		u.PromptTokens, u.CompletionTokens = prompt[k], completion[k]
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
		out[k].Timing.Busy = time.Duration(busy[k])
		out[k].CostUSD = res.CostUSD * float64(rows[k]) / float64(rowSum)
		switch {
		case embRaw != nil:
			out[k].Raw = appendEmbeddingsBody(nil, reqs[k].Model, embRaw[k], u)
		case cmpRaw != nil:
			out[k].Raw = cmpRaw.appendBody(nil, reqs[k], cmpRaw.choices[offsets[k]*perPrompt:offsets[k+1]*perPrompt], u)
		}
	}
	return out, nil
}

// splitChoices gives each caller its choices, re-indexed from 0: choice i
// (by Index) belongs to prompt i/perPrompt.
func splitChoices(choices []backends.Choice, offsets []int, perPrompt int) ([][]backends.Choice, error) {
	n := len(offsets) - 1
	want := offsets[n] * perPrompt
	if len(choices) != want {
		return nil, fmt.Errorf("%w: %d choices for %d prompts × n=%d", backends.ErrUnavailable, len(choices), offsets[n], perPrompt)
	}
	byIndex := make([]backends.Choice, want)
	seen := make([]bool, want)
	for _, c := range choices {
		if c.Index < 0 || c.Index >= want || seen[c.Index] {
			return nil, fmt.Errorf("%w: choice index %d is out of range or repeated (%d choices)", backends.ErrUnavailable, c.Index, want)
		}
		byIndex[c.Index], seen[c.Index] = c, true
	}
	parts := make([][]backends.Choice, n)
	for k := range parts {
		lo, hi := offsets[k]*perPrompt, offsets[k+1]*perPrompt
		parts[k] = byIndex[lo:hi:hi]
		for j := range parts[k] {
			parts[k][j].Index = j
		}
	}
	return parts, nil
}

// parseEmbeddings reads an OpenAI embeddings response: data[i].embedding
// for each of the total inputs, ordered by data[i].index (by position when
// the upstream gives no index), each kept as the upstream encoded it.
func parseEmbeddings(raw []byte, total int) ([]json.RawMessage, error) {
	var body struct {
		Data []struct {
			Index     *int            `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fmt.Errorf("%w: the upstream's embeddings response is not valid JSON: %v", backends.ErrUnavailable, err)
	}
	if len(body.Data) != total {
		return nil, fmt.Errorf("%w: the upstream returned %d embeddings for %d inputs", backends.ErrUnavailable, len(body.Data), total)
	}
	out := make([]json.RawMessage, total)
	for i, d := range body.Data {
		at := i
		if d.Index != nil {
			at = *d.Index
		}
		if at < 0 || at >= total || out[at] != nil {
			return nil, fmt.Errorf("%w: the upstream's embedding index %d is out of range or repeated (%d inputs)", backends.ErrUnavailable, at, total)
		}
		if len(d.Embedding) == 0 || string(d.Embedding) == "null" {
			return nil, fmt.Errorf("%w: the upstream's embedding %d is missing", backends.ErrUnavailable, at)
		}
		out[at] = d.Embedding
	}
	return out, nil
}

// appendEmbeddingsBody renders one caller's OpenAI embeddings response.
func appendEmbeddingsBody(b []byte, model string, vecs []json.RawMessage, u *backends.Usage) []byte {
	b = append(b, `{"object":"list","data":[`...)
	for j, v := range vecs {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(j), 10)
		b = append(b, `,"embedding":`...)
		b = append(b, v...)
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	b = jsonw.AppendString(b, model)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(u.PromptTokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(u.TotalTokens), 10)
	return append(b, "}}"...)
}

// completionsJSON is what the split keeps of an OpenAI completions
// response: its choices in index order and the members every caller's
// body repeats.
type completionsJSON struct {
	created     json.RawMessage
	fingerprint json.RawMessage
	choices     []rawChoice
}

// rawChoice is one choice of an upstream's completions response: its
// members other than "index", sorted by key, and its text's length.
type rawChoice struct {
	keys    []string
	members map[string]json.RawMessage
	textLen int
}

// parseCompletions reads an OpenAI completions response with want choices.
func parseCompletions(raw []byte, want int) (*completionsJSON, error) {
	var body struct {
		Created           json.RawMessage              `json:"created"`
		SystemFingerprint json.RawMessage              `json:"system_fingerprint"`
		Choices           []map[string]json.RawMessage `json:"choices"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fmt.Errorf("%w: the upstream's completions response is not valid JSON: %v", backends.ErrUnavailable, err)
	}
	if len(body.Choices) != want {
		return nil, fmt.Errorf("%w: the upstream returned %d choices, the merged call asked for %d", backends.ErrUnavailable, len(body.Choices), want)
	}
	c := &completionsJSON{created: body.Created, fingerprint: body.SystemFingerprint, choices: make([]rawChoice, want)}
	seen := make([]bool, want)
	for i, m := range body.Choices {
		at := i
		if v, ok := m["index"]; ok {
			if err := json.Unmarshal(v, &at); err != nil {
				return nil, fmt.Errorf("%w: the upstream's choice %d has an invalid index", backends.ErrUnavailable, i)
			}
		}
		if at < 0 || at >= want || seen[at] {
			return nil, fmt.Errorf("%w: the upstream's choice index %d is out of range or repeated (%d choices)", backends.ErrUnavailable, at, want)
		}
		seen[at] = true
		delete(m, "index")
		ch := rawChoice{keys: slices.Sorted(maps.Keys(m)), members: m}
		var text string
		if v, ok := m["text"]; ok && json.Unmarshal(v, &text) == nil {
			ch.textLen = len(text)
		}
		c.choices[at] = ch
	}
	return c, nil
}

// appendBody renders one caller's OpenAI completions response.
func (c *completionsJSON) appendBody(b []byte, req *backends.Request, choices []rawChoice, u *backends.Usage) []byte {
	b = append(b, `{"id":`...)
	b = jsonw.AppendString(b, req.ID)
	b = append(b, `,"object":"text_completion","created":`...)
	if len(c.created) > 0 {
		b = append(b, c.created...)
	} else {
		b = append(b, '0')
	}
	b = append(b, `,"model":`...)
	b = jsonw.AppendString(b, req.Model)
	b = append(b, `,"choices":[`...)
	for j, ch := range choices {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(j), 10)
		for _, k := range ch.keys {
			b = append(b, ',')
			b = jsonw.AppendString(b, k)
			b = append(b, ':')
			b = append(b, ch.members[k]...)
		}
		b = append(b, '}')
	}
	b = append(b, `],"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(u.PromptTokens), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(u.CompletionTokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(u.TotalTokens), 10)
	b = append(b, '}')
	if len(c.fingerprint) > 0 && string(c.fingerprint) != "null" {
		b = append(b, `,"system_fingerprint":`...)
		b = append(b, c.fingerprint...)
	}
	return append(b, '}')
}

// apportion splits total in proportion to weights (equally when they sum to
// zero) by the largest-remainder method: the parts sum to total exactly.
func apportion(total int, weights []int) []int {
	parts := make([]int, len(weights))
	if len(weights) == 0 {
		return parts
	}
	sum := 0
	for _, w := range weights {
		sum += max(w, 0)
	}
	ws := weights
	if sum == 0 {
		ws = make([]int, len(weights))
		for i := range ws {
			ws[i] = 1
		}
		sum = len(ws)
	}
	given := 0
	rem := make([]int64, len(ws))
	for i, w := range ws {
		num := int64(total) * int64(max(w, 0))
		parts[i] = int(num / int64(sum))
		rem[i] = num % int64(sum)
		given += parts[i]
	}
	for left := total - given; left > 0; left-- {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		parts[best]++
		rem[best] = -1
	}
	return parts
}
