package sdk

import "errors"

// Errors of ReadResource, ResourceVersion and RefreshResource.
var (
	// ErrResourceNotAllowed: the operator did not list the resource in
	// RELAY_PLUGIN_RESOURCES_<NAME>, so the host does not fetch it.
	ErrResourceNotAllowed = errors.New("resource not allowed: the relay does not fetch it (add its URL to RELAY_PLUGIN_RESOURCES_<NAME>)")
	// ErrResourceUnavailable: the host has not fetched the resource yet
	// (it started with RELAY_PLUGIN_RESOURCE_STARTUP=wait).
	ErrResourceUnavailable = errors.New("resource not fetched yet")
)

// Resource is the content of a resource as the host last fetched it.
type Resource struct {
	// Data is the response body. It belongs to the caller.
	Data []byte
	// Version changes whenever the content changes (1 for the first);
	// compare it with ResourceVersion to know when to parse Data again.
	Version uint32
}

func resourceErr(code int64) error {
	switch code {
	case resourceNotAllowed:
		return ErrResourceNotAllowed
	case resourceUnavailable:
		return ErrResourceUnavailable
	}
	return errors.New("resource: bad arguments")
}
