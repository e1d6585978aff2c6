//! `tls` verdict engine — not yet implemented.
