package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/backends/nvmldisc"
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
	adminAddr := fs.String("admin-addr", envOr(getenv, "ACCELGATE_ADMIN_ADDR", defaultAdminAddr), "admin API listen address, apart from the public fronts; empty disables it (env ACCELGATE_ADMIN_ADDR)")
	discover := fs.Bool("discover", false, "print the local GPUs and MIG devices (NVML) with their catalog profiles, then exit")
	asJSON := fs.Bool("json", false, "with -discover: print JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *discover {
		return runDiscover(out, *asJSON)
	}
	if *asJSON {
		return fmt.Errorf("-json applies to -discover only")
	}
	if *adminAddr != "" && (*adminAddr == *addr || *adminAddr == *grpcAddr) && !strings.HasSuffix(*adminAddr, ":0") {
		return fmt.Errorf("-admin-addr %s: the admin API must not share a public front's address", *adminAddr)
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
	if err := srv.Dispatcher().SetResponseCache(fl.Cache); err != nil { // models[].cache
		return err
	}
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
	var aln net.Listener
	if *adminAddr != "" {
		if aln, err = net.Listen("tcp", *adminAddr); err != nil {
			ln.Close()
			gln.Close()
			return err
		}
	}
	// Device monitoring (device_uuid) and live telemetry (metrics_url); its
	// Close, deferred after the dispatcher's, runs before it.
	lv, err := startLive(f.Backends, f.Telemetry, srv.Dispatcher(), nil, nvmldisc.DiscoverLocal, os.Stderr)
	if err != nil {
		ln.Close()
		gln.Close()
		if aln != nil {
			aln.Close()
		}
		return err
	}
	defer lv.Close()
	gsrv := gateway.NewGRPCServer(srv.Dispatcher(), gateway.GRPCOptions{})
	adminWord := ""
	if aln != nil {
		adminWord = fmt.Sprintf(" admin=%s", aln.Addr())
	}
	fmt.Fprintf(out, "accelgate listening on http=%s grpc=%s%s\n", ln.Addr(), gln.Addr(), adminWord)
	fleet.WriteTable(out, fl)
	// KServe upstreams: compare their model metadata with the fleet file now
	// and every 30 s (a backend that disagrees stays out of rotation).
	mctx, stopChecks := context.WithCancel(ctx)
	defer stopChecks()
	logf := func(format string, a ...any) { fmt.Fprintf(out, "accelgate: "+format+"\n", a...) }
	go srv.Dispatcher().RunMetadataChecks(mctx, gateway.DefaultMetadataInterval, logf)
	if aln == nil {
		return cli.Serve(ctx, srv, ln, gsrv, gln)
	}
	// The admin API has its own listener; it stops after the fronts, and
	// when it fails the fronts stop too.
	sctx, stopFronts := context.WithCancel(ctx)
	defer stopFronts()
	adm := serveAdmin(aln, adminHandler(srv.Dispatcher(), lv, nil), stopFronts)
	err = cli.Serve(sctx, srv, ln, gsrv, gln)
	if aerr := adm.Stop(); err == nil {
		err = aerr
	}
	return err
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
