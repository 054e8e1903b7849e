//! The writes of one plan on one instance, each under the FirewallVersion the one before it
//! left: what the executor does once it has a plan.

use super::client::Client;
use super::error::{self, ApiError};
use super::memory::Written;
use crate::config::Instance;
use crate::rules::planner::Plan;
use crate::rules::FirewallRule;

/// Deletes first (they make room), then one Create for every new rule (one per rule after a
/// FirewallRulesExist, to learn which one the API holds), then refreshes.
/// Each successful Delete or Create moves the version on by one
/// (docs/lighthouse-api.md#firewallversion: "each update +1"). Whether a Modify does is not
/// documented: the writer assumes it does until a Describe proves otherwise for its instance,
/// and a memory is never kept across a Modify whose bump is only assumed.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_plan(
    client: &Client,
    inst: &Instance,
    plan: &Plan,
    w: &mut Written,
    modify_keeps_version: bool,
    one_by_one: bool,
    exists: &mut Vec<FirewallRule>,
    ids: &mut Vec<String>,
) -> Result<(), ApiError> {
    if !plan.delete.is_empty() {
        ids.push(
            client
                .delete_rules(inst, &plan.delete, Some(w.version))?
                .request_id,
        );
        w.version += 1;
        w.deleted = true;
    }
    if !plan.create.is_empty() && !one_by_one {
        ids.push(
            client
                .create_rules(inst, &plan.create, Some(w.version))?
                .request_id,
        );
        w.version += 1;
        w.created = true;
    } else if !plan.create.is_empty() {
        // Which rules went in is not worth remembering for this rare case: forget.
        w.exact = false;
        for rule in &plan.create {
            match client.create_rules(inst, std::slice::from_ref(rule), Some(w.version)) {
                Ok(reply) => {
                    ids.push(reply.request_id);
                    w.version += 1;
                    w.created = true;
                }
                // This one the API already holds; nothing changed, the version stands.
                Err(e) if e.is(error::EXISTS) => exists.push(rule.clone()),
                Err(e) => return Err(e),
            }
        }
    }
    for rule in &plan.refresh {
        let reply = client.modify_description(inst, rule, Some(w.version))?;
        ids.push(reply.request_id);
        w.modify_probe = Some(w.version);
        w.modified += 1;
        if !modify_keeps_version {
            w.version += 1;
            w.exact = false;
        }
    }
    Ok(())
}
