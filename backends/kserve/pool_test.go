package kserve

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// TestHTTPWireAndReuse checks what the transport puts on the wire (the binary
// extension, binary outputs, the timeout parameter) and that sequential
// requests share one keep-alive connection.
func TestHTTPWireAndReuse(t *testing.T) {
	var conns atomic.Int32
	var sawTimeout atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		jl, err := strconv.Atoi(r.Header.Get(HeaderInferenceHeaderContentLength))
		if err != nil || r.URL.Path != "/base/v2/models/m%2Fx/versions/3/infer" && r.URL.EscapedPath() != "/base/v2/models/m%2Fx/versions/3/infer" {
			http.Error(w, `{"error":"bad request line `+r.URL.EscapedPath()+`"}`, 400)
			return
		}
		req, err := DecodeInferRequest(body, jl)
		if err != nil || !req.Params.BinaryDataOutput || !req.Params.HasTimeout || len(req.Inputs) != 1 || req.Inputs[0].Data[0] != 7 {
			http.Error(w, `{"error":"bad body"}`, 400)
			return
		}
		if strings.Contains(string(body[:jl]), `"data"`) {
			http.Error(w, `{"error":"inputs not binary"}`, 400)
			return
		}
		sawTimeout.Store(req.Params.TimeoutUS)
		out, ojl := EncodeInferResponse(nil, &InferResponse{ModelName: "m/x", Outputs: []backends.Tensor{{Name: "o", Datatype: backends.UINT8, Shape: []int64{1}, Data: []byte{9}}}, Binary: []bool{true}})
		w.Header().Set(HeaderInferenceHeaderContentLength, strconv.Itoa(ojl))
		w.Write(out)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	b, err := NewHTTP(&backends.Descriptor{Name: "w", PricePerHour: 3600}, HTTPConfig{URL: srv.URL + "/base/"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		res, err := b.Do(ctx, &backends.Request{Op: backends.OpTensor, Model: "m/x", ModelVersion: "3",
			Tensors: []backends.Tensor{{Name: "i", Datatype: backends.UINT8, Shape: []int64{1}, Data: []byte{7}}}}, nil, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Tensors) != 1 || res.Tensors[0].Data[0] != 9 || res.CostUSD <= 0 {
			t.Fatalf("%+v", res)
		}
	}
	if us := sawTimeout.Load(); us <= 2_000_000 || us > 3_000_000 {
		t.Fatalf("timeout parameter %d µs", us)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 3 sequential requests", n)
	}
	if b.pool.IdleCount() != 1 {
		t.Fatalf("%d idle connections", b.pool.IdleCount())
	}
}
