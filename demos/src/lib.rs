//! The `gaze` command-line tool: one module per verb under [`cli`]. Everything the verbs do
//! beyond parsing arguments and printing lives in the `gaze` library crate.

pub mod allocator;
pub mod cli;
