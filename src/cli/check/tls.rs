//! `meshproof check tls` — argument parsing and wiring to [`crate::check::tls`].

/// Arguments of `meshproof check tls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the verdict and its evidence as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> i32 {
    eprintln!("meshproof: error: `check tls` is not implemented yet");
    2
}
