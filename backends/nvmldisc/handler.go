package nvmldisc

import (
	"encoding/json"
	"net/http"
)

// Handler returns an admin endpoint that answers GET with the JSON of a fresh
// DiscoverLocal (see NewHandler).
func Handler() http.Handler { return NewHandler(nil) }

// NewHandler returns an admin endpoint serving the inventory discover returns
// (DiscoverLocal when nil; a Poller's Inventory method serves its latest
// inventory instead of discovering per request). GET answers 200 with the
// inventory as JSON, also when NVML is unavailable (the body then says
// "available": false and why). HEAD answers the same headers without
// discovering. Any other method answers 405 with an Allow header and a JSON
// body {"error": "..."}.
func NewHandler(discover func() Inventory) http.Handler {
	if discover == nil {
		discover = DiscoverLocal
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		default:
			h.Set("Allow", "GET, HEAD")
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			json.NewEncoder(w).Encode(map[string]string{"error": "method " + r.Method + " not allowed; use GET"})
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return
		}
		inv := discover()
		w.WriteHeader(http.StatusOK)
		inv.WriteJSON(w)
	})
}
