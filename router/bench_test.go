package router

import (
	"fmt"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// benchFleet returns n backends serving the test models over classes
// hardware classes (a profile shared by n/classes replicas each, as real
// fleets are built: many replicas of a few kinds of hardware), with loads
// spread so that the candidates differ.
func benchFleet(n, classes int) []*backends.Descriptor {
	profiles := make([]*backends.Profile, classes)
	for c := range profiles {
		profiles[c] = llmProfile(fmt.Sprint("class", c), float64(c%7+1), float64(5+c%9), 64)
	}
	ds := make([]*backends.Descriptor, n)
	for i := range ds {
		ds[i] = desc(fmt.Sprint(i), profiles[i%classes], 0)
	}
	return ds
}

func BenchmarkPlace(b *testing.B) {
	for _, c := range []struct{ n, classes int }{{4, 4}, {16, 4}, {64, 4}, {64, 64}, {4096, 16}} {
		b.Run(fmt.Sprintf("backends=%d/classes=%d", c.n, c.classes), func(b *testing.B) {
			r, _ := New(Config{}, benchFleet(c.n, c.classes), nil)
			// Some load everywhere, so that the index has something to sort.
			req := chat(backends.Standard, 50*time.Millisecond, true)
			for k := 0; k < c.n*3; k++ {
				r.Place(t0, req, llmModel, -1)
			}
			b.ReportAllocs()
			for b.Loop() {
				d, _ := r.Place(t0, req, llmModel, -1)
				r.Done(t0, d, Outcome{})
			}
		})
	}
}
