// Package discovery owns dynamic backend discovery: it turns a pool spec (a
// DNS name, or a Kubernetes Service's EndpointSlices) into a live, changing
// set of endpoints, for pools that outgrow the fleet file's static list of
// addresses (package fleet). It knows nothing of models, hardware or
// transports; it only says which host:port endpoints a pool has right now.
//
// # How a change flows
//
// A Source (NewDNS, NewK8s) runs in a goroutine of the caller's:
//
//	src, err := discovery.NewDNS(cfg, nil, nil) // net.DefaultResolver, wall clock
//	go src.Run(ctx, func(eps []discovery.Endpoint) {
//		// rebuild the pool from eps, then swap it in
//	})
//
// Source → update callback → the caller rebuilds the fleet's pool: Run calls
// update with the complete, sorted (by Address), de-duplicated (by Address)
// set each time the set changes — a full snapshot, never a delta, and never
// a set equal to the previous one. The first call comes once the first
// resolution succeeds, even when it finds nothing, so "discovered and empty"
// differs from "not known yet" (no call); a source that never resolves never
// calls update. Calls are serial, from Run's goroutine; update owns the
// slice it gets and should return promptly. Building backends from the
// endpoints, draining removed ones and swapping the router's view are the
// caller's (the fleet or gateway reload's), not this package's.
//
// # DNS rules
//
// DNSConfig names a host (A/AAAA records, every address at one port) or an
// SRV name (each record gives target and port). The name is resolved when
// Run starts and then every Interval (default 30s, on the injected
// backends.Clock), each lookup bounded by Timeout (default 5s):
//
//   - a successful answer replaces the set;
//   - a not-found answer (a *net.DNSError with IsNotFound: NXDOMAIN or no
//     records) empties it — the name is authoritatively gone;
//   - any other failure (timeout, SERVFAIL, unreachable server) keeps the
//     last good set, so a DNS outage does not empty a pool of healthy
//     servers;
//   - LastError reports the latest lookup's error (failure or not-found),
//     nil after a success; WithErrorHandler sees each one as it happens.
//
// SRV targets are used as host names (not resolved further; the dialer
// does), with the record's priority and weight in Labels (LabelSRVPriority,
// LabelSRVWeight) for the caller's placement to honour: all records are in
// the set, whatever their priority. Records with target "." are skipped.
//
// # Kubernetes rules
//
// K8sConfig selects the EndpointSlices of one namespace by Service (the
// kubernetes.io/service-name label) and/or a label selector, and a port by
// name or number. The source runs a client-go informer on
// discovery.k8s.io/v1 EndpointSlices and, after the initial list and on every
// add, update or delete, recomputes the union of the endpoints of all
// selected slices that are:
//
//   - ready: conditions.ready true, or unset (the API says nil means ready);
//   - not terminating: conditions.terminating true excludes an endpoint even
//     if it is marked ready (publishNotReadyAddresses);
//   - in a slice that has the configured port (TCP); other slices add
//     nothing.
//
// The endpoint's first address with that port is its Address, its zone its
// Zone, its pod and node go in Labels (LabelPod, LabelNode). A failed list or
// watch keeps the informer's cache (the last known set) while client-go
// retries with backoff; LastError reports it.
//
// The service account needs get, list and watch on endpointslices in the
// discovery.k8s.io group, in the watched namespace:
//
//	apiVersion: rbac.authorization.k8s.io/v1
//	kind: Role
//	metadata:
//	  name: accelgate-discovery
//	  namespace: inference
//	rules:
//	  - apiGroups: ["discovery.k8s.io"]
//	    resources: ["endpointslices"]
//	    verbs: ["get", "list", "watch"]
//	---
//	apiVersion: rbac.authorization.k8s.io/v1
//	kind: RoleBinding
//	metadata:
//	  name: accelgate-discovery
//	  namespace: inference
//	subjects:
//	  - kind: ServiceAccount
//	    name: accelgate
//	    namespace: inference
//	roleRef:
//	  apiGroup: rbac.authorization.k8s.io
//	  kind: Role
//	  name: accelgate-discovery
//
// InClusterClient builds the client from the pod's service account.
//
// # Configuration
//
// DNSConfig and K8sConfig carry yaml tags for a fleet file section; each has
// SetDefaults and a Validate whose errors name the yaml field ("port: ...")
// for the caller to prefix with where the section stands. NewDNS and NewK8s
// apply both.
package discovery
