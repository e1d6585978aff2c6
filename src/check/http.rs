//! `http` verdict engine — not yet implemented.
