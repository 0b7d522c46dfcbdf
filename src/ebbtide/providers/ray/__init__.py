"""Replicas as Ray actors on a cluster: the provider, the per-node host actor, and a local cluster for tests."""
