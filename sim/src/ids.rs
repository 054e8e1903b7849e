//! Regions and instance IDs: what exists (docs/lighthouse-api.md, endpoints and regions). Shared
//! by the command line (`--instance`) and the request checks.

/// The regions Lighthouse lists: (Region, zh-CN name, en-US name, IsChinaMainland).
pub(crate) const REGIONS: [(&str, &str, &str, bool); 15] = [
    (
        "ap-bangkok",
        "亚太东南(曼谷)",
        "Southeast Asia(Bangkok)",
        false,
    ),
    ("ap-beijing", "华北地区(北京)", "North China(Beijing)", true),
    (
        "ap-chengdu",
        "西南地区(成都)",
        "Southwest China(Chengdu)",
        true,
    ),
    (
        "ap-guangzhou",
        "华南地区(广州)",
        "South China(Guangzhou)",
        true,
    ),
    (
        "ap-hongkong",
        "港澳台地区(中国香港)",
        "Hong Kong, Macau and Taiwan (China)(Hong Kong, China)",
        false,
    ),
    (
        "ap-jakarta",
        "亚太东南(雅加达)",
        "Southeast Asia(Jakarta)",
        false,
    ),
    ("ap-nanjing", "华东地区(南京)", "East China(Nanjing)", true),
    ("ap-seoul", "亚太东北(首尔)", "Northeast Asia(Seoul)", false),
    (
        "ap-shanghai",
        "华东地区(上海)",
        "East China(Shanghai)",
        true,
    ),
    (
        "ap-singapore",
        "亚太东南(新加坡)",
        "Southeast Asia(Singapore)",
        false,
    ),
    ("ap-tokyo", "亚太东北(东京)", "Northeast Asia(Tokyo)", false),
    (
        "eu-frankfurt",
        "欧洲地区(法兰克福)",
        "Europe(Frankfurt)",
        false,
    ),
    (
        "na-ashburn",
        "美国东部(弗吉尼亚)",
        "US East(Virginia)",
        false,
    ),
    (
        "na-siliconvalley",
        "美国西部(硅谷)",
        "US West(Silicon Valley)",
        false,
    ),
    (
        "sa-saopaulo",
        "南美地区(圣保罗)",
        "South America(São Paulo)",
        false,
    ),
];

pub(crate) fn known_region(r: &str) -> bool {
    REGIONS.iter().any(|(id, ..)| *id == r)
}

/// Inferred, not documented: `lhins-` plus 8 lowercase alphanumerics.
pub(crate) fn instance_id_ok(id: &str) -> bool {
    id.strip_prefix("lhins-").is_some_and(|s| {
        s.len() == 8
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}
