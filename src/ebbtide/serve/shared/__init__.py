"""Several gateways, one leader: the ``state: {backend: redis}`` backend (see coordinator.py and
docs/operations.md, "Several gateways")."""
