//! The `graphsam` binary: runs [`graphsam::cli`], the command line.

fn main() -> std::process::ExitCode {
    // burn 0.22 restores an optimizer's saved moments on `Device::default()`,
    // which is the GPU whenever the wgpu backend is compiled in (they move to
    // the parameters' device at the next step). Pin that default to the CPU so
    // a CPU run never opens, or needs, a GPU; `--device` still picks where the
    // model runs.
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: first statement of `main`, before any thread exists.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
    graphsam::memory::retain_freed_memory();
    let status = graphsam::cli::run_from(std::env::args_os());
    std::process::ExitCode::from(u8::try_from(status).unwrap_or(1))
}
