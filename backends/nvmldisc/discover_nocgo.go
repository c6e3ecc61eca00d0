//go:build !cgo

package nvmldisc

// DiscoverLocal reports NVML as unavailable: go-nvml needs cgo, and this
// binary was built without it (CGO_ENABLED=0). Discover does not exist in
// such builds.
func DiscoverLocal() Inventory {
	return Inventory{Reason: UnavailablePrefix + "built without cgo"}
}
