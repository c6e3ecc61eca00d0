// Command proxy is a bare fasthttp reverse proxy: the yardstick of the
// overhead benchmark (bench/overhead.sh). It copies each request to one
// upstream with a fasthttp.HostClient and copies the response back, with no
// parsing of either body: the least any HTTP proxy in Go on fasthttp can cost.
//
// The first line it prints is its bound address: "http=HOST:PORT".
//
//	go run ./bench/proxy -upstream 127.0.0.1:9000 [-http-addr 127.0.0.1:0]
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	addr := flag.String("http-addr", "127.0.0.1:0", "listen address")
	upstream := flag.String("upstream", "", "upstream host:port (an http:// prefix is accepted)")
	maxConns := flag.Int("max-conns", 512, "most connections to the upstream")
	flag.Parse()
	up := strings.TrimSuffix(strings.TrimPrefix(*upstream, "http://"), "/")
	if up == "" {
		log.Fatal("proxy: -upstream is required")
	}
	client := &fasthttp.HostClient{
		Addr:                          up,
		MaxConns:                      *maxConns,
		MaxIdleConnDuration:           4 * time.Second,
		ReadTimeout:                   60 * time.Second,
		WriteTimeout:                  60 * time.Second,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
	}
	handler := func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		resp := &ctx.Response
		req.Header.Del("Connection") // hop-by-hop
		if err := client.Do(req, resp); err != nil {
			ctx.ResetBody()
			ctx.Error("proxy: "+err.Error(), fasthttp.StatusBadGateway)
			return
		}
		resp.Header.Del("Connection")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("http=%s\n", ln.Addr())
	srv := &fasthttp.Server{Handler: handler, Name: "bench-proxy", NoDefaultServerHeader: true}
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
