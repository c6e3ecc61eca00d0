package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// DefaultK8sNamespace is the namespace a K8sConfig without one watches.
const DefaultK8sNamespace = "default"

// K8sConfig is a pool whose members are the ready endpoints of Kubernetes
// EndpointSlices.
//
//	kubernetes:
//	  namespace: inference       # default "default"
//	  service: vllm              # slices labelled kubernetes.io/service-name=vllm
//	  label_selector: tier=gpu   # optional; with service, both must match
//	  port: http                 # the slice port by name, or:
//	  port_number: 8000          # the slice port by number
//	  resync_period: 0s          # informer resync; default 0 (none)
type K8sConfig struct {
	// Namespace is the one namespace watched. Default "default".
	Namespace string `yaml:"namespace"`
	// Service selects the slices of one Service (the
	// kubernetes.io/service-name label).
	Service string `yaml:"service"`
	// LabelSelector selects slices by label (Kubernetes selector syntax,
	// e.g. "app=vllm,tier in (gpu)"). At least one of Service and
	// LabelSelector is required; with both, a slice must match both.
	LabelSelector string `yaml:"label_selector"`
	// Port names the slice port to use (a Service port's name). Exactly one
	// of Port and PortNumber is required.
	Port string `yaml:"port"`
	// PortNumber is the slice port to use by number: the port the pods
	// listen on (the Service's targetPort), which is what slices list. A
	// slice port with no number ("all ports") matches it too.
	PortNumber int `yaml:"port_number"`
	// ResyncPeriod is the informer's resync period. The source recomputes
	// its set from the informer's cache on every event, so a resync only
	// re-confirms it; default 0 (no resync).
	ResyncPeriod time.Duration `yaml:"resync_period"`
}

// SetDefaults fills the empty Namespace.
func (c *K8sConfig) SetDefaults() {
	if c.Namespace == "" {
		c.Namespace = DefaultK8sNamespace
	}
}

// Validate checks the settings. Each error names the yaml field, e.g.
// "port: set one of port and port_number"; the caller prefixes where the
// section stands. An empty namespace passes (it means the default).
func (c *K8sConfig) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if c.Namespace != "" {
		if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
			bad("namespace", "%q: %s", c.Namespace, strings.Join(msgs, "; "))
		}
	}
	if c.Service == "" && c.LabelSelector == "" {
		bad("service", "set service or label_selector (or both)")
	}
	if c.Service != "" {
		if msgs := validation.IsDNS1123Label(c.Service); len(msgs) > 0 {
			bad("service", "%q: %s", c.Service, strings.Join(msgs, "; "))
		}
	}
	if c.LabelSelector != "" {
		if _, err := labels.Parse(c.LabelSelector); err != nil {
			bad("label_selector", "%v", err)
		}
	}
	switch {
	case c.Port == "" && c.PortNumber == 0:
		bad("port", "set one of port (a port name) and port_number")
	case c.Port != "" && c.PortNumber != 0:
		bad("port", "set only one of port and port_number")
	case c.Port != "":
		if msgs := validation.IsValidPortName(c.Port); len(msgs) > 0 {
			bad("port", "%q: %s", c.Port, strings.Join(msgs, "; "))
		}
	case c.PortNumber < 1 || c.PortNumber > 65535:
		bad("port_number", "must be between 1 and 65535, got %d", c.PortNumber)
	}
	if c.ResyncPeriod < 0 {
		bad("resync_period", "must not be negative")
	}
	return errors.Join(errs...)
}

// selector is the slices' label selector: the service-name label and
// LabelSelector together. cfg must be valid.
func (c *K8sConfig) selector() (labels.Selector, error) {
	sel := labels.Everything()
	if c.LabelSelector != "" {
		var err error
		if sel, err = labels.Parse(c.LabelSelector); err != nil {
			return nil, err
		}
	}
	if c.Service != "" {
		req, err := labels.NewRequirement(discoveryv1.LabelServiceName, selection.Equals, []string{c.Service})
		if err != nil {
			return nil, err
		}
		sel = sel.Add(*req)
	}
	return sel, nil
}

// K8sSource is a Source that watches EndpointSlices with a client-go
// informer (list once, then watch; one namespace, filtered by label on the
// server and again in the process).
//
// Its set is the union, over all selected slices, of the endpoints that are
// ready (conditions.ready true or unset, which the API says means ready) and
// not terminating (conditions.terminating true excludes an endpoint even
// when a Service's publishNotReadyAddresses marks it ready), taken at the
// slice's configured port (by name, or by number; a TCP port, as a slice
// with no protocol means); a slice without that port contributes nothing.
// Each endpoint is its first address joined with the port (an endpoint's
// addresses are fungible, per the API), its zone, and its pod and node in
// Labels. An address in two slices (as during a slice's rebalancing) is
// counted once, from the slice whose name sorts first.
//
// Run calls update first once the informer's initial list has been taken
// in (so never with a partial initial set), then after every add, update or
// delete that changes the set.
type K8sSource struct {
	cfg     K8sConfig
	sel     labels.Selector
	client  kubernetes.Interface
	opts    options
	running atomic.Bool

	mu      sync.Mutex
	lastErr error
}

var _ Source = (*K8sSource)(nil)

