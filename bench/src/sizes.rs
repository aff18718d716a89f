//! The arm64 zips that ship, and the `bootstrap` inside each: what is uploaded and what a cold start loads.

use std::path::Path;

use anyhow::Context;

const FUNCTIONS: [&str; 4] = ["shift-weight", "check-alarms", "run-hook", "rollback"];

#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSize {
    pub function: String,
    /// The uncompressed `bootstrap`, in bytes.
    pub bootstrap: u64,
    /// The zip file, in bytes.
    pub zip: u64,
}

/// Each function's sizes, in [`FUNCTIONS`] order, from `<zips>/<function>/bootstrap.zip`.
pub fn measure(zips: &Path) -> anyhow::Result<Vec<FunctionSize>> {
    FUNCTIONS
        .iter()
        .map(|f| {
            let path = zips.join(f).join("bootstrap.zip");
            let zip = std::fs::metadata(&path)
                .with_context(|| format!("{} (run `make lambda-zips`)", path.display()))?
                .len();
            let mut archive = zip::ZipArchive::new(std::fs::File::open(&path)?)?;
            let bootstrap = archive.by_name("bootstrap")?.size();
            Ok(FunctionSize {
                function: (*f).to_owned(),
                bootstrap,
                zip,
            })
        })
        .collect()
}
