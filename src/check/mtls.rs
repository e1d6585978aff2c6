//! `mtls` verdict engine — not yet implemented.
