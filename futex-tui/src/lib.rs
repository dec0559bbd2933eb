//! futex-tui: the live contention dashboard. It draws futex-trace's model; the events are folded off
//! the UI thread (`main.rs`'s collector), and every panel is a function of [`app::App`] (`ui.rs`).

pub mod app;
pub mod export;
pub mod ui;
