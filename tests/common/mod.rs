//! Shared test fixtures. Each integration test file says `mod common;` and uses what it needs.
#![allow(dead_code)]

pub mod knockd;
pub mod sim;

/// Fake credentials the simulator is started with; they exist nowhere else.
pub const SECRET_ID: &str = "AKIDknockdTESTtestTESTtestTEST0001";
pub const SECRET_KEY: &str = "knockdTestSecretKey0001XYZ";

/// The instance most tests simulate, and its region.
pub const REGION: &str = "ap-guangzhou";
pub const INSTANCE: &str = "lhins-kn0ck001";
/// `--instance` value for `INSTANCE` in `REGION`.
pub const INSTANCE_ARG: &str = "ap-guangzhou:lhins-kn0ck001";
