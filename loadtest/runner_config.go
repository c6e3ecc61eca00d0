package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Config is one load-test run as cmd/loadtest's flags describe it.
type Config struct {
	Name       string        // report name (default: the target)
	Target     string        // gateway base URL, e.g. http://127.0.0.1:8080
	GRPC       string        // host:port of the KServe v2 gRPC front; tensors go there when set
	Workload   string        // a standard workload (Names) or "trace:FILE"
	Rate       float64       // open loop: mean requests per second (ignored with Schedule or a trace)
	Schedule   string        // open loop: a rate schedule (see ParseSchedule); "" = constant Rate
	Duration   time.Duration // stop after this long (0 = no limit)
	Requests   int           // stop after this many requests (0 = no limit)
	Seed       int64         // workload seed
	Users      int           // > 0: closed loop with this many users instead of open loop
	Think      time.Duration // closed loop: think time between a user's requests
	TensorJSON bool          // KServe v2 HTTP tensors as JSON instead of binary
	// Connections, MaxInflight and Timeout: see ClientOptions and RunOptions.
	Connections int
	MaxInflight int
	Timeout     time.Duration
	Progress    io.Writer // live progress line; nil = quiet
}

// Validate reports a configuration that cannot run.
func (c *Config) Validate() error {
	switch {
	case c.Target == "":
		return errors.New("no target")
	case c.Users < 0:
		return errors.New("-users must not be negative")
	case c.Users > 0 && c.Schedule != "":
		return errors.New("-schedule is for open loops; it cannot be combined with -users")
	case c.Users > 0 && strings.HasPrefix(c.Workload, "trace:"):
		return errors.New("a trace is an open-loop workload; it cannot be combined with -users")
	case c.Users == 0 && c.Schedule == "" && !strings.HasPrefix(c.Workload, "trace:") && !(c.Rate > 0):
		return errors.New("an open loop needs -rate > 0 (or -schedule, or a trace)")
	case c.Duration <= 0 && c.Requests <= 0 && (c.Users > 0 || !strings.HasPrefix(c.Workload, "trace:")):
		return errors.New("the run needs a -duration or -requests limit")
	}
	if c.Schedule != "" {
		if _, _, err := ParseSchedule(c.Schedule, c.Workload); err != nil {
			return err
		}
	}
	return nil
}

// source builds the open-loop Source the configuration describes; every call
// returns a fresh one that produces the same Items.
func (c *Config) source() (Source, error) {
	limit := Limit{Requests: c.Requests, Duration: c.Duration}
	if path, ok := strings.CutPrefix(c.Workload, "trace:"); ok {
		return OpenTrace(path)
	}
	if c.Schedule == "" {
		return Standard(c.Workload, c.Rate, c.Seed, limit)
	}
	arr, _, err := ParseSchedule(c.Schedule, c.Workload)
	if err != nil {
		return nil, err
	}
	mix, err := StandardMix(c.Workload)
	if err != nil {
		return nil, err
	}
	return NewSource(arr, mix, c.Seed, limit), nil
}

// Run runs one load test against c.Target and returns its report and the
// runner's own counts. The report's duration is the wall-clock time from the
// start to the last response (the drain included), so rates are per second
// of the whole run.
func Run(ctx context.Context, c Config) (*RunReport, RunStats, error) {
	if err := c.Validate(); err != nil {
		return nil, RunStats{}, err
	}
	cl, err := NewClient(ClientOptions{
		Target: c.Target, GRPC: c.GRPC, TensorJSON: c.TensorJSON,
		Connections: c.Connections, Timeout: c.Timeout,
	})
	if err != nil {
		return nil, RunStats{}, err
	}
	defer cl.Close()
	name := c.Name
	if name == "" {
		name = c.Target
	}
	rec := NewRecorder(RecorderOptions{Name: name})
	opts := RunOptions{
		Client: cl, Recorder: rec, Duration: c.Duration, Requests: c.Requests,
		MaxInflight: c.MaxInflight, Progress: c.Progress,
	}
	var st RunStats
	if c.Users > 0 {
		workload := c.Workload
		st, err = RunClosed(ctx, ClosedOptions{
			NewMix: func() (Mix, error) { return StandardMix(workload) },
			Users:  c.Users, Think: c.Think, Seed: c.Seed,
		}, opts)
	} else {
		var src Source
		if src, err = c.source(); err != nil {
			return nil, RunStats{}, err
		}
		st, err = RunOpen(ctx, src, opts)
	}
	if err != nil {
		return nil, st, err
	}
	return rec.Report(st.Elapsed), st, nil
}

