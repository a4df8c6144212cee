//! Terminal UI (ratatui + crossterm): renders snapshots of per-method aggregates and calls built
//! from the decoder's events. Depends on `decoder`'s event types only.
//!
//! Not built yet (see docs/architecture.md).
