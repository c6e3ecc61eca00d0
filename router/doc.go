// Package router decides where each request runs.
//
// Its core, Router, is a single-threaded state machine with no goroutines,
// locks or clock of its own: every method takes the current time, so the live
// gateway (which wraps it in a mutex) and the discrete-event simulator (which
// drives it in virtual time) run the very same decisions. Factors and
// BatchPredictor, the learned corrections the batchers read, are published
// through atomics and may be read concurrently.
//
// A request's path through the router:
//
//  1. Place looks up the prompt's prefixes in the prefix-affinity table
//     (affinity.go) and takes the model's candidates by hardware class
//     (index.go): every available backend of a small class, the least and
//     most loaded of a large one.
//  2. For each, a Predictor (predict.go; ProfilePredictor by default)
//     estimates latency — queue wait from the work the router itself has
//     placed there and not yet seen finish, merged with what the backend
//     reports (SetExternal), plus the profile's service time with the
//     expected batch size and the prompt tokens it likely has cached, plus
//     the network round trip (measured, SetRTT) — and the attributed cost of
//     this request. The online model (learn.go) scales the prediction by the
//     learned mean ratio of observed to predicted time, and its quantile per
//     priority class gives the latency compared with the SLO.
//  3. The policy picks one. The default, "accelgate", keeps the backends
//     whose quantile latency meets the request's SLO and takes the one with
//     the lowest predicted attributed cost (costs within CostTolerance tie;
//     then lower predicted latency, then fewer requests in flight), a backend
//     at the request's site first. When none meets the SLO, critical and
//     standard requests go to the fastest backend; sheddable ones too when
//     their expected latency (the mean, without the margin) meets it there,
//     and are refused (backends.ErrShed, 429) when even that misses. The
//     TTFT and end-to-end targets count from the request's arrival
//     (elapsed), so a request a batcher handed back is judged on what is
//     left of its budget. Seven baselines (policy.go) pick by
//     their own rules: round-robin, random, least-outstanding,
//     power-of-two-choices, fastest, cheapest, latency-ewma.
//  4. Place charges the request's work to the chosen backend's books; Done
//     (called exactly once per placed request, with an Outcome) releases it,
//     feeds the outcome to the online model and the affinity table, steers
//     the request class's margin quantile by whether its SLO was met as the
//     client saw it (attain.go: the quantile settles where the class meets
//     its Config.Attainment), and ejects a backend after consecutive
//     failures or a high failure rate, re-admitting it gradually.
//
// Place allocates nothing: candidates are indexed at construction, the
// affinity lookup uses Peek, predictions are written in place, and no maps
// are created per request.
package router
