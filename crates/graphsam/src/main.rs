//! The `graphsam` binary: a thin wrapper over the library's command line.

fn main() -> std::process::ExitCode {
    match graphsam::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
