package router

import (
	"fmt"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

func BenchmarkPlace(b *testing.B) {
	for _, n := range []int{4, 16, 64} {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			var ds []*backends.Descriptor
			for i := 0; i < n; i++ {
				ds = append(ds, desc(fmt.Sprint(i), llmProfile("p", float64(i%7+1), float64(5+i%9), 64), 0))
			}
			r, _ := New(Config{}, ds, nil)
			req := chat(backends.Standard, 50*time.Millisecond, true)
			b.ReportAllocs()
			for b.Loop() {
				d, _ := r.Place(t0, req, llmModel, -1)
				r.Done(t0, d, Outcome{})
			}
		})
	}
}
