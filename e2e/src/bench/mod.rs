//! Benchmarks that print `key=value` figures: the controller at scale and pod network-ready latency.
