//go:build !unix

package relay

func fileLimit() int { return 0 }

// RaiseFileLimit does nothing on systems without RLIMIT_NOFILE.
func RaiseFileLimit() (uint64, error) { return 0, nil }
