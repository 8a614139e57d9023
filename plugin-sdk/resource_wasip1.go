//go:build wasip1

package sdk

import "unsafe"

//go:wasmimport relay resource
func hostResource(name string, dst unsafe.Pointer, dstCap int32) int64

//go:wasmimport relay resource_refresh
func hostResourceRefresh(name string) int32

// ResourceVersion returns the version of the resource named name (its URL)
// without copying it: a cheap call to make on every hook, reading the
// content again only when the version changed.
func ResourceVersion(name string) (uint32, error) {
	r := hostResource(name, nil, 0)
	if r < 0 {
		return 0, resourceErr(r)
	}
	return uint32(r >> 32), nil
}

// ReadResource returns the content of the resource named name (its URL),
// as the host last fetched it.
func ReadResource(name string) (Resource, error) {
	for {
		r := hostResource(name, nil, 0)
		if r < 0 {
			return Resource{}, resourceErr(r)
		}
		buf := make([]byte, uint32(r))
		r2 := hostResource(name, unsafe.Pointer(&buf[0]), int32(len(buf)))
		if r2 < 0 {
			return Resource{}, resourceErr(r2)
		}
		if uint32(r2) == uint32(len(buf)) && r2>>32 == r>>32 {
			return Resource{Data: buf, Version: uint32(r2 >> 32)}, nil
		}
		// Changed between the two calls: read the new content.
	}
}

// RefreshResource asks the host to fetch the resource again, for example
// when a token names a key the plugin does not have. The host fetches at
// once, or RELAY_PLUGIN_RESOURCE_MIN_REFRESH after its last fetch if that
// is later; either way the call returns at once and a later hook sees the
// new version. It reports whether the fetch starts now.
func RefreshResource(name string) (bool, error) {
	r := hostResourceRefresh(name)
	if r < 0 {
		return false, resourceErr(int64(r))
	}
	return r == resourceRefreshNow, nil
}