// RunCompare runs the same seeded workload against each target in turn (c
// with Target and Name replaced) and returns the reports in order. It stops
// at the first run that fails or when ctx is done.
func RunCompare(ctx context.Context, c Config, targets []string, announce io.Writer) ([]*RunReport, error) {
	var reps []*RunReport
	for i, t := range targets {
		if err := ctx.Err(); err != nil {
			return reps, err
		}
		c.Target, c.Name = t, t
		if announce != nil {
			fmt.Fprintf(announce, "[%d/%d] %s\n", i+1, len(targets), t)
		}
		rep, _, err := Run(ctx, c)
		if err != nil {
			return reps, fmt.Errorf("%s: %w", t, err)
		}
		reps = append(reps, rep)
	}
	return reps, nil
}

// ParseSchedule parses an open-loop rate schedule:
//
//	step:DUR@RATE[,DUR@RATE…]   piecewise-constant: RATE req/s for DUR, then the next step;
//	                            e.g. "step:10s@100,10s@200" (the last rate holds afterwards)
//	ramp:FROM-TO@DUR            linear from FROM to TO req/s over DUR, then TO holds;
//	                            e.g. "ramp:100-500@60s"
//
// Arrivals keep the workload's shape (gamma with cv 2 for "mixed", Poisson
// otherwise) under the scheduled rate. It returns the arrivals and the
// schedule's length (the default run duration).
func ParseSchedule(s, workload string) (Arrivals, time.Duration, error) {
	var base Renewal = Poisson(1)
	if workload == WorkloadMixed {
		base = Gamma(1, 2)
	}
	kind, spec, ok := strings.Cut(s, ":")
	if !ok || spec == "" {
		return nil, 0, fmt.Errorf("schedule %q: want step:DUR@RATE,… or ramp:FROM-TO@DUR", s)
	}
	switch kind {
	case "step":
		var steps []Step
		var total time.Duration
		for _, part := range strings.Split(spec, ",") {
			ds, rs, ok := strings.Cut(strings.TrimSpace(part), "@")
			if !ok {
				return nil, 0, fmt.Errorf("schedule %q: step %q: want DUR@RATE, e.g. 10s@100", s, part)
			}
			d, err := time.ParseDuration(ds)
			if err != nil || d <= 0 {
				return nil, 0, fmt.Errorf("schedule %q: step %q: bad duration %q", s, part, ds)
			}
			r, err := strconv.ParseFloat(rs, 64)
			if err != nil || r < 0 {
				return nil, 0, fmt.Errorf("schedule %q: step %q: bad rate %q", s, part, rs)
			}
			steps = append(steps, Step{For: d, Rate: r})
			total += d
		}
		return Steps(base, steps), total, nil
	case "ramp":
		rates, ds, ok := strings.Cut(spec, "@")
		fs, ts, ok2 := strings.Cut(rates, "-")
		if !ok || !ok2 {
			return nil, 0, fmt.Errorf("schedule %q: want ramp:FROM-TO@DUR, e.g. ramp:100-500@60s", s)
		}
		from, err1 := strconv.ParseFloat(fs, 64)
		to, err2 := strconv.ParseFloat(ts, 64)
		if err1 != nil || err2 != nil || from < 0 || to < 0 {
			return nil, 0, fmt.Errorf("schedule %q: bad rates %q", s, rates)
		}
		d, err := time.ParseDuration(ds)
		if err != nil || d <= 0 {
			return nil, 0, fmt.Errorf("schedule %q: bad duration %q", s, ds)
		}
		return Ramp(base, from, to, d), d, nil
	}
	return nil, 0, fmt.Errorf("schedule %q: unknown kind %q (want step or ramp)", s, kind)
}
