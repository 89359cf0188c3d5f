// Package profiling lets a bench-only plugin build serve Go's profiles.
//
// Vault passes the plugin process the environment it was registered with
// (vault plugin register -env=BENCH_PPROF_SOCKET=/path/to/socket), so a
// build that calls Serve answers /debug/pprof/ on that Unix socket while the
// benchmark drives load through Vault. A Unix socket, not a TCP port: the
// load runs use thousands of ephemeral loopback ports, and one of them could
// take a port picked earlier. Without the variable Serve does nothing.
package profiling

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
)

// Env names the variable that holds the socket path.
const Env = "BENCH_PPROF_SOCKET"

// Serve starts the profile server in the background if Env is set. The
// newest process wins the socket: Vault may start a plugin briefly (to ask
// its version) before the process that serves the mount.
func Serve() error {
	path := os.Getenv(Env)
	if path == "" {
		return nil
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", Env, path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
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
