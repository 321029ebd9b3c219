package main

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// devInsecureFlag is the flag that lets `groupsync dev` listen beyond
// loopback. Dev mode trusts X-CometChat-UID, serves the emulator's fault API
// and prints its credentials: it is for one machine.
const devInsecureFlag = "dev-insecure-listen-anywhere"

// isLoopbackAddr reports whether the host of the listen address addr is
// loopback: "localhost" or an IP of 127.0.0.0/8 or ::1. An empty host
// (":8080") listens on every interface and is not loopback.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return ip != nil && ip.IsLoopback()
}

// checkDevListen refuses, with a one-line usage error, the listen addresses
// of dev (by setting name) that are not loopback, unless anywhere is set;
// then it returns them, sorted, for a loud warning.
func checkDevListen(addrs map[string]string, anywhere bool) (exposed []string, err error) {
	for name, addr := range addrs {
		if addr != "" && !isLoopbackAddr(addr) {
			exposed = append(exposed, fmt.Sprintf("%s=%s", name, addr))
		}
	}
	sort.Strings(exposed)
	if len(exposed) > 0 && !anywhere {
		return nil, usagef("dev listens on loopback only (it trusts X-CometChat-UID and serves a fault-injection API): %s is not a loopback address; use 127.0.0.1, or --%s if you really mean it",
			strings.Join(exposed, ", "), devInsecureFlag)
	}
	return exposed, nil
}

// byteUnits are the suffixes parseByteSize accepts.
var byteUnits = []struct {
	suffix string
	n      int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1},
}

// parseByteSize parses a size such as "1073741824", "1GiB", "512MiB" or
// "64KB"; "-1" means no limit.
func parseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "-1" {
		return -1, nil
	}
	mult := int64(1)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || n > (1<<62)/mult {
		return 0, fmt.Errorf("not a size such as 1GiB, 512MiB or 1048576, or -1 for none")
	}
	return n * mult, nil
}
