package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends/discovery"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/internal/testutil"
)

// fakeSource hands the endpoint sets it receives on sets to the pool.
type fakeSource struct{ sets chan []discovery.Endpoint }

func (s *fakeSource) Run(ctx context.Context, update func([]discovery.Endpoint)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case eps := <-s.sets:
			update(eps)
		}
	}
}

// TestPoolMembersFollowDiscovery: a pool entry's members are the endpoints
// its discovery source reports; as the set changes the gateway reloads and
// traffic follows (added members serve, removed ones stop receiving).
func TestPoolMembersFollowDiscovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	a, _ := testutil.StartEmulator(t, "-profile", "h100-sxm-80gb", "-models", "llama-3.1-8b-instruct", "-http-addr", "127.0.0.1:0", "-jitter", "0", "-name", "emu-a")
	b, _ := testutil.StartEmulator(t, "-profile", "h100-sxm-80gb", "-models", "llama-3.1-8b-instruct", "-http-addr", "127.0.0.1:0", "-jitter", "0", "-name", "emu-b")
	src := &fakeSource{sets: make(chan []discovery.Endpoint)}
	saved := newPoolSourceFn
	newPoolSourceFn = func(func(string, ...any)) func(string, *fleet.DiscoverSpec) (discovery.Source, error) {
		return func(name string, spec *fleet.DiscoverSpec) (discovery.Source, error) {
			if _, _, err := decodeDiscover(spec); err != nil {
				return nil, err
			}
			return src, nil
		}
	}
	t.Cleanup(func() { newPoolSourceFn = saved })
	fleetYAML := `models:
  - name: llama-3.1-8b-instruct
    kind: llm
backends:
  - name: pool
    hardware: h100-sxm-80gb
    transport: openai
    url: http://vllm.invalid:8000/v1
    models: [llama-3.1-8b-instruct]
    discover:
      dns: {name: vllm.invalid, port: 8000, interval: 1h}
health_check: {enabled: false}
`
	addrs := startGatewayWith(t, fleetYAML, "-reload-interval", "0")
	// No endpoint yet: the model has no backend.
	if st, _ := chatOn(t, addrs["http"], 2); st != 503 {
		t.Fatalf("empty pool: status %d, want 503", st)
	}
	push := func(eps ...string) {
		var set []discovery.Endpoint
		for _, e := range eps {
			set = append(set, discovery.Endpoint{Address: e, Ready: true})
		}
		select {
		case src.sets <- set:
		case <-time.After(10 * time.Second):
			t.Fatal("the pool's source is not running")
		}
	}
	// until waits for the pool to have exactly the members named want.
	until := func(want ...string) {
		deadline := time.Now().Add(15 * time.Second)
		for {
			seen := map[string]bool{}
			for k := 0; k < 8; k++ {
				if st, be := chatOn(t, addrs["http"], 2); st == 200 {
					seen[be] = true
				}
			}
			ok := len(seen) == len(want)
			for _, w := range want {
				ok = ok && seen["pool-"+w]
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("pool members seen %v, want %v", seen, want)
			}
		}
	}
	push(a)
	until(a)
	push(a, b)
	deadline := time.Now().Add(15 * time.Second)
	for { // both serve once the reload is applied (placement may pack onto one)
		resp, err := httpGetJSON(addrs["admin"] + "/admin/backends")
		if err == nil && strings.Contains(resp, "pool-"+a) && strings.Contains(resp, "pool-"+b) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool never had both members: %s %v", resp, err)
		}
	}
	push(b)
	until(b)
}

// httpGetJSON returns the body of GET http://url.
func httpGetJSON(url string) (string, error) {
	resp, err := http.Get("http://" + url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
