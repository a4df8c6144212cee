//! Terminal UI (ratatui + crossterm) for watching gRPC calls: Methods, Calls, Call detail and
//! Connections views over a model built from the decoder's calls.
//!
//! Threads: the decoding thread owns a [`feed::Feeder`] (a `decoder::Sink` and one of the run's
//! `decoder::output::Output`s, fed by the binary's fan-out) and sends batches of [`feed::UiEvent`]
//! over a bounded channel (a full channel drops the batch and counts it: decoding never waits
//! for the screen). The UI thread ([`run`]) applies them to its [`model::Model`] and draws a
//! frame about ten times a second, and at once after a key. Depends on `decoder`'s types only.

pub mod app;
pub mod detail;
pub mod feed;
pub use decoder::filter;
pub mod fmt;
pub mod frames;
pub mod model;
mod term;
pub mod view;

pub use term::{drain, run};
