//go:build profiling

package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
)

// A build with -tags profiling (make bench's, never shipped) answers Go's
// profiles on the Unix socket named by $ARITMA_PPROF_SOCKET, which Vault
// passes to the plugin's process when it is registered with
// -env=ARITMA_PPROF_SOCKET=<path>. A Unix socket rather than a TCP port: load
// runs use thousands of ephemeral loopback ports, and one could take a port
// picked earlier. Without the variable nothing is served.
const profileSocketEnv = "ARITMA_PPROF_SOCKET"

// serveProfiles starts the profile server in the background. The newest
// process wins the socket: Vault may start a plugin briefly (to ask its
// version) before the process that serves the mount.
func serveProfiles() error {
	path := os.Getenv(profileSocketEnv)
	if path == "" {
		return nil
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", profileSocketEnv, path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	// /debug/gc runs a full collection, hands freed memory back to the OS
	// (so that RSS shows what is live) and answers with the heap's size.
	mux.HandleFunc("/debug/gc", func(w http.ResponseWriter, _ *http.Request) {
		debug.FreeOSMemory()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		fmt.Fprintf(w, "{\"heap_inuse\":%d,\"heap_alloc\":%d,\"sys\":%d,\"pid\":%d}\n", m.HeapInuse, m.HeapAlloc, m.Sys, os.Getpid())
	})
	go func() { _ = http.Serve(l, mux) }()
	return nil
}
