"""Kubernetes manifests (Deployment, Service, PDB) and their autoscaler (HPA or KEDA ScaledObject)."""
