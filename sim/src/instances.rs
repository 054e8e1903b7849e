//! The read-only actions about instances and regions: DescribeInstances (with its filters and
//! paging) and DescribeRegions, answered from the simulator's state as the cloud answers them.

use serde_json::{json, Map, Value};

use crate::api::offset_limit;
use crate::error::{err, ApiError};
use crate::http::Request;
use crate::ids::{instance_id_ok, REGIONS};
use crate::state::{Instance, State};

pub(crate) fn describe_regions(req: &Request) -> Map<String, Value> {
    let english = req.header("x-tc-language") == Some("en-US");
    let set: Vec<Value> = REGIONS
        .iter()
        .map(|(id, zh, en, mainland)| {
            json!({
                "Region": id,
                "RegionName": if english { en } else { zh },
                "RegionState": "AVAILABLE",
                "IsChinaMainland": mainland,
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("TotalCount".into(), set.len().into());
    m.insert("RegionSet".into(), set.into());
    m
}

fn instance_info(i: &Instance) -> Value {
    json!({
        "InstanceId": i.id,
        "InstanceName": format!("sim-{}", &i.id[6..]),
        "Zone": format!("{}-1", i.region),
        "InstanceState": "RUNNING",
        "PublicAddresses": [format!("203.0.113.{}", 10 + i.index % 240)],
        "PrivateAddresses": [format!("10.0.0.{}", 10 + i.index % 240)],
    })
}

pub(crate) fn describe_instances(
    st: &State,
    region: &str,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let (offset, limit) = offset_limit(body)?;
    let has_filters = body
        .get("Filters")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let ids: Option<Vec<&str>> = match body.get("InstanceIds") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            if has_filters {
                return Err(err(
                    "InvalidParameter.ParameterConflict",
                    "`InstanceIds` and `Filters` cannot be combined.",
                ));
            }
            if a.len() > 100 {
                return Err(err(
                    "InvalidParameterValue.LimitExceeded",
                    "At most 100 `InstanceIds` per call.",
                ));
            }
            let mut ids = Vec::with_capacity(a.len());
            for v in a {
                let id = v
                    .as_str()
                    .ok_or_else(|| err("InvalidParameter", "`InstanceIds` must hold strings."))?;
                if !instance_id_ok(id) {
                    return Err(err(
                        "InvalidParameterValue.InstanceIdMalformed",
                        format!("The instance ID `{id}` is malformed."),
                    ));
                }
                ids.push(id);
            }
            Some(ids)
        }
        Some(_) => return Err(err("InvalidParameter", "`InstanceIds` must be an array.")),
    };
    let filters = parse_filters(body)?;
    let matching: Vec<Value> = st
        .instances
        .iter()
        .filter(|i| i.region == region)
        .filter(|i| ids.as_ref().is_none_or(|ids| ids.contains(&i.id.as_str())))
        .map(instance_info)
        .filter(|info| {
            filters
                .iter()
                .all(|(name, values)| filter_matches(info, name, values))
        })
        .collect();
    let mut m = Map::new();
    m.insert("TotalCount".into(), matching.len().into());
    let page: Vec<Value> = matching.into_iter().skip(offset).take(limit).collect();
    m.insert("InstanceSet".into(), page.into());
    Ok(m)
}

type Filter = (String, Vec<String>);

/// The filters a firewall tool might use to find its own instance (docs/lighthouse-api.md, DescribeInstances).
fn parse_filters(body: &Map<String, Value>) -> Result<Vec<Filter>, ApiError> {
    let Some(list) = body.get("Filters") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| err("InvalidParameter", "`Filters` must be an array."))?;
    if list.len() > 10 {
        return Err(err(
            "InvalidParameter.FilterValueLimitExceeded",
            "At most 10 `Filters`.",
        ));
    }
    let mut out = Vec::new();
    for f in list {
        let name = f.get("Name").and_then(Value::as_str);
        let values = f.get("Values").and_then(Value::as_array);
        let (Some(name), Some(values)) = (name, values) else {
            return Err(err(
                "InvalidParameter.InvalidFilter",
                "Each filter needs `Name` and `Values`.",
            ));
        };
        if !matches!(
            name,
            "instance-name"
                | "public-ip-address"
                | "private-ip-address"
                | "zone"
                | "instance-state"
        ) {
            return Err(err(
                "InvalidParameter.InvalidFilterNotSupportedName",
                format!("Filter name `{name}` is not supported."),
            ));
        }
        if values.len() > 100 {
            return Err(err(
                "InvalidParameter.FilterValueLimitExceeded",
                "At most 100 values per filter.",
            ));
        }
        let values = values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        out.push((name.to_string(), values));
    }
    Ok(out)
}

fn filter_matches(info: &Value, name: &str, values: &[String]) -> bool {
    let field = match name {
        "instance-name" => "InstanceName",
        "public-ip-address" => "PublicAddresses",
        "private-ip-address" => "PrivateAddresses",
        "zone" => "Zone",
        _ => "InstanceState",
    };
    match info.get(field) {
        Some(Value::String(s)) => values.contains(s),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .any(|s| values.iter().any(|v| v == s)),
        _ => false,
    }
}
