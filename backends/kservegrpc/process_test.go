package kservegrpc_test

import (
	"errors"
	"testing"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/kservegrpc"
	"github.com/accelgate/accelgate/internal/testutil"
)

// TestEmulatorProcessOverGRPC drives a separate cmd/emulator process through
// the kserve-grpc transport: metadata, a batch of two, and errors.
func TestEmulatorProcessOverGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a process")
	}
	_, addr := testutil.StartEmulator(t, "-profile", "l4", "-models", "resnet-50", "-http-addr", "127.0.0.1:0", "-grpc-addr", "127.0.0.1:0", "-jitter", "0")
	if addr == "" {
		t.Fatal("the emulator serves no gRPC")
	}
	prof, _ := catalog.Default().Get("l4")
	desc := &backends.Descriptor{Name: "remote-l4", Profile: prof, Models: []string{"resnet-50"}, Transport: "kserve-grpc", PricePerHour: prof.PricePerHour}
	b, err := kservegrpc.New(desc, kservegrpc.Config{Target: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := ctxT(t)
	m := resnetModel(t)

	md, err := b.ModelMetadata(ctx, "resnet-50", "")
	if err != nil {
		t.Fatal(err)
	}
	if md.Name != "resnet-50" || len(md.Inputs) != 1 || md.Inputs[0].Name != m.Inputs[0].Name || md.Inputs[0].Datatype != "FP32" ||
		len(md.Outputs) != 1 || md.Outputs[0].Name != "output" {
		t.Fatalf("metadata %+v", md)
	}

	res, err := b.Do(ctx, tensorReq(2), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkLogits(t, res, 2)
	if res.CostUSD <= 0 || res.Timing.Total <= 0 {
		t.Fatalf("cost %v timing %+v", res.CostUSD, res.Timing)
	}

	bad := tensorReq(1)
	bad.Tensors[0].Data = bad.Tensors[0].Data[:100]
	var ue *backends.UpstreamError
	if _, err := b.Do(ctx, bad, m, nil); !errors.As(err, &ue) || ue.Status != 400 {
		t.Fatalf("short raw data: %v, want an UpstreamError 400", err)
	}
	unknown := tensorReq(1)
	unknown.Model = "llama-3.1-8b-instruct"
	if _, err := b.Do(ctx, unknown, m, nil); !errors.As(err, &ue) || ue.Status != 404 {
		t.Fatalf("a model the emulator does not serve: %v, want an UpstreamError 404", err)
	}
}
