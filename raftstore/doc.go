// Package raftstore will hold Chimalli's replicated state: hashicorp/raft
// over a mutual-TLS stream layer, the event-sourced FSM whose events are
// bans, access rules and TOFU pins, snapshots, and the immutable view that
// the gateway reads lock-free (it will implement gateway.BanView and
// tofu.Store). It arrives with the cluster-state issue; until then a node
// keeps its pins in files (tofu.FileStore). See DESIGN.md §2.
package raftstore
