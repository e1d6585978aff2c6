//! `meshproof check http` — argument parsing and wiring to [`crate::check::http`].

/// Arguments of `meshproof check http`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the verdict and its evidence as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> i32 {
    eprintln!("meshproof: error: `check http` is not implemented yet");
    2
}
