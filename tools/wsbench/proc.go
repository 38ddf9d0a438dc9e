package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat. The
// kernel exports 100 to user space on every mainstream Linux architecture.
const clockTicks = 100

// procSample is one reading of a process.
type procSample struct {
	CPU time.Duration // utime + stime, all threads
	RSS uint64        // bytes (VmRSS)
}

// parseStat extracts utime+stime (in ticks) from the contents of
// /proc/PID/stat. The command name (field 2) may contain spaces and
// parentheses, so fields are counted from the last ')'.
func parseStat(s string) (ticks uint64, err error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no ')' in %q", trimForErr(s))
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: only %d fields after the command name", len(f))
	}
	u, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: utime: %v", err)
	}
	st, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: stime: %v", err)
	}
	return u + st, nil
}

// parseStatusRSS extracts VmRSS (in bytes) from the contents of
// /proc/PID/status.
func parseStatusRSS(s string) (uint64, error) {
	for line := range strings.SplitSeq(s, "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status: odd VmRSS line %q", line)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status: VmRSS: %v", err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("status: no VmRSS line (kernel thread or zombie?)")
}

func trimForErr(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// readProc reads one process's CPU and RSS from /proc.
func readProc(pid int) (procSample, error) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	ticks, err := parseStat(string(st))
	if err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	rss, err := parseStatusRSS(string(status))
	if err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return procSample{CPU: time.Duration(ticks) * (time.Second / clockTicks), RSS: rss}, nil
}

// readProcs sums readProc over pids. With no pids it returns a zero sample.
func readProcs(pids []int) (procSample, error) {
	var sum procSample
	for _, pid := range pids {
		s, err := readProc(pid)
		if err != nil {
			return procSample{}, err
		}
		sum.CPU += s.CPU
		sum.RSS += s.RSS
	}
	return sum, nil
}

// parsePIDs parses the -pid list ("123,456").
func parsePIDs(spec string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-pid: bad process id %q", part)
		}
		out = append(out, n)
	}
	return out, nil
}
