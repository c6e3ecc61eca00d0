package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/accelgate/accelgate/internal/testutil"
	"github.com/accelgate/accelgate/proto/inference"
)

// TestKServeThroughGatewayAndEmulatorProcess puts a separate cmd/emulator
// process behind the gateway twice — once as a kserve-http upstream, once as
// a kserve-grpc upstream — and drives resnet-50 through both gateway fronts:
// plain HTTP with the binary tensor extension and the generated gRPC client
// with raw contents. Round-robin placement makes both transports carry
// traffic.
func TestKServeThroughGatewayAndEmulatorProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	emuHTTP, emuGRPC := testutil.StartEmulator(t, "-profile", "l4", "-models", "resnet-50",
		"-http-addr", "127.0.0.1:0", "-grpc-addr", "127.0.0.1:0", "-jitter", "0")
	if emuGRPC == "" {
		t.Fatal("the emulator did not report a gRPC address")
	}
	addrs := startGatewayWith(t, fmt.Sprintf(`models:
  - name: resnet-50
    kind: tensor
    platform: onnxruntime_onnx
    inputs: [{name: input, datatype: FP32, shape: [-1, 3, 224, 224]}]
    outputs: [{name: output, datatype: FP32, shape: [-1, 1000]}]
backends:
  - name: remote-http
    hardware: l4
    transport: kserve-http
    url: http://%s
    models: [resnet-50]
  - name: remote-grpc
    hardware: l4
    transport: kserve-grpc
    url: grpc://%s
    models: [resnet-50]
router:
  policy: round-robin
`, emuHTTP, emuGRPC))

	const elems = resnetElems
	image := resnetImages
	used := map[string]int{}

	// HTTP front, binary tensor data extension, two images per request.
	for i := 0; i < 2; i++ {
		hdr := fmt.Sprintf(`{"id":"req-%d","inputs":[{"name":"input","shape":[2,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":%d}}]}`, i, 2*elems*4)
		body := append([]byte(hdr), image(byte(i), 2)...)
		req, _ := http.NewRequest("POST", "http://"+addrs["http"]+"/v2/models/resnet-50/infer", bytes.NewReader(body))
		req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(len(hdr)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			ID      string `json:"id"`
			Outputs []struct {
				Name  string    `json:"name"`
				Shape []int64   `json:"shape"`
				Data  []float64 `json:"data"`
			} `json:"outputs"`
			Parameters map[string]any `json:"parameters"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("HTTP infer %d: status %d, %v", i, resp.StatusCode, err)
		}
		if out.ID != fmt.Sprintf("req-%d", i) || len(out.Outputs) != 1 || out.Outputs[0].Name != "output" ||
			len(out.Outputs[0].Shape) != 2 || out.Outputs[0].Shape[0] != 2 || len(out.Outputs[0].Data) != 2000 {
			t.Fatalf("HTTP infer %d: unexpected response %+v", i, out.Outputs)
		}
		backend := resp.Header.Get("x-accelgate-backend")
		if backend == "" || out.Parameters["accelgate_backend"] != backend || resp.Header.Get("x-accelgate-cost-usd") == "" {
			t.Fatalf("HTTP infer %d: placement not reported: %v %v", i, resp.Header, out.Parameters)
		}
		used[backend]++
	}

	// gRPC front, raw contents.
	conn, err := grpc.NewClient(addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := inference.NewGRPCInferenceServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	md, err := client.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "resnet-50"})
	if err != nil || len(md.Inputs) != 1 || md.Inputs[0].Datatype != "FP32" {
		t.Fatalf("gRPC metadata: %v %v", md, err)
	}
	for i := 0; i < 2; i++ {
		resp, err := client.ModelInfer(ctx, &inference.ModelInferRequest{
			ModelName:        "resnet-50",
			Id:               fmt.Sprintf("g-%d", i),
			Inputs:           []*inference.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 224, 224}}},
			RawInputContents: [][]byte{image(byte(10+i), 1)},
		})
		if err != nil {
			t.Fatalf("gRPC infer %d: %v", i, err)
		}
		if resp.Id != fmt.Sprintf("g-%d", i) || len(resp.Outputs) != 1 || len(resp.RawOutputContents) != 1 || len(resp.RawOutputContents[0]) != 1000*4 {
			t.Fatalf("gRPC infer %d: unexpected response %v", i, resp)
		}
		used[resp.Parameters["accelgate_backend"].GetStringParam()]++
	}
	if used["remote-http"] == 0 || used["remote-grpc"] == 0 {
		t.Fatalf("both upstream transports must carry traffic, got %v", used)
	}

	// The same image twice gives the same logits, whichever transport serves it.
	a := inferOnce(t, ctx, client, image(42, 1))
	b := inferOnce(t, ctx, client, image(42, 1))
	if !bytes.Equal(a, b) {
		t.Fatal("the same image must give the same logits through either upstream transport")
	}
}

func inferOnce(t *testing.T, ctx context.Context, c inference.GRPCInferenceServiceClient, img []byte) []byte {
	t.Helper()
	resp, err := c.ModelInfer(ctx, &inference.ModelInferRequest{
		ModelName:        "resnet-50",
		Inputs:           []*inference.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 224, 224}}},
		RawInputContents: [][]byte{img},
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp.RawOutputContents[0]
}

// resnetElems is the FP32 values in one 3×224×224 image.
const resnetElems = 3 * 224 * 224

// resnetImages returns n images of FP32 data, little endian, that differ by
// seed.
func resnetImages(seed byte, n int) []byte {
	b := make([]byte, 0, n*resnetElems*4)
	for i := 0; i < n*resnetElems; i++ {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32((i+int(seed))%251)/251))
	}
	return b
}
