package telemetry

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: any input gives a snapshot or an error, never a panic; a parsed
// snapshot's numbers are finite and in range, and a second parse with the
// first as baseline gives finite, non-negative means.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.prom"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"vllm:num_requests_running{model_name=\"m\"} 3\n",
		"vllm:num_requests_running{model_name=\"m\" 3\n",
		"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum NaN\nh_count 1\n",
		"# TYPE vllm:request_queue_time_seconds summary\nvllm:request_queue_time_seconds{quantile=\"0.5\"} 1\nvllm:request_queue_time_seconds_sum 1\nvllm:request_queue_time_seconds_count 2\n",
		"nv_inference_request_success 1e308\nnv_inference_queue_duration_us 1e308\nnv_inference_queue_duration_us{m=\"2\"} 1e308\n",
		"{\"__name__\"=\"vllm:num_requests_waiting\"} 4\n",
		"\xff\xfe\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		first, err := Parse(bytes.NewReader(data), nil)
		if err != nil {
			if first.Err == "" || first.Source != SourceUnknown {
				t.Fatalf("error %v with snapshot %+v", err, first)
			}
			return
		}
		check(t, first)
		second, err := Parse(bytes.NewReader(data), &first)
		if err != nil {
			t.Fatalf("second parse of the same input: %v", err)
		}
		check(t, second)
	})
}

func check(t *testing.T, s Snapshot) {
	t.Helper()
	for _, v := range []float64{s.Running, s.Waiting, s.Pending, s.QueueTimeMs, s.ComputeTimeMs} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			t.Fatalf("count or mean out of range: %+v", s)
		}
	}
	for _, v := range []float64{s.KVCacheUsage, s.GPUUtil} {
		if !(v == -1 || v >= 0 && v <= 1) {
			t.Fatalf("fraction out of range: %+v", s)
		}
	}
	if s.Err != "" {
		t.Fatalf("Err set without an error: %+v", s)
	}
}
