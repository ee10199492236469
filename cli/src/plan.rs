//! The controller's own dry run, as `diagnose` reads it from the leader's `/debug/plan`: the
//! rows it would insert, update or delete if it ran a round now, and the names it cannot take
//! because a row it did not write holds them. The plugin does not re-render anything (it does
//! not depend on the controller); it asks the controller and turns the answer into findings.
//!
//! The answer's form (the controller's `Rounds::dry_run`): a first line `N steps, M conflicts`,
//! then one line per step `Action<TAB>row<TAB>owner`, then `Conflict<TAB>text` lines. Pure.

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnose::{Check, Finding};

/// One step the controller would take.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Step {
    /// `Insert`, `Update`, `Delete`, …
    pub action: String,
    /// The row (`Logical_Switch_Port web.kr`).
    pub row: String,
    /// The object it is for (`Pod/kr/web`).
    pub owner: String,
}

/// A parsed `/debug/plan` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// What the controller would write.
    pub steps: BTreeSet<Step>,
    /// Names held by rows the controller did not write, as it words them.
    pub conflicts: BTreeSet<String>,
}

/// Reads a `/debug/plan` answer; `Err` names what does not have the expected form.
pub fn parse(text: &str) -> Result<Plan, String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let counts = header
        .strip_suffix(" conflicts")
        .and_then(|h| h.split_once(" steps, "))
        .and_then(|(s, c)| Some((s.parse::<usize>().ok()?, c.parse::<usize>().ok()?)));
    let Some((steps, conflicts)) = counts else {
        return Err(format!(
            "first line {header:?} is not \"N steps, M conflicts\""
        ));
    };
    let mut plan = Plan::default();
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.splitn(3, '\t').collect();
        match fields.as_slice() {
            ["Conflict", text] => {
                plan.conflicts.insert((*text).to_string());
            }
            [action, row, owner] => {
                plan.steps.insert(Step {
                    action: (*action).to_string(),
                    row: (*row).to_string(),
                    owner: (*owner).to_string(),
                });
            }
            _ => return Err(format!("line {line:?} is neither a step nor a conflict")),
        }
    }
    if plan.steps.len() > steps || plan.conflicts.len() != conflicts {
        return Err(format!(
            "the header promises {steps} steps and {conflicts} conflicts, the lines hold {} and {}",
            plan.steps.len(),
            plan.conflicts.len()
        ));
    }
    Ok(plan)
}

/// What stayed in two plans read a moment apart: a step the controller was merely about to
/// take (a change it had not seen yet) is gone from the second one, so only what it keeps
/// failing to do is reported.
pub fn lasting(first: &Plan, second: &Plan) -> Plan {
    Plan {
        steps: first.steps.intersection(&second.steps).cloned().collect(),
        conflicts: first
            .conflicts
            .intersection(&second.conflicts)
            .cloned()
            .collect(),
    }
}

/// Most rows listed for one owner; the rest are counted.
const ROWS_SHOWN: usize = 4;

/// One finding per owner with lasting steps, one per conflict.
pub fn findings(plan: &Plan, leader: &str) -> Vec<Finding> {
    let mut by_owner: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
    for step in &plan.steps {
        by_owner.entry(step.owner.as_str()).or_default().push(step);
    }
    let mut found: Vec<Finding> = by_owner
        .into_iter()
        .map(|(owner, steps)| {
            let mut rows: Vec<String> = steps
                .iter()
                .take(ROWS_SHOWN)
                .map(|s| format!("{} {}", s.action.to_lowercase(), s.row))
                .collect();
            if steps.len() > ROWS_SHOWN {
                rows.push(format!("and {} more", steps.len() - ROWS_SHOWN));
            }
            Finding {
                check: Check::Drift,
                object: owner.to_string(),
                problem: format!(
                    "NB differs from what the controller renders for it and stays so: {}",
                    rows.join("; ")
                ),
                fix: format!(
                    "the controller should write this on its next round; as it does not, read why in its log (kubectl -n kube-system logs {leader}) and see the rows with `kubectl rovn rows {owner}`"
                ),
            }
        })
        .collect();
    found.extend(plan.conflicts.iter().map(|text| Finding {
        check: Check::Conflict,
        object: conflict_owner(text).unwrap_or("NB").to_string(),
        problem: text.clone(),
        fix: "rename or remove the row rovn did not write (kubectl rovn nbctl …); rovn never overwrites it".into(),
    }));
    found
}

/// The object a conflict is for: its text ends `… for <owner>`.
fn conflict_owner(text: &str) -> Option<&str> {
    text.rsplit_once(" for ").map(|(_, owner)| owner.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "3 steps, 1 conflicts\n\
        Insert\tLogical_Switch_Port web.kr\tPod/kr/web\n\
        Update\tAddress_Set kr.web\tNetworkPolicy/kr/web\n\
        Delete\tACL kr/web:ingress.0\tNetworkPolicy/kr/web\n\
        Conflict\tLogical_Switch_Port db.kr (1b2c) exists without external_ids:rovn.io/vendor=rovn; not overwriting it for Pod/kr/db\n";

    fn plan(text: &str) -> Plan {
        parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_answer_parses_into_steps_and_conflicts() {
        let p = plan(ANSWER);
        assert_eq!(p.steps.len(), 3);
        assert_eq!(p.conflicts.len(), 1);
        assert_eq!(plan("0 steps, 0 conflicts\n"), Plan::default());
    }

    #[test]
    fn garbled_answers_are_refused() {
        assert!(parse("").is_err());
        assert!(parse("not leading\n").is_err());
        assert!(parse("1 steps, 0 conflicts\nInsert only-two-fields\n").is_err());
        assert!(parse("0 steps, 1 conflicts\n").is_err());
    }

    #[test]
    fn only_steps_in_both_plans_last() {
        let first = plan(ANSWER);
        let second = plan("1 steps, 0 conflicts\nInsert\tLogical_Switch_Port web.kr\tPod/kr/web\n");
        let kept = lasting(&first, &second);
        assert_eq!(kept.steps.len(), 1);
        assert!(kept.conflicts.is_empty());
    }

    #[test]
    fn findings_group_steps_by_owner_and_name_conflicts_owner() {
        let found = findings(&plan(ANSWER), "rovn-controller-x");
        assert_eq!(found.len(), 3);
        let policy = found
            .iter()
            .find(|f| f.object == "NetworkPolicy/kr/web")
            .unwrap_or_else(|| panic!("{found:?}"));
        assert_eq!(policy.check, Check::Drift);
        assert!(
            policy.problem.contains("update Address_Set kr.web"),
            "{}",
            policy.problem
        );
        assert!(
            policy.fix.contains("rows NetworkPolicy/kr/web"),
            "{}",
            policy.fix
        );
        assert!(
            policy.fix.contains("logs rovn-controller-x"),
            "{}",
            policy.fix
        );
        let conflict = found
            .iter()
            .find(|f| f.check == Check::Conflict)
            .unwrap_or_else(|| panic!("{found:?}"));
        assert_eq!(conflict.object, "Pod/kr/db");
    }
}
