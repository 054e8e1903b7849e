//! TENCENT_CLOUD_ACCESS_POINT as the configuration holds it, and the endpoint each call goes
//! to (docs/lighthouse-api.md#endpoints-and-transport).

use super::{CloudConfig, Endpoint, Scheme};

/// What stands for the region in a per-region TENCENT_CLOUD_ACCESS_POINT.
pub const REGION_PLACEHOLDER: &str = "{region}";
/// Unset TENCENT_CLOUD_ACCESS_POINT: each region's own host
/// (docs/lighthouse-api.md#endpoints-and-transport).
pub const REGIONAL_HOSTS: &str = "lighthouse.{region}.tencentcloudapi.com";

/// Where the API calls go (TENCENT_CLOUD_ACCESS_POINT). Tencent counts rate limits per action,
/// access region and sub-account, and the host decides the access region
/// (docs/lighthouse-api.md#rate-limits), so this also decides the budgets knockd paces on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessPoint {
    /// One host for every call: one access region, one budget per action.
    One(Endpoint),
    /// A host per region: `{region}` in `host` becomes the region of the instance called, or
    /// TENCENT_CLOUD_REGION for a call without an instance (DescribeRegions).
    PerRegion { scheme: Scheme, host: String },
}

impl AccessPoint {
    /// Each region's own host, `lighthouse.<region>.tencentcloudapi.com`: the default.
    pub fn regional() -> AccessPoint {
        AccessPoint::PerRegion {
            scheme: Scheme::Https,
            host: REGIONAL_HOSTS.to_string(),
        }
    }

    /// The endpoint of the calls about `region`.
    pub fn endpoint(&self, region: &str) -> Endpoint {
        match self {
            AccessPoint::One(e) => e.clone(),
            AccessPoint::PerRegion { scheme, host } => Endpoint {
                scheme: *scheme,
                host: host.replace(REGION_PLACEHOLDER, region),
            },
        }
    }

    /// As configured: a URL, with `{region}` in the host when per region.
    pub fn url(&self) -> String {
        self.endpoint(REGION_PLACEHOLDER).url()
    }
}

impl CloudConfig {
    /// The endpoint of the calls about `region`; `None`: a call without an instance, sent to
    /// TENCENT_CLOUD_REGION's host.
    pub fn endpoint(&self, region: Option<&str>) -> Endpoint {
        self.access_point.endpoint(region.unwrap_or(&self.region))
    }

    /// Every endpoint the instances' calls go to, in the order of the instances' first use,
    /// with the regions served through each.
    pub fn endpoints(&self) -> Vec<(Endpoint, Vec<&str>)> {
        let mut out: Vec<(Endpoint, Vec<&str>)> = Vec::new();
        for inst in &self.instances {
            let ep = self.endpoint(Some(&inst.region));
            match out.iter_mut().find(|(e, _)| *e == ep) {
                Some((_, regions)) if regions.contains(&inst.region.as_str()) => {}
                Some((_, regions)) => regions.push(&inst.region),
                None => out.push((ep, vec![&inst.region])),
            }
        }
        out
    }
}
