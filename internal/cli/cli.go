package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"

	"github.com/accelgate/accelgate/gateway"
)

// Main runs run with a context that ends on SIGINT or SIGTERM. When run fails
// it prints "NAME: ERROR" on stderr and exits with status 1.
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Serve runs the HTTP front on ln, and the gRPC front on gln when gsrv is not
// nil, until ctx ends or either fails, then stops both gracefully: in-flight
// requests finish. It returns the first front's failure, nil after a stop.
func Serve(ctx context.Context, srv *gateway.Server, ln net.Listener, gsrv *grpc.Server, gln net.Listener) error {
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if gsrv != nil {
		go func() { errc <- gsrv.Serve(gln) }()
	}
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	if gsrv != nil {
		gateway.StopGRPC(gsrv, gateway.DefaultGRPCStopTimeout)
	}
	if serr := srv.Shutdown(); serr != nil && !errors.Is(serr, net.ErrClosed) && err == nil {
		err = serr
	}
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}
