// Command mockupstream is a minimal OpenAI-compatible server for the overhead
// benchmark (bench/overhead.sh): it answers POST /v1/chat/completions
// instantly with a fixed, valid chat.completion (with usage), without reading
// the request body beyond what fasthttp already did. GET /health and
// GET /v1/models answer too, for readiness checks.
//
// The first line it prints is its bound address: "http=HOST:PORT".
//
//	go run ./bench/mockupstream [-http-addr 127.0.0.1:0]
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/valyala/fasthttp"
)

var chatBody = []byte(`{"id":"chatcmpl-bench0001","object":"chat.completion","created":1764201600,` +
	`"model":"llama-3.1-8b-instruct","choices":[{"index":0,"message":{"role":"assistant",` +
	`"content":"Hello! How can I help you today? I am a mock."},"logprobs":null,"finish_reason":"length"}],` +
	`"usage":{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28}}`)

var modelsBody = []byte(`{"object":"list","data":[{"id":"llama-3.1-8b-instruct","object":"model","created":1764201600,"owned_by":"bench"}]}`)

func handler(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch {
	case string(path) == "/v1/chat/completions" && ctx.IsPost():
		ctx.SetContentType("application/json")
		ctx.SetBody(chatBody)
	case string(path) == "/v1/models" && ctx.IsGet():
		ctx.SetContentType("application/json")
		ctx.SetBody(modelsBody)
	case string(path) == "/health":
		ctx.SetStatusCode(fasthttp.StatusOK)
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"error":{"message":"not found","type":"invalid_request_error","code":404}}`)
	}
}

func main() {
	addr := flag.String("http-addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("http=%s\n", ln.Addr())
	srv := &fasthttp.Server{
		Handler:       handler,
		Name:          "mockupstream",
		NoDefaultDate: true,
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		_ = srv.Shutdown()
	}()
	if err := srv.Serve(ln); err != nil {
		log.Fatal(err)
	}
}
