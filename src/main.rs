//! The `schuilnaam` command: parse the command line, hand over to the library.

fn main() -> std::process::ExitCode {
    schuilnaam::cli::main()
}
