//! `request_stop` (the Python package's Ctrl-C) stops a training after the
//! current epoch's checkpoint, and running it again resumes to the end. The
//! request is process-wide, so this binary holds this one test only.

use graphsam::data::TaskType;
use graphsam::model::ModelSpec;
use graphsam::model::dmpnn::DmpnnConfig;
use graphsam::train::record::read_epoch_history;
use graphsam::train::{Interrupted, SilentObserver, clear_stop_request, request_stop, run_seed};

mod common;

#[test]
fn a_stop_request_ends_training_after_a_checkpoint_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (dataset, path) = common::fixture(
        dir.path(),
        TaskType::Regression,
        graphsam::features::FeatureSet::Chemprop,
    );
    let model = ModelSpec::Dmpnn(DmpnnConfig::tiny(1).with_atom_dim(133).with_bond_dim(14));
    let config = common::run_config(model, "graphsam", TaskType::Regression, &path);
    let run = dir.path().join("run");
    let device = common::autodiff_device();

    request_stop();
    let err = run_seed(&dataset, &config, &device, &run, &mut SilentObserver).unwrap_err();
    let interrupted = err
        .downcast_ref::<Interrupted>()
        .expect("an Interrupted error");
    assert_eq!(interrupted.epochs_done, 1);
    assert_eq!(read_epoch_history(&run).unwrap().len(), 1);
    assert!(!run.join("summary.json").exists());

    clear_stop_request();
    let summary = run_seed(&dataset, &config, &device, &run, &mut SilentObserver).unwrap();
    assert_eq!(read_epoch_history(&run).unwrap().len(), 3);
    assert!(summary.test.value.is_finite());
}
