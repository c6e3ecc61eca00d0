package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/accelgate/accelgate/internal/testutil"
)

// TestMixedFleet serves one fleet file that mixes an in-process emulator
// with cmd/emulator processes standing in for a vLLM server (transport
// openai: chat and embeddings) and a Triton server (transport kserve-grpc:
// resnet-50), and checks every kind of request is served by the backends
// that can serve it.
func TestMixedFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	vllm, _ := testutil.StartEmulator(t, "-profile", "h100-sxm-80gb", "-models", "llama-3.1-8b-instruct,bge-base-en-v1.5",
		"-http-addr", "127.0.0.1:0", "-jitter", "0", "-name", "vllm")
	_, triton := testutil.StartEmulator(t, "-profile", "l4", "-models", "resnet-50",
		"-http-addr", "127.0.0.1:0", "-grpc-addr", "127.0.0.1:0", "-jitter", "0", "-name", "triton")
	addrs := startGatewayWith(t, fmt.Sprintf(`models:
  - name: llama-3.1-8b-instruct
    kind: llm
  - name: bge-base-en-v1.5
    kind: embedding
    dimension: 768
  - name: resnet-50
    kind: tensor
    inputs: [{name: input, datatype: FP32, shape: [-1, 3, 224, 224]}]
    outputs: [{name: output, datatype: FP32, shape: [-1, 1000]}]
backends:
  - name: local
    hardware: h100-sxm-80gb
    models: [llama-3.1-8b-instruct]
    jitter: 0
  - name: vllm
    hardware: h100-sxm-80gb
    transport: openai
    url: http://%s
    models: [llama-3.1-8b-instruct, bge-base-en-v1.5]
  - name: triton
    hardware: l4
    transport: kserve-grpc
    url: grpc://%s
    models: [resnet-50]
router:
  policy: round-robin
`, vllm, triton))
	post := func(path, body string, hdr ...string) (int, string, string) {
		req, _ := http.NewRequest("POST", "http://"+addrs["http"]+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("x-accelgate-backend"), string(b)
	}
	chatOn := map[string]int{}
	for i := 0; i < 4; i++ {
		st, be, body := post("/v1/chat/completions", `{"model":"llama-3.1-8b-instruct","max_tokens":4,"messages":[{"role":"user","content":"hello"}]}`)
		if st != 200 || !strings.Contains(body, `"choices"`) {
			t.Fatalf("chat: %d %s", st, body)
		}
		chatOn[be]++
	}
	if chatOn["local"] == 0 || chatOn["vllm"] == 0 {
		t.Fatalf("chat placements %v: want both the in-process and the upstream backend", chatOn)
	}
	if st, be, body := post("/v1/embeddings", `{"model":"bge-base-en-v1.5","input":["a","b"]}`); st != 200 || be != "vllm" || strings.Count(body, `"index"`) != 2 {
		t.Fatalf("embeddings: %d on %q: %.200s", st, be, body)
	}
	data := resnetImages(0, 1)
	hdr := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":%d}}]}`, len(data))
	req, _ := http.NewRequest("POST", "http://"+addrs["http"]+"/v2/models/resnet-50/infer", bytes.NewReader(append([]byte(hdr), data...)))
	req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(len(hdr)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("x-accelgate-backend") != "triton" || !strings.Contains(string(b), `"output"`) {
		t.Fatalf("tensor: %d on %q: %.200s", resp.StatusCode, resp.Header.Get("x-accelgate-backend"), b)
	}
}
