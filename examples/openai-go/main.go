// Command openai-go drives a running accelgate with the official OpenAI Go
// SDK: a chat completion, a streamed chat completion and embeddings, printing
// where each request ran and what it cost.
//
//	go run ./cmd/gateway &          # in one terminal
//	go run ./examples/openai-go     # in another
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func main() {
	base := "http://127.0.0.1:8080/v1/"
	if v := os.Getenv("ACCELGATE_URL"); v != "" {
		base = v
	}
	client := openai.NewClient(option.WithBaseURL(base), option.WithAPIKey("unused"))
	ctx := context.Background()

	// A chat completion; the critical class and a 2-second end-to-end target
	// travel as headers.
	var resp *http.Response
	chat, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:     "llama-3.1-8b-instruct",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Write a haiku about GPUs.")},
		MaxTokens: openai.Int(32),
	}, option.WithHeader("x-accelgate-priority", "critical"), option.WithHeader("x-accelgate-slo-ms", "2000"),
		option.WithResponseInto(&resp))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("chat: %q\n  ran on %s (%s) for $%s\n", chat.Choices[0].Message.Content,
		resp.Header.Get("x-accelgate-backend"), resp.Header.Get("x-accelgate-hardware"), resp.Header.Get("x-accelgate-cost-usd"))

	// A stream: the cost arrives in the last chunk before [DONE].
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         "llama-3.1-8b-instruct",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Count to five.")},
		MaxTokens:     openai.Int(24),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	fmt.Print("stream: ")
	var last openai.ChatCompletionChunk
	for stream.Next() {
		last = stream.Current()
		if len(last.Choices) > 0 {
			fmt.Print(last.Choices[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\n  %d tokens, cost $%s\n", last.Usage.TotalTokens, last.JSON.ExtraFields["accelgate_cost_usd"].Raw())

	// Embeddings.
	emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "bge-base-en-v1.5",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"accelerators", "gateways"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("embeddings: %d vectors of %d dimensions\n", len(emb.Data), len(emb.Data[0].Embedding))
}
