package batcher

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fakeclock"
)

// recorder is a fake ExecFunc: it records batches and answers each member
// with a Result whose CostUSD is its rows (or fails them all with err).
type recorder struct {
	mu      sync.Mutex
	batches [][]string
	err     error
}

func (r *recorder) exec(_ context.Context, b Batch) ([]Outcome, error) {
	r.mu.Lock()
	r.batches = append(r.batches, ids(b.Members))
	err := r.err
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	outs := make([]Outcome, len(b.Members))
	for i, m := range b.Members {
		outs[i].Result = &backends.Result{CostUSD: float64(m.Rows)}
	}
	return outs, nil
}

func (r *recorder) got() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.batches...)
}

func newShell(t *testing.T, cfg Config, rec *recorder) (*Batcher, *fakeclock.Clock) {
	t.Helper()
	clk := fakeclock.New(t0)
	b, err := New(Options{Models: testModels, Configs: map[string]Config{"resnet": cfg, "llama": cfg}, Slots: 1, Clock: clk, Exec: rec.exec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, clk
}

type answer struct {
	res *backends.Result
	err error
}

func goDo(ctx context.Context, b *Batcher, r *backends.Request) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		res, err := b.Do(ctx, r)
		ch <- answer{res, err}
	}()
	return ch
}

// waitQueued yields until n requests are queued (Do enqueues before it
// blocks; no sleeping).
func waitQueued(b *Batcher, n int) {
	for b.Len() != n {
		runtime.Gosched()
	}
}

func TestBatcherFixedDelay(t *testing.T) {
	rec := &recorder{}
	b, clk := newShell(t, Config{Mode: ModeFixed, MaxBatchSize: 8, MaxQueueDelay: msd(3)}, rec)
	r1, r2 := vreq(backends.Standard, t0, 0, 1), vreq(backends.Standard, t0, 0, 2)
	c1 := goDo(context.Background(), b, r1)
	waitQueued(b, 1)
	c2 := goDo(context.Background(), b, r2)
	waitQueued(b, 2)
	clk.Advance(msd(3))
	a1, a2 := <-c1, <-c2
	if a1.err != nil || a2.err != nil || a1.res.CostUSD != 1 || a2.res.CostUSD != 2 {
		t.Fatalf("answers %+v %+v", a1, a2)
	}
	if got := rec.got(); len(got) != 1 || len(got[0]) != 2 {
		t.Fatalf("batches %v, want one of 2", got)
	}
}

func TestBatcherDeadlineNeverExecutes(t *testing.T) {
	rec := &recorder{}
	b, clk := newShell(t, Config{Mode: ModeFixed, MaxBatchSize: 8, MaxQueueDelay: msd(10)}, rec)
	r := vreq(backends.Standard, t0, 0, 1)
	r.Deadline = at(2)
	ch := goDo(context.Background(), b, r)
	waitQueued(b, 1)
	clk.Advance(msd(2))
	if a := <-ch; !errors.Is(a.err, backends.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", a.err)
	}
	clk.Advance(msd(20))
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("executed %v", got)
	}
}

func TestBatcherCancelAndClose(t *testing.T) {
	rec := &recorder{}
	b, _ := newShell(t, Config{Mode: ModeFixed, MaxBatchSize: 8, MaxQueueDelay: msd(10)}, rec)
	ctx, cancel := context.WithCancel(context.Background())
	c1 := goDo(ctx, b, vreq(backends.Standard, t0, 0, 1))
	waitQueued(b, 1)
	cancel()
	if a := <-c1; !errors.Is(a.err, context.Canceled) {
		t.Fatalf("canceled: %v", a.err)
	}
	waitQueued(b, 0)
	c2 := goDo(context.Background(), b, vreq(backends.Standard, t0, 0, 1))
	waitQueued(b, 1)
	b.Close()
	if a := <-c2; !errors.Is(a.err, backends.ErrUnavailable) {
		t.Fatalf("closed: %v", a.err)
	}
	if _, err := b.Do(context.Background(), vreq(backends.Standard, t0, 0, 1)); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("after Close: %v", err)
	}
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("executed %v", got)
	}
}

func TestBatcherExecErrorFailsEveryMember(t *testing.T) {
	rec := &recorder{err: backends.ErrUnavailable}
	b, _ := newShell(t, Config{Mode: ModeFixed, MaxBatchSize: 2, MaxQueueDelay: msd(10)}, rec)
	c1 := goDo(context.Background(), b, vreq(backends.Standard, t0, 0, 1))
	waitQueued(b, 1)
	c2 := goDo(context.Background(), b, vreq(backends.Standard, t0, 0, 1)) // reaches max: dispatched
	for _, c := range []<-chan answer{c1, c2} {
		if a := <-c; !errors.Is(a.err, backends.ErrUnavailable) {
			t.Fatalf("err = %v", a.err)
		}
	}
	if got := rec.got(); len(got) != 1 {
		t.Fatalf("batches %v: the batcher must not retry", got)
	}
}

func TestBatcherEvict(t *testing.T) {
	rec := &recorder{}
	clk := fakeclock.New(t0)
	b, _ := New(Options{Models: testModels, Configs: map[string]Config{"resnet": {Mode: ModeFixed, MaxBatchSize: 8, MaxQueueDelay: msd(100)}},
		Predictor: linPred{msd(5), msd(1)}, Clock: clk, Exec: rec.exec})
	defer b.Close()
	ch := goDo(context.Background(), b, vreq(backends.Standard, t0, msd(10), 1))
	waitQueued(b, 1)
	clk.Advance(msd(5))
	if out := b.Evict(); len(out) != 1 {
		t.Fatalf("evicted %d", len(out))
	}
	if a := <-ch; !errors.Is(a.err, ErrEvicted) || !errors.Is(a.err, backends.ErrUnavailable) {
		t.Fatalf("err = %v", a.err)
	}
}

func TestBatcherAdmit(t *testing.T) {
	b, _ := newShell(t, Config{}, &recorder{}) // 1 slot
	r1 := &backends.Request{ID: "l1", Op: backends.OpChat, Model: "llama"}
	r2 := &backends.Request{ID: "l2", Op: backends.OpChat, Model: "llama"}
	rel1, err := b.Admit(context.Background(), r1)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var rel2 func()
	go func() {
		var err error
		rel2, err = b.Admit(context.Background(), r2)
		done <- err
	}()
	waitQueued(b, 1)
	select {
	case <-done:
		t.Fatal("admitted while the slot is taken")
	default:
	}
	rel1()
	rel1() // idempotent
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rel2()
	if _, err := b.Do(context.Background(), r1); !errors.Is(err, backends.ErrBadRequest) {
		t.Errorf("Do of an LLM request: %v", err)
	}
}
