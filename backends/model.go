package backends

import "time"

// ModelKind is the workload class of a served model.
type ModelKind string

// The workload classes.
const (
	ModelLLM       ModelKind = "llm"       // chat and completions
	ModelEmbedding ModelKind = "embedding" // embeddings
	ModelTensor    ModelKind = "tensor"    // KServe v2 tensors (vision)
)

// DefaultTimeout is a model's hard timeout when the fleet file sets none.
const DefaultTimeout = 60 * time.Second

// Model is one served model's settings, from the fleet file's models section.
// The gateway looks it up by name on every request, so it is immutable once the
// fleet is built.
type Model struct {
	Name            string
	Kind            ModelKind
	DefaultPriority Priority
	// SLO holds the default targets per priority, indexed by Priority.
	SLO     [NumPriorities]SLO
	Timeout time.Duration // hard timeout; a client may shorten it, never lengthen it

	ContextLength        int // LLM: prompt + max_tokens must fit
	ExpectedOutputTokens int // LLM: output length placement plans for when max_tokens is absent
	Dimension            int // embedding: vector dimension
	Classes              int // tensor (vision): number of output logits per item

	// Tensor (KServe v2) metadata.
	Platform string       // e.g. "onnxruntime_onnx", "tensorrt_plan"
	Versions []string     // served versions; the first is the default
	Inputs   []TensorSpec // input tensors
	Outputs  []TensorSpec // output tensors
}

// HasVersion reports whether v names a served version ("" means the default).
func (m *Model) HasVersion(v string) bool {
	if v == "" {
		return true
	}
	for _, x := range m.Versions {
		if x == v {
			return true
		}
	}
	return false
}

// Serves reports whether the model's kind serves op.
func (m *Model) Serves(op Op) bool {
	switch m.Kind {
	case ModelLLM:
		return op == OpChat || op == OpCompletion
	case ModelEmbedding:
		return op == OpEmbedding
	case ModelTensor:
		return op == OpTensor
	}
	return false
}
