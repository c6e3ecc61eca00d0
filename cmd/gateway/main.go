// Command gateway runs accelgate: the OpenAI-compatible HTTP front in front of
// a fleet of accelerators. With no -config it serves the embedded default
// fleet of emulated accelerators.
//
//	go run ./cmd/gateway [-config fleet.yaml] [-http-addr 127.0.0.1:8080]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "accelgate:", err)
		os.Exit(1)
	}
}

// run parses flags, builds the fleet and serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("http-addr", envOr(getenv, "ACCELGATE_HTTP_ADDR", gateway.DefaultHTTPAddr), "HTTP listen address (env ACCELGATE_HTTP_ADDR)")
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
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "accelgate listening on http=%s\n", ln.Addr())
	fleet.WriteTable(out, fl)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if err := srv.Shutdown(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
