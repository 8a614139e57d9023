package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

// clkTck is USER_HZ, the unit of utime/stime in /proc/<pid>/stat. It is 100
// on every Linux architecture Go supports.
const clkTck = 100

// procCPU returns the user+system CPU time the process has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat: %w", err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := bytes.Fields(b[i+1:])
	// After the command: state(0) ppid ... utime is field 14 of the whole
	// line, index 11 here; stime follows.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	s, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad cpu fields in /proc/%d/stat", pid)
	}
	return time.Duration(u+s) * time.Second / clkTck, nil
}

// procMem returns the resident set size and its peak (VmRSS, VmHWM) in KiB.
func procMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read status: %w", err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch string(k) {
		case "VmRSS", "VmHWM":
			f := bytes.Fields(v)
			if len(f) == 0 {
				continue
			}
			n, _ := strconv.ParseInt(string(f[0]), 10, 64)
			if string(k) == "VmRSS" {
				rss = n
			} else {
				hwm = n
			}
		}
	}
	return rss, hwm, nil
}

// selfCPU returns the CPU time this process (the generator) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// raiseNoFile makes sure process pid (0 = this process) may open at least n
// files, raising both limits when allowed (root may raise the hard limit up
// to fs.nr_open). It returns the soft limit in force afterwards.
func raiseNoFile(pid int, n uint64) (uint64, error) {
	var cur syscall.Rlimit
	if err := prlimit(pid, nil, &cur); err != nil {
		return 0, err
	}
	if cur.Cur >= n {
		return cur.Cur, nil
	}
	want := syscall.Rlimit{Cur: n, Max: cur.Max}
	if want.Max < n {
		want.Max = n
	}
	if err := prlimit(pid, &want, nil); err != nil {
		// Not allowed to raise the hard limit: take what it permits.
		want = syscall.Rlimit{Cur: cur.Max, Max: cur.Max}
		if err2 := prlimit(pid, &want, nil); err2 != nil {
			return cur.Cur, fmt.Errorf("raise open-file limit: %w", err)
		}
		return cur.Max, fmt.Errorf("open-file limit capped at %d: %w", cur.Max, err)
	}
	return n, nil
}

func prlimit(pid int, newLim, old *syscall.Rlimit) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_NOFILE),
		uintptr(unsafe.Pointer(newLim)), uintptr(unsafe.Pointer(old)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// machineCPU returns the busy and total jiffies of all CPUs (/proc/stat),
// softirq included: loopback TCP work is done there and charged to no
// process.
func machineCPU() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(string(v), 10, 64)
		if i >= 7 { // guest time is already counted in user
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// cpuWindow measures machine-wide CPU use between start and stop.
type cpuWindow struct{ busy, total int64 }

func startCPUWindow() cpuWindow {
	b, t := machineCPU()
	return cpuWindow{b, t}
}

// busyPct returns the share of all cores that was busy, in percent of one
// core (200 = both cores of a 2-core machine).
func (w cpuWindow) busyPct(cores int) float64 {
	b, t := machineCPU()
	if t <= w.total {
		return 0
	}
	return float64(int64(float64(b-w.busy)/float64(t-w.total)*float64(cores)*1000)) / 10
}

// procSyscalls returns the read and write system calls process pid has made
// (/proc/<pid>/io): deliveries per write shows how well a server batches.
func procSyscalls(pid int) (reads, writes int64, err error) {
	if pid == 0 {
		return 0, 0, fmt.Errorf("no pid")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read io: %w", err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		switch string(k) {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes, nil
}
