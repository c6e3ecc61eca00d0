package discovery

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const ns = "inference"

func ptr[T any](v T) *T { return &v }

// kep is an endpoint; ready and terminating nil mean unset.
func kep(addr, zone string, ready, terminating *bool) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{
		Addresses:  []string{addr},
		Conditions: discoveryv1.EndpointConditions{Ready: ready, Terminating: terminating},
	}
	if zone != "" {
		e.Zone = ptr(zone)
	}
	return e
}

// httpPorts is a vLLM Service's ports as slices list them.
var httpPorts = []discoveryv1.EndpointPort{
	{Name: ptr("metrics"), Port: ptr(int32(9000)), Protocol: ptr(corev1.ProtocolTCP)},
	{Name: ptr("http"), Port: ptr(int32(8000)), Protocol: ptr(corev1.ProtocolTCP)},
}

func kslice(name string, lbls map[string]string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbls},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func svcLabels(svc string) map[string]string {
	return map[string]string{discoveryv1.LabelServiceName: svc}
}

type k8sHarness struct {
	running
	client *fake.Clientset
	src    *K8sSource
	errs   chan error
}

func startK8s(t *testing.T, cfg K8sConfig, client *fake.Clientset) *k8sHarness {
	t.Helper()
	h := &k8sHarness{
		client: client,
		errs:   make(chan error, 1),
	}
	src, err := NewK8s(cfg, client, WithErrorHandler(func(err error) {
		select { // the informer retries; the test wants the first
		case h.errs <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatalf("NewK8s: %v", err)
	}
	h.src = src
	h.run(t, src)
	t.Cleanup(h.stop)
	return h
}

func (h *k8sHarness) create(s *discoveryv1.EndpointSlice) {
	h.t.Helper()
	if _, err := h.client.DiscoveryV1().EndpointSlices(s.Namespace).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *k8sHarness) update(s *discoveryv1.EndpointSlice) {
	h.t.Helper()
	if _, err := h.client.DiscoveryV1().EndpointSlices(s.Namespace).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *k8sHarness) delete(name string) {
	h.t.Helper()
	if err := h.client.DiscoveryV1().EndpointSlices(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func TestK8sServiceLifecycle(t *testing.T) {
	a := kslice("vllm-a", svcLabels("vllm"), httpPorts,
		kep("10.0.0.1", "zone-a", nil, nil),              // ready unset: ready
		kep("10.0.0.2", "zone-b", ptr(true), ptr(false)), // ready
		kep("10.0.0.3", "zone-a", ptr(false), nil),       // not ready
		kep("10.0.0.4", "zone-b", ptr(true), ptr(true)),  // terminating
		kep("10.0.0.5", "zone-c", ptr(false), ptr(true)), // both
	)
	h := startK8s(t, K8sConfig{Namespace: ns, Service: "vllm", Port: "http"}, fake.NewSimpleClientset(a))

	eps := h.next()
	wantAddrs(t, eps, "10.0.0.1:8000 10.0.0.2:8000")
	if eps[0].Zone != "zone-a" || eps[1].Zone != "zone-b" || !eps[0].Ready || !eps[1].Ready {
		t.Errorf("endpoints %+v", eps)
	}

	// A second slice of the service joins the union.
	h.create(kslice("vllm-b", svcLabels("vllm"), httpPorts, kep("10.0.1.1", "zone-c", ptr(true), nil)))
	wantAddrs(t, h.next(), "10.0.0.1:8000 10.0.0.2:8000 10.0.1.1:8000")

	// A slice of another service, and one in another namespace, change
	// nothing: had they caused an update, it would come before the next.
	h.create(kslice("other-a", svcLabels("other"), httpPorts, kep("10.9.9.9", "", nil, nil)))
	other := kslice("vllm-elsewhere", svcLabels("vllm"), httpPorts, kep("10.8.8.8", "", nil, nil))
	other.Namespace = "elsewhere"
	h.create(other)

	// Mark 10.0.0.2 not ready: it leaves.
	a = a.DeepCopy()
	a.Endpoints[1].Conditions.Ready = ptr(false)
	h.update(a)
	wantAddrs(t, h.next(), "10.0.0.1:8000 10.0.1.1:8000")

	// An update that changes no ready endpoint (a not-ready one starts
	// terminating) makes no call; the next real change does.
	a = a.DeepCopy()
	a.Endpoints[2].Conditions.Terminating = ptr(true)
	h.update(a)
	h.delete("vllm-b")
	wantAddrs(t, h.next(), "10.0.0.1:8000")

	h.delete("vllm-a")
	if eps := h.next(); eps == nil || len(eps) != 0 {
		t.Fatalf("after deleting every slice: %#v, want empty", eps)
	}
	if err := h.src.LastError(); err != nil {
		t.Errorf("LastError = %v", err)
	}
	h.stop()
}

func TestK8sEmptyAtStart(t *testing.T) {
	h := startK8s(t, K8sConfig{Namespace: ns, Service: "vllm", PortNumber: 8000}, fake.NewSimpleClientset())
	if eps := h.next(); eps == nil || len(eps) != 0 {
		t.Fatalf("first update %#v, want empty", eps)
	}
	h.create(kslice("vllm-a", svcLabels("vllm"), httpPorts, kep("10.0.0.1", "", nil, nil)))
	wantAddrs(t, h.next(), "10.0.0.1:8000")
}

func TestK8sLabelSelector(t *testing.T) {
	gpu := map[string]string{"app": "vllm", "tier": "gpu", discoveryv1.LabelServiceName: "vllm-gpu"}
	cpu := map[string]string{"app": "vllm", "tier": "cpu", discoveryv1.LabelServiceName: "vllm-cpu"}
	unnamed := []discoveryv1.EndpointPort{{Port: ptr(int32(8000))}}
	client := fake.NewSimpleClientset(
		kslice("gpu-1", gpu, unnamed, kep("10.0.0.1", "a", nil, nil)),
		kslice("cpu-1", cpu, unnamed, kep("10.0.0.2", "a", nil, nil)),
		kslice("plain", svcLabels("vllm"), unnamed, kep("10.0.0.3", "a", nil, nil)),
	)
	h := startK8s(t, K8sConfig{Namespace: ns, LabelSelector: "app=vllm,tier=gpu", PortNumber: 8000}, client)
	if got := h.src.Selector(); got != "app=vllm,tier=gpu" {
		t.Errorf("Selector = %q", got)
	}
	wantAddrs(t, h.next(), "10.0.0.1:8000")

	h.create(kslice("cpu-2", cpu, unnamed, kep("10.0.0.4", "a", nil, nil)))
	h.create(kslice("gpu-2", gpu, unnamed, kep("10.0.0.5", "b", nil, nil)))
	wantAddrs(t, h.next(), "10.0.0.1:8000 10.0.0.5:8000")

	// Relabelling a slice out of the selection removes its endpoints.
	s := kslice("gpu-2", cpu, unnamed, kep("10.0.0.5", "b", nil, nil))
	h.update(s)
	wantAddrs(t, h.next(), "10.0.0.1:8000")
}

func TestK8sServiceAndSelector(t *testing.T) {
	src, err := NewK8s(K8sConfig{Service: "vllm", LabelSelector: "tier=gpu", Port: "http"}, fake.NewSimpleClientset())
	if err != nil {
		t.Fatal(err)
	}
	if got := src.Selector(); got != "kubernetes.io/service-name=vllm,tier=gpu" {
		t.Errorf("Selector = %q", got)
	}
	if src.Config().Namespace != "default" {
		t.Errorf("namespace default = %q", src.Config().Namespace)
	}
}

func TestK8sListForbidden(t *testing.T) {
	client := fake.NewSimpleClientset(kslice("vllm-a", svcLabels("vllm"), httpPorts, kep("10.0.0.1", "", nil, nil)))
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, "", errors.New("RBAC: access denied"))
	client.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, forbidden
	})
	h := startK8s(t, K8sConfig{Namespace: ns, Service: "vllm", Port: "http"}, client)
	select {
	case err := <-h.errs:
		if !apierrors.IsForbidden(err) {
			t.Fatalf("reported %v, want forbidden", err)
		}
	case <-time.After(guard):
		t.Fatal("no error reported")
	}
	if err := h.src.LastError(); !apierrors.IsForbidden(err) {
		t.Errorf("LastError = %v, want forbidden", err)
	}
	h.stop() // and no update was made
}

func TestK8sRunTwice(t *testing.T) {
	h := startK8s(t, K8sConfig{Namespace: ns, Service: "vllm", Port: "http"}, fake.NewSimpleClientset())
	h.next()
	if err := h.src.Run(context.Background(), func([]Endpoint) {}); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
}

func TestEndpointsFromSlices(t *testing.T) {
	byName := K8sConfig{Port: "http"}
	byNumber := K8sConfig{PortNumber: 8000}
	v6 := kslice("v6", nil, httpPorts, kep("2001:db8::7", "z", nil, nil))
	v6.AddressType = discoveryv1.AddressTypeIPv6
	withPod := kep("10.0.0.9", "z9", nil, nil)
	withPod.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: "vllm-0", Namespace: ns}
	withPod.NodeName = ptr("gpu-node-3")
	for _, tc := range []struct {
		name   string
		cfg    K8sConfig
		slices []*discoveryv1.EndpointSlice
		want   string
	}{
		{"named port", byName, []*discoveryv1.EndpointSlice{kslice("s", nil, httpPorts, kep("10.0.0.1", "", nil, nil))}, "10.0.0.1:8000"},
		{"named port missing", K8sConfig{Port: "grpc"}, []*discoveryv1.EndpointSlice{kslice("s", nil, httpPorts, kep("10.0.0.1", "", nil, nil))}, ""},
		{"port number", byNumber, []*discoveryv1.EndpointSlice{kslice("s", nil, httpPorts, kep("10.0.0.1", "", nil, nil))}, "10.0.0.1:8000"},
		{"port number missing", K8sConfig{PortNumber: 8080}, []*discoveryv1.EndpointSlice{kslice("s", nil, httpPorts, kep("10.0.0.1", "", nil, nil))}, ""},
		{"all ports", K8sConfig{PortNumber: 8080}, []*discoveryv1.EndpointSlice{kslice("s", nil, []discoveryv1.EndpointPort{{}}, kep("10.0.0.1", "", nil, nil))}, "10.0.0.1:8080"},
		{"no ports", byNumber, []*discoveryv1.EndpointSlice{kslice("s", nil, nil, kep("10.0.0.1", "", nil, nil))}, ""},
		{"udp skipped", byNumber, []*discoveryv1.EndpointSlice{kslice("s", nil, []discoveryv1.EndpointPort{{Port: ptr(int32(8000)), Protocol: ptr(corev1.ProtocolUDP)}}, kep("10.0.0.1", "", nil, nil))}, ""},
		{"ipv6", byName, []*discoveryv1.EndpointSlice{v6}, "[2001:db8::7]:8000"},
		{"no address", byName, []*discoveryv1.EndpointSlice{kslice("s", nil, httpPorts, discoveryv1.Endpoint{})}, ""},
		{"first address only", byName, []*discoveryv1.EndpointSlice{kslice("s", nil, httpPorts, discoveryv1.Endpoint{Addresses: []string{"10.0.0.1", "10.0.0.2"}})}, "10.0.0.1:8000"},
		{"per-slice ports", byName, []*discoveryv1.EndpointSlice{
			kslice("s1", nil, httpPorts, kep("10.0.0.1", "", nil, nil)),
			kslice("s2", nil, []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080))}}, kep("10.0.0.2", "", nil, nil)),
		}, "10.0.0.1:8000 10.0.0.2:8080"},
		{"duplicates", byName, []*discoveryv1.EndpointSlice{
			kslice("s2", nil, httpPorts, kep("10.0.0.1", "second", nil, nil)),
			kslice("s1", nil, httpPorts, kep("10.0.0.1", "first", nil, nil), kep("10.0.0.1", "again", nil, nil)),
		}, "10.0.0.1:8000"},
	} {
		got := EndpointsFromSlices(tc.cfg, tc.slices)
		if got == nil {
			t.Errorf("%s: nil set", tc.name)
		}
		if a := addrs(got); a != tc.want {
			t.Errorf("%s: [%s], want [%s]", tc.name, a, tc.want)
		}
		if tc.name == "duplicates" && got[0].Zone != "first" {
			t.Errorf("duplicates: kept zone %q, want the first slice's", got[0].Zone)
		}
	}
	got := EndpointsFromSlices(byName, []*discoveryv1.EndpointSlice{kslice("s", nil, httpPorts, withPod)})
	if len(got) != 1 || got[0].Zone != "z9" || got[0].Labels[LabelPod] != "vllm-0" || got[0].Labels[LabelNode] != "gpu-node-3" {
		t.Errorf("pod labels: %+v", got)
	}
}

