"""The control loop: per-pool runtime (controller ticks, health, adoption), the fleet that carries out core's plan,
rollouts, the SQLite store, Prometheus metrics and replica system metrics."""
