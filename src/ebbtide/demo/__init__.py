"""`ebbtide demo`: a compressed business day on real replicas beside the twin."""
