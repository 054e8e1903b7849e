//! The names both packages' tests give the simulator: fake credentials and the usual
//! instance. Included by `tests/common/mod.rs` and, by path, `sim/tests/common/mod.rs`.

/// Fake credentials the simulator is started with; they exist nowhere else.
pub const SECRET_ID: &str = "AKIDknockdTESTtestTESTtestTEST0001";
pub const SECRET_KEY: &str = "knockdTestSecretKey0001XYZ";

/// The instance most tests simulate, and its region.
pub const REGION: &str = "ap-guangzhou";
pub const INSTANCE: &str = "lhins-kn0ck001";
/// `--instance` value for `INSTANCE` in `REGION`.
pub const INSTANCE_ARG: &str = "ap-guangzhou:lhins-kn0ck001";
