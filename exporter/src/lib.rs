//! Prometheus exporter: go-grpc-prometheus-compatible series plus grpctap's own, served on
//! `/metrics`. Depends on `decoder`'s event types only.
//!
//! Not built yet (see docs/architecture.md).
