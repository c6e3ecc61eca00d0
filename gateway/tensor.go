package gateway

import (
	"fmt"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// TensorParams are the scheduling parameters a KServe v2 client may send as
// request parameters (HTTP JSON "parameters", gRPC InferParameter map). The
// Has* flags say which were present.
type TensorParams struct {
	HasSLO      bool
	SLOms       float64 // "slo_ms": end-to-end target in milliseconds
	HasPriority bool
	Priority    int64 // "priority", Triton's meaning: 0 = model default, 1 = critical, 2 = standard, >= 3 = sheddable
	HasTimeout  bool
	TimeoutUS   int64 // "timeout", Triton's meaning: microseconds; shortens the hard timeout, never lengthens it
}

// PrepareTensorRequest checks a decoded KServe v2 infer request against the
// model's metadata — version, input names, datatypes, shapes, data lengths,
// requested outputs — and sets req.Rows to the batch size. Errors wrap
// backends.ErrBadRequest (400 / InvalidArgument) or, for an unknown version,
// backends.ErrUnknownModel (404 / NotFound). Both fronts call it.
func PrepareTensorRequest(req *backends.Request, m *backends.Model) error {
	if !m.HasVersion(req.ModelVersion) {
		return fmt.Errorf("%w: model %q has no version %q", backends.ErrUnknownModel, m.Name, req.ModelVersion)
	}
	if len(req.Tensors) == 0 {
		return backends.BadRequestf("inputs", "the request has no inputs; model %q expects %d", m.Name, len(m.Inputs))
	}
	req.Rows = 1
	for i := range req.Tensors {
		t := &req.Tensors[i]
		for j := 0; j < i; j++ {
			if req.Tensors[j].Name == t.Name {
				return backends.BadRequestf("inputs", "input %q appears twice", t.Name)
			}
		}
		spec := findSpec(m.Inputs, t.Name)
		if spec == nil {
			return backends.BadRequestf("inputs", "model %q has no input %q (inputs: %s)", m.Name, t.Name, specNames(m.Inputs))
		}
		if err := spec.Matches(t); err != nil {
			return err
		}
		if err := t.Validate(); err != nil {
			return err
		}
		if i == 0 && len(spec.Shape) > 0 && spec.Shape[0] < 0 && len(t.Shape) > 0 {
			req.Rows = int(t.Shape[0])
		}
	}
	if len(req.Tensors) != len(m.Inputs) {
		for _, s := range m.Inputs {
			if !hasTensor(req.Tensors, s.Name) {
				return backends.BadRequestf("inputs", "missing input %q for model %q", s.Name, m.Name)
			}
		}
	}
	if req.Rows < 1 {
		return backends.BadRequestf("inputs", "the batch dimension of input %q is 0", req.Tensors[0].Name)
	}
	for _, o := range req.Outputs {
		if findSpec(m.Outputs, o.Name) == nil {
			return backends.BadRequestf("outputs", "model %q has no output %q (outputs: %s)", m.Name, o.Name, specNames(m.Outputs))
		}
	}
	req.Op = backends.OpTensor
	return nil
}

// ApplyTensorScheduling sets a tensor request's class, SLO and hard deadline:
// first the model's defaults and the x-accelgate-* headers (HTTP) or metadata
// (gRPC) through get, then the request parameters, then the transport's own
// deadline (a gRPC call's deadline; zero when none), which can only shorten
// the hard timeout.
func ApplyTensorScheduling(req *backends.Request, m *backends.Model, get headerGetter, p TensorParams, transportDeadline, now time.Time) error {
	if err := applyHeaders(req, m, get, now); err != nil {
		return err
	}
	if p.HasPriority {
		switch {
		case p.Priority < 0:
			return backends.BadRequestf("priority", "priority must be >= 0, got %d", p.Priority)
		case p.Priority == 0:
		case p.Priority == 1:
			req.Priority = backends.Critical
		case p.Priority == 2:
			req.Priority = backends.Standard
		default:
			req.Priority = backends.Sheddable
		}
		if p.Priority > 0 && len(get(HeaderSLO)) == 0 && !p.HasSLO {
			req.SLO = m.SLO[req.Priority]
		}
	}
	if p.HasSLO {
		if p.SLOms < 0 || p.SLOms > 1e9 {
			return backends.BadRequestf("slo_ms", "slo_ms must be a non-negative number of milliseconds, got %v", p.SLOms)
		}
		req.SLO.E2E = time.Duration(p.SLOms * float64(time.Millisecond))
	}
	if p.HasTimeout {
		if p.TimeoutUS <= 0 {
			return backends.BadRequestf("timeout", "timeout must be a positive number of microseconds, got %d", p.TimeoutUS)
		}
		if d := now.Add(time.Duration(p.TimeoutUS) * time.Microsecond); d.Before(req.Deadline) {
			req.Deadline = d
		}
	}
	if !transportDeadline.IsZero() && transportDeadline.Before(req.Deadline) {
		req.Deadline = transportDeadline
	}
	return nil
}

// SelectOutputs keeps the outputs the request asked for (all when it named
// none), in the order it named them.
func SelectOutputs(req *backends.Request, outs []backends.Tensor) []backends.Tensor {
	if len(req.Outputs) == 0 {
		return outs
	}
	sel := make([]backends.Tensor, 0, len(req.Outputs))
	for _, o := range req.Outputs {
		for i := range outs {
			if outs[i].Name == o.Name {
				sel = append(sel, outs[i])
			}
		}
	}
	return sel
}

func findSpec(specs []backends.TensorSpec, name string) *backends.TensorSpec {
	for i := range specs {
		if specs[i].Name == name {
			return &specs[i]
		}
	}
	return nil
}

func hasTensor(ts []backends.Tensor, name string) bool {
	for i := range ts {
		if ts[i].Name == name {
			return true
		}
	}
	return false
}

func specNames(specs []backends.TensorSpec) string {
	s := ""
	for i, sp := range specs {
		if i > 0 {
			s += ", "
		}
		s += sp.Name
	}
	return s
}
