//go:build unix

package relay

import "syscall"

// fileLimit returns the soft RLIMIT_NOFILE, 0 when unknown.
func fileLimit() int {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}

// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit, so a
// relay can hold as many sockets as the system lets it, and returns the
// limit now in force. (Go's runtime does the same at start on Linux; this
// makes it explicit and portable across Unix systems.)
func RaiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}
