// Package router decides where each request runs.
//
// Its core, Router, is a single-threaded state machine with no goroutines,
// locks or clock of its own: every method takes the current time, so the live
// gateway (which wraps it in a mutex) and the discrete-event simulator (which
// drives it in virtual time) run the very same decisions.
//
// A request's path through the router:
//
//  1. Place filters the fleet to the backends that serve the request's model
//     and workload class and are not ejected.
//  2. For each, a Predictor estimates latency (queue wait from the work the
//     router itself has placed there and not yet seen finish, plus the
//     profile's service time, plus the network round trip) and the attributed
//     cost of this request.
//  3. The policy picks one. The default policy, "accelgate", keeps the
//     backends whose predicted latency (with a safety margin) meets the
//     request's SLO and takes the one with the lowest predicted attributed
//     cost, breaking ties by predicted latency and then by load. When none
//     meets the SLO, critical and standard requests go to the fastest
//     backend and sheddable ones are refused (backends.ErrShed, 429).
//     "round-robin" is the baseline that ignores SLOs and cost.
//  4. Place charges the request's work to the chosen backend's books; Done
//     (called exactly once per placed request) releases it and feeds back the
//     outcome: consecutive failures eject a backend for a cool-down period.
//
// Place allocates nothing: candidates are scanned in place over a slice
// built at construction, and no maps are created per request.
package router
