// Package load generates WebSocket load and measures it: echo round trips,
// room fan-out, the chat protocol and idle connections. It is the engine of
// cmd/moongate-bench. Latencies go into an HDR histogram; every run reports
// throughput, latency quantiles, errors and lost messages, so that two
// servers measured in the same run can be compared as a ratio.
package load
