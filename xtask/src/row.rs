//! One row of `cargo xtask bench`: a measured figure with its unit and caveats.
//!
//! Its own module because both `bench` (which tables and writes the rows) and the
//! suites it calls (`diskbench`) make rows; kept below both, it lets calls go one way,
//! from `bench` down to the suites.

/// One measured figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub suite: &'static str,
    pub name: String,
    /// Counts are whole numbers; ratios are not.
    pub value: f64,
    pub unit: &'static str,
    /// Caveats, e.g. that two runs disagreed.
    pub note: String,
}
