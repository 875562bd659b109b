// Package compose holds the end-to-end failure suite of the top-level
// docker-compose.yml cluster (make e2e-cluster), beside the files the
// compose file mounts: chimalli.yaml (the nodes' configuration),
// upstream.yaml, site/ and upstream-site/ (the demo capsules) and
// cluster.sh (make cluster, make cluster-down).
//
// The suite is Go tests that drive docker and docker-compose from the host
// (TestE2ECluster*) and, for what must be measured inside the cluster's
// network, run their own static test binary in a container of the image
// with the nodes' data volumes mounted (TestProbe*: they skip unless the
// host suite starts them). Nothing here is built into the node.
package compose
