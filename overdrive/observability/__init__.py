"""What operators see of a running service: latency and throughput per endpoint and per signal stage."""