func TestK8sConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  K8sConfig
		want []string
	}{
		{cfg: K8sConfig{Service: "vllm", Port: "http"}},
		{cfg: K8sConfig{Namespace: "inference", LabelSelector: "app in (vllm, sglang)", PortNumber: 8000, ResyncPeriod: time.Minute}},
		{cfg: K8sConfig{}, want: []string{"service: set service or label_selector", "port: set one of port"}},
		{cfg: K8sConfig{Namespace: "Bad_NS", Service: "vllm", Port: "http"}, want: []string{"namespace: \"Bad_NS\""}},
		{cfg: K8sConfig{Service: "vllm.svc", Port: "http"}, want: []string{"service: \"vllm.svc\""}},
		{cfg: K8sConfig{LabelSelector: "app in vllm", Port: "http"}, want: []string{"label_selector: "}},
		{cfg: K8sConfig{Service: "vllm", Port: "http", PortNumber: 80}, want: []string{"port: set only one of port and port_number"}},
		{cfg: K8sConfig{Service: "vllm", Port: "not a port name"}, want: []string{"port: \"not a port name\""}},
		{cfg: K8sConfig{Service: "vllm", PortNumber: 70000}, want: []string{"port_number: must be between 1 and 65535"}},
		{cfg: K8sConfig{Service: "vllm", PortNumber: -1}, want: []string{"port_number: must be between"}},
		{cfg: K8sConfig{Service: "vllm", Port: "http", ResyncPeriod: -time.Second}, want: []string{"resync_period: must not be negative"}},
	} {
		if !wantInvalid(t, tc.cfg, tc.cfg.Validate(), tc.want) {
			continue
		}
		if _, nerr := NewK8s(tc.cfg, fake.NewSimpleClientset()); nerr == nil {
			t.Errorf("%+v: NewK8s accepted it", tc.cfg)
		}
	}
	if _, err := NewK8s(K8sConfig{Service: "vllm", Port: "http"}, nil); err == nil {
		t.Error("NewK8s accepted a nil client")
	}
}

func TestK8sConfigYAML(t *testing.T) {
	src := `
namespace: inference
service: vllm
label_selector: tier=gpu
port: http
resync_period: 5m
`
	var c K8sConfig
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := K8sConfig{Namespace: "inference", Service: "vllm", LabelSelector: "tier=gpu", Port: "http", ResyncPeriod: 5 * time.Minute}
	if c != want {
		t.Errorf("decoded %+v, want %+v", c, want)
	}
}
