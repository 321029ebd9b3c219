package main

import (
	"errors"
	"strings"
	"testing"
)

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3:0": true, "localhost:8080": true, "[::1]:8080": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "192.168.1.5:8080": false,
		"example.org:80": false, "127.0.0.1": false, "": false,
	} {
		if got := isLoopbackAddr(addr); got != want {
			t.Errorf("isLoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestCheckDevListen(t *testing.T) {
	addrs := map[string]string{"http-addr": "0.0.0.0:8080", "emulator-addr": "127.0.0.1:8271"}
	_, err := checkDevListen(addrs, false)
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "http-addr=0.0.0.0:8080") ||
		!strings.Contains(err.Error(), "--"+devInsecureFlag) || strings.Contains(err.Error(), "\n") {
		t.Errorf("checkDevListen(0.0.0.0) = %v, want a one-line usage error naming the address and the flag", err)
	}
	exposed, err := checkDevListen(addrs, true)
	if err != nil || len(exposed) != 1 || exposed[0] != "http-addr=0.0.0.0:8080" {
		t.Errorf("checkDevListen(0.0.0.0, anywhere) = %v, %v", exposed, err)
	}
	if exposed, err := checkDevListen(map[string]string{"http-addr": "127.0.0.1:0"}, false); err != nil || len(exposed) != 0 {
		t.Errorf("checkDevListen(loopback) = %v, %v", exposed, err)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1048576": 1 << 20, "1GiB": 1 << 30, "512MiB": 512 << 20, "64KiB": 64 << 10, "2GB": 2e9, "-1": -1, " 10 MiB ": 10 << 20,
	} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-2", "1.5GiB", "ten", "1PiB", "99999999999TiB"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", in, got)
		}
	}
}
