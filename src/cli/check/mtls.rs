//! `meshproof check mtls` — argument parsing and wiring to [`crate::check::mtls`].

/// Arguments of `meshproof check mtls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the verdict and its evidence as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> i32 {
    eprintln!("meshproof: error: `check mtls` is not implemented yet");
    2
}
