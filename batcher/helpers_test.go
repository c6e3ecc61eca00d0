package batcher

import (
	"strconv"
	"time"

	"github.com/accelgate/accelgate/backends"
)

var t0 = time.Unix(1_700_000_000, 0)

func at(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }

func msd(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// linPred predicts base + per·rows.
type linPred struct{ base, per time.Duration }

func (p linPred) BatchLatency(_ int, _ *backends.Model, rows, _ int, _ backends.Priority) time.Duration {
	return p.base + p.per*time.Duration(rows)
}

var (
	visionModel = &backends.Model{Name: "resnet", Kind: backends.ModelTensor, Versions: []string{"1"}}
	embedModel  = &backends.Model{Name: "bge", Kind: backends.ModelEmbedding}
	llmModel    = &backends.Model{Name: "llama", Kind: backends.ModelLLM}
	testModels  = map[string]*backends.Model{"resnet": visionModel, "bge": embedModel, "llama": llmModel}
)

var nextID int

// vreq is a 1-row-per-row FP32 [rows, 2] vision request arriving at arr
// with an E2E target (0 = none).
func vreq(p backends.Priority, arr time.Time, e2e time.Duration, rows int) *backends.Request {
	nextID++
	return &backends.Request{
		ID: "r" + strconv.Itoa(nextID), Op: backends.OpTensor, Model: "resnet", Priority: p,
		SLO: backends.SLO{E2E: e2e}, Arrival: arr, Rows: rows,
		Tensors: []backends.Tensor{{Name: "x", Datatype: backends.FP32, Shape: []int64{int64(rows), 2}, Data: make([]byte, rows*8)}},
	}
}

func newTestCore(cfg Config, pred Predictor) *Core {
	return NewCore(Options{
		Models:    testModels,
		Configs:   map[string]Config{"resnet": cfg, "bge": cfg, "llama": cfg},
		Predictor: pred,
		Slots:     4,
	})
}

func ids(rs []*backends.Request) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}
