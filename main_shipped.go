//go:build !profiling

package main

// serveProfiles does nothing in the shipped build: it links no profiler.
func serveProfiles() error { return nil }
