//go:build !wasip1

package sdk

// Outside a wasm host (unit tests of plugin logic), resources come from
// SetResource.

var nativeResources = map[string]*Resource{}

// SetResource sets the content of a resource outside a wasm host, for unit
// tests of plugin logic; nil data makes it unavailable. Each call makes a
// new version. In a plugin running in the relay it does not exist.
func SetResource(name string, data []byte) {
	r := nativeResources[name]
	if r == nil {
		r = &Resource{}
		nativeResources[name] = r
	}
	if data == nil {
		r.Data = nil
		return
	}
	r.Data = append([]byte(nil), data...)
	r.Version++
}

// ResourceVersion returns the version of the resource named name.
func ResourceVersion(name string) (uint32, error) {
	r, err := ReadResource(name)
	return r.Version, err
}

// ReadResource returns the content of the resource named name.
func ReadResource(name string) (Resource, error) {
	r := nativeResources[name]
	switch {
	case r == nil:
		return Resource{}, ErrResourceNotAllowed
	case r.Data == nil:
		return Resource{}, ErrResourceUnavailable
	}
	return Resource{Data: append([]byte(nil), r.Data...), Version: r.Version}, nil
}

// RefreshResource asks for a new fetch; outside a wasm host it does nothing.
func RefreshResource(name string) (bool, error) {
	_, err := ReadResource(name)
	if err == ErrResourceUnavailable {
		err = nil
	}
	return err == nil, err
}
