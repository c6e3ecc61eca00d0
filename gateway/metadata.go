package gateway

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// DefaultMetadataInterval is how often RunMetadataChecks re-reads upstream
// model metadata, so a backend that was unreachable at start, or redeployed
// with another model, is checked again once it answers.
const DefaultMetadataInterval = 30 * time.Second

// CheckMetadata compares, for every backend that can report model metadata
// (backends.MetadataSource: KServe upstreams), each tensor model it serves
// with the fleet file's declaration. A backend that disagrees is taken out of
// rotation with a log line saying what differs; one that agrees again is put
// back. A backend that cannot be reached is left to passive health (the
// router ejects it when requests fail) and checked again next time. logf
// receives one line per finding.
func (d *Dispatcher) CheckMetadata(ctx context.Context, logf func(format string, a ...any)) {
	for i, b := range d.backends {
		src, ok := b.(backends.MetadataSource)
		if !ok {
			continue
		}
		desc := b.Descriptor()
		var problems []string
		reached := true
		for _, name := range desc.Models {
			m := d.models[name]
			if m == nil || m.Kind != backends.ModelTensor {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			md, err := src.ModelMetadata(cctx, name, "")
			cancel()
			if err != nil {
				logf("backend %s: cannot read metadata of model %s: %v (checked again in the next round)", desc.Name, name, err)
				reached = false
				continue
			}
			if diff := metadataDiff(m, md); diff != "" {
				problems = append(problems, fmt.Sprintf("model %s: %s", name, diff))
			}
		}
		d.mu.Lock()
		wasDown := d.mismatch[i]
		switch {
		case len(problems) > 0:
			d.mismatch[i] = true
			d.r.SetDown(i, true)
		case reached && wasDown:
			d.mismatch[i] = false
			d.r.SetDown(i, d.unhealthy != nil && d.unhealthy[i]) // still down if the health checks say so
		}
		d.mu.Unlock()
		if len(problems) > 0 && !wasDown {
			logf("backend %s: out of rotation: its metadata differs from the fleet file: %s", desc.Name, strings.Join(problems, "; "))
		} else if reached && len(problems) == 0 && wasDown {
			logf("backend %s: metadata matches the fleet file again; back in rotation", desc.Name)
		}
	}
}

// RunMetadataChecks calls CheckMetadata at once and then every interval
// until ctx ends.
func (d *Dispatcher) RunMetadataChecks(ctx context.Context, interval time.Duration, logf func(string, ...any)) {
	if interval <= 0 {
		interval = DefaultMetadataInterval
	}
	d.CheckMetadata(ctx, logf)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.CheckMetadata(ctx, logf)
		}
	}
}

// metadataDiff describes how an upstream's metadata differs from the fleet
// file's model, or returns "" when it agrees. The platform is compared only
// when both name one; tensors are compared by name, datatype and shape.
func metadataDiff(m *backends.Model, md *backends.ModelMetadata) string {
	var diffs []string
	if m.Platform != "" && md.Platform != "" && m.Platform != md.Platform {
		diffs = append(diffs, fmt.Sprintf("platform %q, fleet file says %q", md.Platform, m.Platform))
	}
	diffs = append(diffs, tensorDiffs("input", m.Inputs, md.Inputs)...)
	diffs = append(diffs, tensorDiffs("output", m.Outputs, md.Outputs)...)
	return strings.Join(diffs, ", ")
}

func tensorDiffs(kind string, want, got []backends.TensorSpec) []string {
	var diffs []string
	for _, w := range want {
		g := findSpec(got, w.Name)
		switch {
		case g == nil:
			diffs = append(diffs, fmt.Sprintf("%s %q missing upstream", kind, w.Name))
		case g.Datatype != w.Datatype:
			diffs = append(diffs, fmt.Sprintf("%s %q datatype %s, fleet file says %s", kind, w.Name, g.Datatype, w.Datatype))
		case !slices.Equal(g.Shape, w.Shape):
			diffs = append(diffs, fmt.Sprintf("%s %q shape %v, fleet file says %v", kind, w.Name, g.Shape, w.Shape))
		}
	}
	for _, g := range got {
		if findSpec(want, g.Name) == nil {
			diffs = append(diffs, fmt.Sprintf("upstream has %s %q the fleet file does not declare", kind, g.Name))
		}
	}
	return diffs
}
