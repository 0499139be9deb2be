package main

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// parseBytes parses a size in GOMEMLIMIT's syntax: a number of bytes with
// an optional unit, B, KiB, MiB, GiB or TiB.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		scale  int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	num, scale := s, int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, scale = n, u.scale
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/scale {
		return 0, fmt.Errorf("%q is not a size: want bytes, or a number with B, KiB, MiB, GiB or TiB, e.g. 768MiB", s)
	}
	return n * scale, nil
}

// machineMemory returns the memory provd may use: the machine's, or its
// cgroup's limit if that is lower; 0 where neither can be read.
func machineMemory(readFile func(string) ([]byte, error)) int64 {
	var total int64
	if b, err := readFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					total = kb << 10
				}
			}
		}
	}
	if b, err := readFile("/sys/fs/cgroup/memory.max"); err == nil {
		if limit, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && limit > 0 && (total == 0 || limit < total) {
			total = limit
		}
	}
	return total
}

// defaultMemoryLimit is --memory-limit's default: half the memory provd
// may use, leaving the rest to the page cache that serves its database
// file, unless GOMEMLIMIT is set (0 leaves the runtime's).
func defaultMemoryLimit(getenv func(string) string, readFile func(string) ([]byte, error)) int64 {
	if getenv("GOMEMLIMIT") != "" {
		return 0
	}
	return machineMemory(readFile) / 2
}
