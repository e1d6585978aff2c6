//! `canary` verdict engine — not yet implemented.