// NewK8s returns a Kubernetes source for cfg, which it copies, defaults and
// validates (returning Validate's error), reading through client (a
// kubernetes.Clientset from InClusterClient, or a fake in tests).
func NewK8s(cfg K8sConfig, client kubernetes.Interface, opts ...Option) (*K8sSource, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("discovery: NewK8s needs a Kubernetes client")
	}
	sel, err := cfg.selector()
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	return &K8sSource{cfg: cfg, sel: sel, client: client, opts: buildOptions(opts)}, nil
}

// InClusterClient returns a client for the cluster the process runs in,
// authenticated as the pod's service account (rest.InClusterConfig).
func InClusterClient() (kubernetes.Interface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("discovery: in-cluster Kubernetes config: %w", err)
	}
	return kubernetes.NewForConfig(cfg)
}

// Config returns the source's settings, defaults filled.
func (s *K8sSource) Config() K8sConfig { return s.cfg }

// Selector returns the label selector the source lists slices with.
func (s *K8sSource) Selector() string { return s.sel.String() }

// LastError returns the most recent list or watch failure (the informer
// retries with backoff; a lasting "forbidden" means missing RBAC), or nil
// when there was none or an event has arrived since.
func (s *K8sSource) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

func (s *K8sSource) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

// Run implements Source. It starts its own informer and stops it, waiting
// for its goroutines, before it returns. If the initial list never succeeds
// (no RBAC, no API server), Run waits, retrying, until ctx is done, without
// calling update; LastError says why.
func (s *K8sSource) Run(ctx context.Context, update func([]Endpoint)) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)

	ctx, cancel := context.WithCancel(ctx)
	sel := s.sel.String()
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, s.cfg.ResyncPeriod,
		informers.WithNamespace(s.cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	defer func() {
		cancel()
		factory.Shutdown()
	}()
	sliceInformer := factory.Discovery().V1().EndpointSlices()
	informer := sliceInformer.Informer()
	lister := sliceInformer.Lister().EndpointSlices(s.cfg.Namespace)

	if err := informer.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		if errors.Is(err, io.EOF) {
			return // the watch closed normally; the reflector re-opens it
		}
		s.setErr(err)
		if s.opts.onError != nil {
			s.opts.onError(err)
		} else {
			cache.DefaultWatchErrorHandler(ctx, r, err)
		}
	}); err != nil {
		return err
	}
	dirty := make(chan struct{}, 1)
	mark := func() {
		select {
		case dirty <- struct{}{}:
		default:
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { mark() },
		UpdateFunc: func(any, any) { mark() },
		DeleteFunc: func(any) { mark() },
	}); err != nil {
		return err
	}

	factory.Start(ctx.Done())
	if res := factory.WaitForCacheSyncWithContext(ctx); res.Err != nil {
		return nil // ctx is done before the first list succeeded
	}
	s.setErr(nil)
	em := emitter{update: update}
	for {
		list, err := lister.List(s.sel)
		if err != nil { // the cache lister fails only on a bad selector
			return fmt.Errorf("discovery: listing EndpointSlices from the cache: %w", err)
		}
		em.offer(EndpointsFromSlices(s.cfg, list))
		select {
		case <-ctx.Done():
			return nil
		case <-dirty:
			s.setErr(nil)
		}
	}
}

// EndpointsFromSlices is the K8sSource's set for the given slices (which
// it does not modify), normalized, by the rules on K8sSource. It does not
// filter by label: list holds the selected slices already. cfg's port
// settings pick the port.
func EndpointsFromSlices(cfg K8sConfig, list []*discoveryv1.EndpointSlice) []Endpoint {
	list = slices.Clone(list)
	slices.SortFunc(list, func(a, b *discoveryv1.EndpointSlice) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	eps := []Endpoint{}
	for _, sl := range list {
		if sl == nil {
			continue
		}
		port, ok := slicePort(cfg, sl)
		if !ok {
			continue
		}
		p := strconv.Itoa(port)
		for _, e := range sl.Endpoints {
			if !endpointReady(e) || len(e.Addresses) == 0 || e.Addresses[0] == "" {
				continue
			}
			ep := Endpoint{Address: net.JoinHostPort(e.Addresses[0], p), Ready: true}
			if e.Zone != nil {
				ep.Zone = *e.Zone
			}
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" && e.TargetRef.Name != "" {
				ep.Labels = map[string]string{LabelPod: e.TargetRef.Name}
			}
			if e.NodeName != nil && *e.NodeName != "" {
				if ep.Labels == nil {
					ep.Labels = map[string]string{}
				}
				ep.Labels[LabelNode] = *e.NodeName
			}
			eps = append(eps, ep)
		}
	}
	return Normalize(eps)
}

// endpointReady: ready unset counts as ready (the API's rule); terminating
// never is.
func endpointReady(e discoveryv1.Endpoint) bool {
	c := e.Conditions
	if c.Terminating != nil && *c.Terminating {
		return false
	}
	return c.Ready == nil || *c.Ready
}

// slicePort returns the port of sl that cfg names.
func slicePort(cfg K8sConfig, sl *discoveryv1.EndpointSlice) (int, bool) {
	for _, p := range sl.Ports {
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		if cfg.Port != "" {
			if p.Name != nil && *p.Name == cfg.Port && p.Port != nil {
				return int(*p.Port), true
			}
			continue
		}
		if cfg.PortNumber > 0 && (p.Port == nil || int(*p.Port) == cfg.PortNumber) {
			return cfg.PortNumber, true
		}
	}
	return 0, false
}
