package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

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
	adminAddr := fs.String("admin-addr", envOr(getenv, "ACCELGATE_ADMIN_ADDR", defaultAdminAddr), "admin API listen address, apart from the public fronts; empty disables it (env ACCELGATE_ADMIN_ADDR)")
	reloadEvery := fs.Duration("reload-interval", 5*time.Second, "how often the fleet file is checked for changes (reloaded without downtime when its content changed); 0 disables the check (SIGHUP still reloads)")
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
	logf := func(format string, a ...any) { fmt.Fprintf(out, "accelgate: "+format+"\n", a...) }
	rl := &reloader{ctx: ctx, path: *cfgPath, cat: cat, getenv: getenv, out: out, logf: logf}
	rl.pools = &poolSources{ctx: ctx, newSource: newPoolSourceFn(logf), logf: logf, changed: func() {
		if _, err := rl.reload(false); err != nil {
			logf("%v", err)
		}
	}}
	g, err := rl.start()
	if err != nil {
		return err
	}
	// After the fronts stop (cli.Serve returns): drains in progress end,
	// then the current generation's watchers stop, what is still queued in
	// its batchers fails and its backends close.
	defer rl.close()
	srv := gateway.NewServer(gateway.Config{MaxBodyBytes: *maxBody}, g.d, nil)
	rl.srv = srv
	// Fleet changes without downtime: SIGHUP and changes of the file's
	// content (checked every -reload-interval) reload it.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	rl.watch(wctx, *reloadEvery, nil)
	watchSIGHUP(wctx, rl)
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
	gsrv := gateway.NewGRPCServer(nil, gateway.GRPCOptions{Ref: srv.DispatcherRef()})
	adminWord := ""
	if aln != nil {
		adminWord = fmt.Sprintf(" admin=%s", aln.Addr())
	}
	fmt.Fprintf(out, "accelgate listening on http=%s grpc=%s%s\n", ln.Addr(), gln.Addr(), adminWord)
	fleet.WriteTable(out, g.fl)
	if aln == nil {
		return cli.Serve(ctx, srv, ln, gsrv, gln)
	}
	// The admin API has its own listener; it stops after the fronts, and
	// when it fails the fronts stop too.
	sctx, stopFronts := context.WithCancel(ctx)
	defer stopFronts()
	adm := serveAdmin(aln, adminHandlerFunc(func() (*gateway.Dispatcher, *live) { c := rl.current(); return c.d, c.lv }, nil, rl), stopFronts)
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
