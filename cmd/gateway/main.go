package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/gateway"
	"github.com/accelgate/accelgate/internal/cli"
)

func main() {
	cli.Main("accelgate", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Getenv, os.Stdout) })
}

// run parses flags, builds the fleet and serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("http-addr", envOr(getenv, "ACCELGATE_HTTP_ADDR", gateway.DefaultHTTPAddr), "HTTP listen address (env ACCELGATE_HTTP_ADDR)")
	grpcAddr := fs.String("grpc-addr", envOr(getenv, "ACCELGATE_GRPC_ADDR", gateway.DefaultGRPCAddr), "KServe v2 gRPC listen address (env ACCELGATE_GRPC_ADDR)")
	cfgPath := fs.String("config", getenv("ACCELGATE_CONFIG"), "fleet file (YAML); the embedded default fleet when empty (env ACCELGATE_CONFIG)")
	maxBody := fs.Int("max-body-bytes", gateway.DefaultMaxBodyBytes, "largest accepted request body; larger ones get 413")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cat := catalog.Default()
	var (
		f   *fleet.File
		err error
	)
	if *cfgPath == "" {
		f, err = fleet.Default(cat)
	} else {
		f, err = fleet.Load(*cfgPath, cat)
	}
	if err != nil {
		return err
	}
	fl, err := f.Build(cat, fleet.BuildOptions{Getenv: getenv})
	if err != nil {
		return err
	}
	defer fl.Close()
	srv, err := gateway.NewFromFleet(fl, gateway.Config{MaxBodyBytes: *maxBody}, nil)
	if err != nil {
		return err
	}
	// After the fronts stop (cli.Serve returns), fail whatever is still
	// queued in the batchers, then (the earlier defer) close the backends.
	defer srv.Dispatcher().Close()
	// Retry budget, hedging and active health checks (fleet file); the
	// checks stop before the batchers and the backends close.
	srv.Dispatcher().SetRetry(fl.Retry)
	srv.Dispatcher().SetHedging(fl.Hedging)
	health := gateway.NewHealthChecker(srv.Dispatcher(), fl.HealthChecks, nil, func(format string, a ...any) { fmt.Fprintf(out, "accelgate: "+format+"\n", a...) })
	health.Start()
	defer health.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	gln, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		ln.Close()
		return err
	}
	gsrv := gateway.NewGRPCServer(srv.Dispatcher(), gateway.GRPCOptions{})
	fmt.Fprintf(out, "accelgate listening on http=%s grpc=%s\n", ln.Addr(), gln.Addr())
	fleet.WriteTable(out, fl)
	// KServe upstreams: compare their model metadata with the fleet file now
	// and every 30 s (a backend that disagrees stays out of rotation).
	mctx, stopChecks := context.WithCancel(ctx)
	defer stopChecks()
	logf := func(format string, a ...any) { fmt.Fprintf(out, "accelgate: "+format+"\n", a...) }
	go srv.Dispatcher().RunMetadataChecks(mctx, gateway.DefaultMetadataInterval, logf)
	return cli.Serve(ctx, srv, ln, gsrv, gln)
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
