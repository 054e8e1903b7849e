//! The seven actions the simulator serves, with their rate limits and accepted fields.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Action {
    DescribeFirewallRules,
    CreateFirewallRules,
    DeleteFirewallRules,
    ModifyFirewallRuleDescription,
    ModifyFirewallRules,
    DescribeRegions,
    DescribeInstances,
}

impl Action {
    pub(crate) fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "DescribeFirewallRules" => Action::DescribeFirewallRules,
            "CreateFirewallRules" => Action::CreateFirewallRules,
            "DeleteFirewallRules" => Action::DeleteFirewallRules,
            "ModifyFirewallRuleDescription" => Action::ModifyFirewallRuleDescription,
            "ModifyFirewallRules" => Action::ModifyFirewallRules,
            "DescribeRegions" => Action::DescribeRegions,
            "DescribeInstances" => Action::DescribeInstances,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Action::DescribeFirewallRules => "DescribeFirewallRules",
            Action::CreateFirewallRules => "CreateFirewallRules",
            Action::DeleteFirewallRules => "DeleteFirewallRules",
            Action::ModifyFirewallRuleDescription => "ModifyFirewallRuleDescription",
            Action::ModifyFirewallRules => "ModifyFirewallRules",
            Action::DescribeRegions => "DescribeRegions",
            Action::DescribeInstances => "DescribeInstances",
        }
    }

    /// The default limits in calls per second, each counted per (action, region, SecretId)
    /// (docs/lighthouse-api.md, quotas and rate limits).
    pub(crate) fn rate_limit(self) -> usize {
        match self {
            Action::ModifyFirewallRules | Action::ModifyFirewallRuleDescription => 20,
            Action::DescribeInstances => 100,
            _ => 10,
        }
    }

    /// The four actions that change a firewall (and can answer `FirewallBusy`).
    pub(crate) fn is_write(self) -> bool {
        matches!(
            self,
            Action::CreateFirewallRules
                | Action::DeleteFirewallRules
                | Action::ModifyFirewallRules
                | Action::ModifyFirewallRuleDescription
        )
    }

    pub(crate) fn fields(self) -> &'static [&'static str] {
        match self {
            Action::DescribeFirewallRules => &["InstanceId", "Offset", "Limit"],
            Action::CreateFirewallRules
            | Action::DeleteFirewallRules
            | Action::ModifyFirewallRules => &["InstanceId", "FirewallRules", "FirewallVersion"],
            Action::ModifyFirewallRuleDescription => {
                &["InstanceId", "FirewallRule", "FirewallVersion"]
            }
            Action::DescribeRegions => &[],
            Action::DescribeInstances => &[
                "InstanceIds",
                "Filters",
                "Offset",
                "Limit",
                "OrderField",
                "Order",
            ],
        }
    }
}
