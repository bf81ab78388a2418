//! `packager`: see `packager --help` and `packager/README.md`.

fn main() -> std::process::ExitCode {
    packager::cli::main()
}
