//! futex-tui: the live contention dashboard. It draws futex-trace's model: a futex-trace session folds
//! the events off the UI thread, [`app::App`] holds what is shown (keys change it and return an
//! [`app::Action`] for `main` to carry out; the app does no I/O), every panel is a function of the app
//! in a file of its own under [`ui`], and [`export`] writes what the user asks for.

pub mod app;
pub mod export;
pub mod ui;
