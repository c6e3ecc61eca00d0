package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// watchSIGHUP reloads the fleet file on every SIGHUP until ctx ends.
func watchSIGHUP(ctx context.Context, rl *reloader) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if _, err := rl.reload(true); err != nil {
					rl.logf("%v", err)
				}
			}
		}
	}()
}
