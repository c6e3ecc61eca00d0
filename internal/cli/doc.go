// Package cli is the process wiring shared by the commands that serve
// (cmd/gateway, cmd/emulator): signal handling, the exit status, and running
// the HTTP and gRPC fronts until the process is told to stop.
package cli
