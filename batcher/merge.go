package batcher

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/accelgate/accelgate/backends"
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
	offsets = make([]int, len(reqs)+1)
	for k, r := range reqs {
		offsets[k+1] = offsets[k] + len(r.Inputs)
	}
	inputs = make([]string, 0, offsets[len(reqs)])
	for _, r := range reqs {
		inputs = append(inputs, r.Inputs...)
	}
	return inputs, offsets
}

// SplitResult cuts one merged Result (of a tensor or embeddings batch) into
// one Result per caller, offsets as the merge returned them:
//
//   - Tensors: each caller's rows (SplitTensors); Embeddings: each caller's
//     vectors, in input order.
//   - Usage: split proportionally to each caller's own input tokens when
//     every caller's are known (Request.EstInputTokens > 0), else by rows;
//     rounded by largest remainder so the parts sum to the batch's usage
//     exactly.
//   - Timing: each caller gets the batch's QueueWait, TTFT and Total; Busy
//     and CostUSD are split by rows (the emulator's cost rule for batches).
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
	completion := apportion(res.Usage.CompletionTokens, weights)
	busy := apportion(int(res.Timing.Busy), rows)
	rowSum := max(total, 1)
	for k := range out {
		u := &out[k].Usage
		u.PromptTokens, u.CompletionTokens = prompt[k], completion[k]
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
		out[k].Timing.Busy = time.Duration(busy[k])
		out[k].CostUSD = res.CostUSD * float64(rows[k]) / float64(rowSum)
	}
	return out, nil
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
