fn main() {
    std::process::exit(meshproof::cli::main());
}
