//go:build !race

package router

import (
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// TestPlaceAllocs guards the hot path: placing and releasing a request
// allocates nothing.
func TestPlaceAllocs(t *testing.T) {
	var ds []*backends.Descriptor
	for i := 0; i < 12; i++ {
		ds = append(ds, desc(string(rune('a'+i)), llmProfile("p", float64(i+1), float64(5+i), 64), time.Duration(i)*time.Millisecond))
	}
	r := newRouter(t, Config{}, ds...)
	req := chat(backends.Standard, 50*time.Millisecond, true)
	n := testing.AllocsPerRun(1000, func() {
		d, err := r.Place(t0, req, llmModel, -1)
		if err != nil {
			t.Fatal(err)
		}
		r.Done(t0, d, Outcome{})
	})
	if n != 0 {
		t.Fatalf("Place+Done allocates %v times per request, want 0", n)
	}
}
