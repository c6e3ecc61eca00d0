package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/accelgate/accelgate/internal/testutil"
)

// startGateway runs the gateway in-process (the real main wiring) in front of
// the emulator and returns its HTTP address.
func startGateway(t *testing.T, upstream string) string {
	t.Helper()
	fleetYAML := fmt.Sprintf(`models:
  - name: llama-3.1-8b-instruct
    kind: llm
    slo:
      standard: {ttft_ms: 5000, tpot_ms: 200}
  - name: bge-base-en-v1.5
    kind: embedding
    dimension: 768
backends:
  - name: remote-h100
    hardware: h100-sxm-80gb
    transport: openai
    url: http://%s
    models: [llama-3.1-8b-instruct, bge-base-en-v1.5]
`, upstream)
	return startGatewayWith(t, fleetYAML, "-max-body-bytes", "65536")["http"]
}

// startGatewayWith runs the gateway in-process on a fleet file, with extra
// flags, and returns the addresses its first output line names (http, grpc).
func startGatewayWith(t *testing.T, fleetYAML string, extraArgs ...string) map[string]string {
	t.Helper()
	fleetFile := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(fleetFile, []byte(fleetYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return startGatewayAt(t, fleetFile, extraArgs...)
}

// startGatewayAt is startGatewayWith on a fleet file that already exists.
func startGatewayAt(t *testing.T, fleetFile string, extraArgs ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		args := append([]string{"-config", fleetFile, "-http-addr", "127.0.0.1:0", "-grpc-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}, extraArgs...)
		done <- run(ctx, args, func(string) string { return "" }, pw)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway exited with %v", err)
		}
	})
	br := bufio.NewReader(pr)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("gateway output: %v", err)
	}
	go io.Copy(io.Discard, br) // keep draining the fleet table
	addrs := testutil.ListenAddrs(line)
	if addrs["http"] == "" || addrs["grpc"] == "" {
		t.Fatalf("gateway first line %q does not name http=HOST:PORT grpc=HOST:PORT", line)
	}
	return addrs
}

func TestOpenAISDKThroughGatewayAndEmulatorProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	emu, _ := testutil.StartEmulator(t, "-profile", "h100-sxm-80gb", "-models", "llama-3.1-8b-instruct,bge-base-en-v1.5", "-http-addr", "127.0.0.1:0", "-jitter", "0")
	gw := startGateway(t, emu)
	client := openai.NewClient(option.WithBaseURL("http://"+gw+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const model = "llama-3.1-8b-instruct"

	t.Run("list models", func(t *testing.T) {
		page, err := client.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		if strings.Join(ids, ",") != "bge-base-en-v1.5,llama-3.1-8b-instruct" {
			t.Fatalf("models %v", ids)
		}
	})

	t.Run("chat", func(t *testing.T) {
		var resp *http.Response
		c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:     model,
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("Say hello.")},
			MaxTokens: openai.Int(12),
		}, option.WithResponseInto(&resp))
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 1 || c.Choices[0].Message.Content == "" || c.Usage.CompletionTokens < 1 || c.Usage.CompletionTokens > 12 || c.Usage.PromptTokens < 5 {
			t.Fatalf("bad completion: %+v", c)
		}
		if c.Usage.CompletionTokens == 12 && c.Choices[0].FinishReason != "length" {
			t.Fatalf("max_tokens reached but finish_reason %q", c.Choices[0].FinishReason)
		}
		if resp.Header.Get("x-accelgate-backend") != "remote-h100" || resp.Header.Get("x-accelgate-hardware") != "h100-sxm-80gb" || resp.Header.Get("x-accelgate-cost-usd") == "" {
			t.Fatalf("placement headers: %v", resp.Header)
		}
	})

	t.Run("chat stream", func(t *testing.T) {
		var resp *http.Response
		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:         model,
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story.")},
			MaxTokens:     openai.Int(20),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		}, option.WithResponseInto(&resp))
		var acc openai.ChatCompletionAccumulator
		var chunks int
		var last openai.ChatCompletionChunk
		for stream.Next() {
			chunk := stream.Current()
			acc.AddChunk(chunk)
			last = chunk
			chunks++
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if chunks < 3 || acc.Choices[0].Message.Content == "" || acc.Usage.CompletionTokens < 1 {
			t.Fatalf("stream: %d chunks, %+v", chunks, acc.ChatCompletion)
		}
		if _, ok := last.JSON.ExtraFields["accelgate_cost_usd"]; !ok || last.Usage.TotalTokens == 0 {
			t.Fatalf("the last chunk must be the usage chunk with accelgate_cost_usd: %s", last.RawJSON())
		}
		if resp.Header.Get("x-accelgate-backend") != "remote-h100" {
			t.Fatalf("stream placement header: %v", resp.Header)
		}
	})

	t.Run("completions", func(t *testing.T) {
		c, err := client.Completions.New(ctx, openai.CompletionNewParams{
			Model:     openai.CompletionNewParamsModel(model),
			Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
			MaxTokens: openai.Int(8),
			N:         openai.Int(2),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 2 || c.Choices[0].Text == "" || c.Usage.CompletionTokens < 2 {
			t.Fatalf("completions: %+v", c)
		}
	})

	t.Run("embeddings", func(t *testing.T) {
		e, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "bge-base-en-v1.5",
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"first", "second", "first"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Data) != 3 || len(e.Data[0].Embedding) != 768 {
			t.Fatalf("embeddings: %d vectors", len(e.Data))
		}
		var norm float64
		for _, v := range e.Data[0].Embedding {
			norm += v * v
		}
		if norm < 0.999 || norm > 1.001 {
			t.Fatalf("not unit norm: %v", norm)
		}
		for i := range e.Data[0].Embedding {
			if e.Data[0].Embedding[i] != e.Data[2].Embedding[i] {
				t.Fatal("the same input must give the same vector")
			}
		}
	})

	apiErr := func(t *testing.T, err error, status int) *openai.Error {
		t.Helper()
		var ae *openai.Error
		if !errors.As(err, &ae) {
			t.Fatalf("want an *openai.Error with status %d, got %v", status, err)
		}
		if ae.StatusCode != status || ae.Message == "" || ae.Type == "" {
			t.Fatalf("status %d type %q message %q, want %d with an OpenAI error body", ae.StatusCode, ae.Type, ae.Message, status)
		}
		return ae
	}

	t.Run("unknown model", func(t *testing.T) {
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "gpt-17", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		if ae := apiErr(t, err, 404); ae.Code != "model_not_found" {
			t.Fatalf("code %q", ae.Code)
		}
	})

	t.Run("malformed JSON", func(t *testing.T) {
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{},
			option.WithRequestBody("application/json", []byte(`{"model": "llama-3.1-8b-instruct", "messages": [`)))
		apiErr(t, err, 400)
	})

	t.Run("oversized body", func(t *testing.T) {
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(strings.Repeat("word ", 20000))},
		})
		apiErr(t, err, 413)
	})

	t.Run("context length", func(t *testing.T) {
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}, MaxTokens: openai.Int(9000),
		})
		apiErr(t, err, 400)
	})

	t.Run("still serving", func(t *testing.T) {
		if _, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}, MaxTokens: openai.Int(2),
		}); err != nil {
			t.Fatal(err)
		}
	})
}
