fn main() {
    // A copy of this executable may be the run's reaper (see `meshproof::reaper`).
    if let Some(code) = meshproof::reaper::run_if_reaper() {
        std::process::exit(code);
    }
    meshproof::reaper::enable();
    std::process::exit(meshproof::cli::main());
}
