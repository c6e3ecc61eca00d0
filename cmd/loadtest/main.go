package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/accelgate/accelgate/loadtest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// subcommands are the named modes dispatched on the first argument; without
// one, the arguments are the load test's flags.
var subcommands = map[string]func(args []string, stdout, stderr io.Writer) int{}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if cmd, ok := subcommands[args[0]]; ok {
			return cmd(args[1:], stdout, stderr)
		}
	}
	return runLoad(args, stdout, stderr)
}

// runLoad is the load test: parse flags, run (or compare), print and write
// the reports.
func runLoad(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		c       loadtest.Config
		jsonOut = fs.String("json", "", "write the run report (or, with -compare, the list of reports) as JSON to `FILE`")
		htmlOut = fs.String("html", "", "write a self-contained HTML report to `FILE`")
		compare = fs.String("compare", "", "run the same seeded workload against each of these comma-separated `URLs` in turn and compare them (replaces -target)")
		quiet   = fs.Bool("quiet", false, "no live progress line")
	)
	fs.StringVar(&c.Target, "target", "http://127.0.0.1:8080", "gateway base `URL`")
	fs.StringVar(&c.GRPC, "grpc", "", "send tensor (vision) requests over KServe v2 gRPC to `HOST:PORT` instead of HTTP")
	fs.StringVar(&c.Workload, "workload", loadtest.WorkloadMixed, "standard workload ("+strings.Join(loadtest.Names(), ", ")+") or trace:`FILE`")
	fs.Float64Var(&c.Rate, "rate", 10, "open loop: mean request `rate` per second")
	fs.StringVar(&c.Schedule, "schedule", "", "open loop: rate schedule, step:DUR@RATE,… or ramp:FROM-TO@DUR (see the package doc)")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "stop sending after `D` (default the schedule's length with -schedule; unlimited with only -requests)")
	fs.IntVar(&c.Requests, "requests", 0, "stop after `N` requests (0 = no limit)")
	fs.Int64Var(&c.Seed, "seed", 1, "workload `seed`")
	fs.IntVar(&c.Users, "users", 0, "closed loop with `N` users instead of an open loop")
	fs.DurationVar(&c.Think, "think", 0, "closed loop: think time `D` between a user's requests")
	fs.BoolVar(&c.TensorJSON, "tensor-json", false, "send KServe v2 HTTP tensors as JSON data instead of the binary tensor data extension")
	fs.IntVar(&c.Connections, "connections", loadtest.DefaultConnections, "keep-alive HTTP `connections` to the target")
	fs.IntVar(&c.MaxInflight, "max-inflight", loadtest.DefaultMaxInflight, "most requests in flight at once (`N`); an open loop falls behind beyond it")
	fs.DurationVar(&c.Timeout, "timeout", loadtest.DefaultTimeout, "per-request hard timeout `D`, also sent as x-accelgate-timeout-ms")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["duration"] {
		switch {
		case c.Schedule != "":
			_, d, err := loadtest.ParseSchedule(c.Schedule, c.Workload)
			if err != nil {
				fmt.Fprintln(stderr, "loadtest:", err)
				return 2
			}
			c.Duration = d
		case c.Requests > 0 || strings.HasPrefix(c.Workload, "trace:"):
			c.Duration = 0
		}
	}
	if !*quiet {
		c.Progress = stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var reps []*loadtest.RunReport
	if *compare != "" {
		targets := splitList(*compare)
		if len(targets) < 2 {
			fmt.Fprintln(stderr, "loadtest: -compare needs at least two comma-separated URLs")
			return 2
		}
		r, err := loadtest.RunCompare(ctx, c, targets, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 1
		}
		reps = r
		for _, rep := range reps {
			loadtest.PrintSummary(stdout, rep)
		}
		loadtest.PrintCompare(stdout, reps)
	} else {
		rep, st, err := loadtest.Run(ctx, c)
		if err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 1
		}
		if st.SentLate > 0 {
			fmt.Fprintf(stderr, "loadtest: warning: the generator fell behind its schedule: %d requests were sent more than 100ms late (worst %v); raise -max-inflight or -connections, or lower the rate\n",
				st.SentLate, st.MaxSentLate.Round(time.Millisecond))
		}
		reps = []*loadtest.RunReport{rep}
		loadtest.PrintSummary(stdout, rep)
	}

	if *jsonOut != "" {
		var v any = reps
		if len(reps) == 1 && *compare == "" {
			v = reps[0]
		}
		if err := writeFile(*jsonOut, func(w io.Writer) error { return loadtest.WriteJSON(w, v) }); err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 1
		}
	}
	if *htmlOut != "" {
		title := "accelgate load test: " + c.Workload
		if err := writeFile(*htmlOut, func(w io.Writer) error { return loadtest.WriteHTML(w, title, reps) }); err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 1
		}
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
