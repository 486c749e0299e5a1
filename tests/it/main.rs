//! Integration tests: one binary, one module per concern (cheaper to build on 2 cores).

mod common;
mod smoke;
