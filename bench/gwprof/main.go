// Command gwprof runs the accelgate gateway in-process, exactly as
// cmd/gateway wires it (fleet file -> fleet.Build -> gateway.NewFromFleet),
// with CPU and allocation profiling, for the overhead benchmark
// (bench/overhead.sh, bench/README.md). Profiles are written when it gets
// SIGINT or SIGTERM.
//
// The first line it prints is its bound address: "http=HOST:PORT".
//
//	go run ./bench/gwprof -config fleet.yaml -cpuprofile cpu.pprof [-memprofile mem.pprof]
//	go tool pprof -top -nodecount=40 cpu.pprof
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/gateway"
)

func main() {
	addr := flag.String("http-addr", "127.0.0.1:0", "listen address")
	cfgPath := flag.String("config", "", "fleet file (required)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	memProfile := flag.String("memprofile", "", "write an allocation profile to this file")
	flag.Parse()
	if *cfgPath == "" {
		log.Fatal("gwprof: -config is required")
	}
	cat := catalog.Default()
	f, err := fleet.Load(*cfgPath, cat)
	if err != nil {
		log.Fatal(err)
	}
	fl, err := f.Build(cat, fleet.BuildOptions{Getenv: os.Getenv})
	if err != nil {
		log.Fatal(err)
	}
	defer fl.Close()
	srv, err := gateway.NewFromFleet(fl, gateway.Config{}, nil)
	if err != nil {
		log.Fatal(err)
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 4096
	}
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			log.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = pf.Close()
		}()
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("http=%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case err := <-errc:
		log.Print(err)
	case <-sig:
	}
	_ = srv.Shutdown()
	if *memProfile != "" {
		mf, err := os.Create(*memProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.Lookup("allocs").WriteTo(mf, 0); err != nil {
			log.Fatal(err)
		}
		_ = mf.Close()
	}
}
