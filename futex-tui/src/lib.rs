//! futex-tui: the live contention dashboard (see the open issue that builds it). Nothing is here yet.
