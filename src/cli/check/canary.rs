//! `meshproof check canary` — argument parsing and wiring to [`crate::check::canary`].

/// Arguments of `meshproof check canary`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the verdict and its evidence as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> i32 {
    eprintln!("meshproof: error: `check canary` is not implemented yet");
    2
}
