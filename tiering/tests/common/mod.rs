//! Helpers shared by the integration tests of this crate.

use std::path::PathBuf;

/// The directory of golden files and of the Python scripts the interop tests run.
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The Python interpreter of the venv that scripts/test.sh sets up (kafka-python, pyarrow,
/// DuckDB), or `$TIERLOG_PYTHON`. The interop tests fail, never skip, without it.
pub fn test_python() -> PathBuf {
    if let Some(p) = std::env::var_os("TIERLOG_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/venv/bin/python");
    assert!(
        venv.exists(),
        "the interop tests need the test venv: run `bash scripts/test.sh` (it installs it), or set TIERLOG_PYTHON"
    );
    venv
}
