//! Progress bars shared by the commands (hidden with `--quiet` or when not on a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A download progress bar on stderr, drawn from the resolver's reports
/// (bytes, with the total when the server gives one).
pub fn download_bar() -> crate::data::DownloadProgress {
    let bar: std::sync::Mutex<Option<ProgressBar>> = std::sync::Mutex::new(None);
    crate::data::DownloadProgress(std::sync::Arc::new(
        move |file: &str, received: u64, total: Option<u64>| {
            let mut bar = bar.lock().unwrap_or_else(|e| e.into_inner());
            let b = bar.get_or_insert_with(|| {
                let b = match total {
                    Some(n) => ProgressBar::new(n),
                    None => ProgressBar::new_spinner(),
                };
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
                ) {
                    b.set_style(style.progress_chars("=> "));
                }
                b.set_message(format!("downloading {file}"));
                b
            });
            b.set_position(received);
            if total == Some(received) {
                b.finish_and_clear();
            }
        },
    ))
}

/// Renders training progress: a bar per epoch (steps, loss, molecules/s) and
/// one summary line per epoch; with `quiet`, only the summary lines.
pub struct EpochProgress {
    quiet: bool,
    bar: Option<ProgressBar>,
    loss_sum: f64,
    steps: u64,
    molecules: u64,
    started: std::time::Instant,
    warnings: u64,
}

impl EpochProgress {
    /// A renderer; `quiet` hides the bars.
    pub fn new(quiet: bool) -> Self {
        EpochProgress {
            quiet,
            bar: None,
            loss_sum: 0.0,
            steps: 0,
            molecules: 0,
            started: std::time::Instant::now(),
            warnings: 0,
        }
    }
}

impl crate::train::TrainObserver for EpochProgress {
    fn epoch_started(&mut self, epoch: usize, steps: usize, _molecules: usize) {
        self.loss_sum = 0.0;
        self.steps = 0;
        self.molecules = 0;
        self.started = std::time::Instant::now();
        if !self.quiet {
            let bar = ProgressBar::new(steps as u64);
            if let Ok(style) =
                ProgressStyle::with_template("epoch {prefix:>3} [{bar:30}] {pos}/{len} steps {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(epoch.to_string());
            self.bar = Some(bar);
        }
    }

    fn step_finished(&mut self, report: &graphsam_optim::StepReport, molecules: usize) {
        self.loss_sum += report.loss as f64;
        self.steps += 1;
        self.molecules += molecules as u64;
        if let Some(bar) = &self.bar {
            let rate = self.molecules as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.4}, {rate:.0} molecules/s",
                self.loss_sum / self.steps as f64
            ));
            bar.inc(1);
        }
    }

    fn epoch_finished(
        &mut self,
        r: &crate::train::record::EpochRecord,
        metric: crate::data::Metric,
    ) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let valid = r
            .valid_metric
            .map_or("n/a".to_string(), |v| format!("{v:.4}"));
        // Say where each loss was taken: L(w), L(w+ε), or both.
        let loss = match (r.clean_loss, r.perturbed_loss) {
            (Some(c), None) => format!("loss {c:.4}"),
            (None, Some(p)) => format!("loss(w+ε) {p:.4}"),
            (Some(c), Some(p)) => format!("loss {c:.4} (w+ε {p:.4})"),
            (None, None) => "loss n/a".to_string(),
        };
        eprintln!(
            "epoch {:>3}  {loss}  valid {} {}{}  lr {:.2e}  rho {:.4}  {:.1} s  {} passes",
            r.epoch,
            metric.name(),
            valid,
            if r.is_best { " *" } else { "  " },
            r.learning_rate,
            r.rho,
            r.train_seconds + r.valid_seconds,
            r.forward_passes
        );
    }

    fn warning(&mut self, message: &str) {
        self.warnings += 1;
        // Repeated warnings (e.g. a skipped perturbation every step) would
        // drown the log: show the first few, then every hundredth.
        if self.warnings <= 5 || self.warnings.is_multiple_of(100) {
            eprintln!("warning ({} so far): {message}", self.warnings);
        }
    }

    fn resumed(&mut self, epochs_done: usize) {
        eprintln!("resuming from the checkpoint after {epochs_done} epochs");
    }
}
