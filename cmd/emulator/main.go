package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"

	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/emulator"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/gateway"
	"github.com/accelgate/accelgate/internal/cli"
)

func main() {
	cli.Main("emulator", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout) })
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(out)
	profile := fs.String("profile", "h100-sxm-80gb", "hardware profile from the catalog")
	models := fs.String("models", "llama-3.1-8b-instruct", "comma-separated model names (settings from the default fleet's models section, or from -config)")
	addr := fs.String("http-addr", "127.0.0.1:0", "HTTP listen address; port 0 picks a free port")
	grpcAddr := fs.String("grpc-addr", "", "KServe v2 gRPC listen address; empty serves no gRPC; port 0 picks a free port")
	cfgPath := fs.String("config", "", "fleet file whose models section defines the models (default: the embedded default fleet)")
	name := fs.String("name", "", "backend name reported in x-accelgate-backend (default: emu-PROFILE)")
	seed := fs.Int64("seed", 1, "seed for jitter and generated text")
	jitter := fs.Float64("jitter", 0.05, "lognormal sigma on step times (0 disables)")
	rtt := fs.Float64("rtt-ms", 0, "network round trip to emulate, in milliseconds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cat := catalog.Default()
	var (
		src *fleet.File
		err error
	)
	if *cfgPath != "" {
		src, err = fleet.Load(*cfgPath, cat)
	} else {
		src, err = fleet.Default(cat)
	}
	if err != nil {
		return err
	}
	f := &fleet.File{Router: src.Router}
	want := strings.Split(*models, ",")
	for i, w := range want {
		w = strings.TrimSpace(w)
		want[i] = w
		found := false
		for _, m := range src.Models {
			if m.Name == w {
				f.Models = append(f.Models, m)
				found = true
			}
		}
		if !found {
			return fmt.Errorf("-models: unknown model %q (known: %s)", w, knownModels(src))
		}
	}
	if *name == "" {
		*name = "emu-" + *profile
	}
	for i := range f.Models {
		f.Models[i].SLO = nil // the emulator serves everything it can; SLOs are the gateway's business
	}
	f.Backends = []fleet.BackendSpec{{
		Name: *name, Hardware: *profile, Transport: fleet.TransportEmulated,
		Models: want, RTTMs: *rtt, Seed: *seed, Jitter: jitter,
	}}
	if err := f.Validate(cat); err != nil {
		return err
	}
	fl, err := f.Build(cat, fleet.BuildOptions{})
	if err != nil {
		return err
	}
	defer fl.Close()
	srv, err := gateway.NewFromFleet(fl, gateway.Config{Name: "accelgate-emulator"}, nil)
	if err != nil {
		return err
	}
	if eb, ok := fl.Backends[0].(*emulator.Backend); ok {
		srv.SetMetrics(eb.WriteMetrics) // GET /metrics: vLLM-named load (see backends/telemetry)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	var (
		gsrv *grpc.Server
		gln  net.Listener
	)
	if *grpcAddr != "" {
		if gln, err = net.Listen("tcp", *grpcAddr); err != nil {
			ln.Close()
			return err
		}
		gsrv = gateway.NewGRPCServer(srv.Dispatcher(), gateway.GRPCOptions{Name: "accelgate-emulator"})
		fmt.Fprintf(out, "http=%s grpc=%s\n", ln.Addr(), gln.Addr())
	} else {
		fmt.Fprintf(out, "http=%s\n", ln.Addr())
	}
	return cli.Serve(ctx, srv, ln, gsrv, gln)
}

func knownModels(f *fleet.File) string {
	var names []string
	for _, m := range f.Models {
		names = append(names, m.Name)
	}
	return strings.Join(names, ", ")
}
