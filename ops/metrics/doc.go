// Package metrics is the node's ops listener: Prometheus metrics on
// GET /metrics, liveness on /healthz and readiness on /readyz, over plain
// HTTP on an address the operator chooses (metrics.listen; none by
// default).
//
// The package knows no other part of Chimalli. It reads what it exports
// through Sources, functions that return plain snapshot structs defined
// here; cmd/node adapts the gateway's, the event plane's and the cluster
// state's own counters to them. The counters are read when Prometheus
// scrapes (a custom prometheus.Collector), so serving requests costs
// nothing more than the counters it already kept.
//
// Ready is the node's one readiness rule: /readyz here and the admin
// socket's /readyz (`chimalli health`) both answer with it.
//
// Label values are bounded enumerations (Gemini statuses, decision and
// refusal reasons, Raft states, publisher names) and the node's id and
// version: never a client address, host name or path.
package metrics
