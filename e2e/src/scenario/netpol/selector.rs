//! Label selectors as the Kubernetes API defines them (`metav1.LabelSelector`), checked once
//! when a policy is read so a malformed one is an error instead of a silent "matches nothing".

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Labels of a pod or namespace.
pub type Labels = BTreeMap<String, String>;

/// Why a selector cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The operator is none of In, NotIn, Exists, DoesNotExist.
    #[error("label selector requirement on {key:?}: unknown operator {operator:?}")]
    UnknownOperator {
        /// The requirement's key.
        key: String,
        /// Its operator.
        operator: String,
    },
    /// In/NotIn without values, or Exists/DoesNotExist with some (the API rejects both).
    #[error("label selector requirement {key:?} {operator}: {problem}")]
    BadValues {
        /// The requirement's key.
        key: String,
        /// Its operator.
        operator: String,
        /// What is wrong with its values.
        problem: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        match self {
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        }
    }
}

/// A validated label selector: every requirement must hold (matchLabels and matchExpressions
/// are ANDed); no requirement at all selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that selects everything (`{}`).
    pub fn everything() -> Self {
        Selector::default()
    }

    /// Validates an API selector.
    pub fn new(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements: Vec<Requirement> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| Requirement::In(k.clone(), BTreeSet::from([v.clone()])))
            .collect();
        for expr in selector.match_expressions.iter().flatten() {
            let values: BTreeSet<String> = expr.values.iter().flatten().cloned().collect();
            let key = expr.key.clone();
            let bad = |problem| SelectorError::BadValues {
                key: expr.key.clone(),
                operator: expr.operator.clone(),
                problem,
            };
            requirements.push(match expr.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => return Err(bad("needs values")),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(bad("takes no values"));
                }
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => {
                    return Err(SelectorError::UnknownOperator {
                        key,
                        operator: other.to_string(),
                    });
                }
            });
        }
        Ok(Selector { requirements })
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn selector(value: serde_json::Value) -> Result<Selector, SelectorError> {
        Selector::new(&serde_json::from_value(value).unwrap())
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// "An empty label selector matches all objects."
    #[test]
    fn empty_selector_matches_everything() {
        let all = selector(json!({})).unwrap();
        assert!(all.matches(&labels(&[])));
        assert!(all.matches(&labels(&[("pod", "a")])));
    }

    /// "The requirements are ANDed": matchLabels and matchExpressions together.
    #[test]
    fn match_labels_and_expressions_are_anded() {
        let s = selector(json!({
            "matchLabels": {"pod": "a"},
            "matchExpressions": [{"key": "ns", "operator": "In", "values": ["x", "y"]}],
        }))
        .unwrap();
        assert!(s.matches(&labels(&[("pod", "a"), ("ns", "y")])));
        assert!(!s.matches(&labels(&[("pod", "a"), ("ns", "z")])));
        assert!(!s.matches(&labels(&[("pod", "b"), ("ns", "x")])));
        assert!(!s.matches(&labels(&[("ns", "x")])));
    }

    /// Operators In, NotIn, Exists and DoesNotExist; NotIn also matches objects without the key.
    #[test]
    fn operators_follow_the_api() {
        let op = |operator: &str, values: &[&str]| {
            let mut req = json!({"key": "tier", "operator": operator});
            if !values.is_empty() {
                req["values"] = json!(values);
            }
            selector(json!({"matchExpressions": [req]})).unwrap()
        };
        let web = labels(&[("tier", "web")]);
        let db = labels(&[("tier", "db")]);
        let none = labels(&[("other", "x")]);
        let not_in = op("NotIn", &["web"]);
        assert!(!not_in.matches(&web) && not_in.matches(&db) && not_in.matches(&none));
        let is_in = op("In", &["web", "cache"]);
        assert!(is_in.matches(&web) && !is_in.matches(&db) && !is_in.matches(&none));
        let exists = op("Exists", &[]);
        assert!(exists.matches(&web) && exists.matches(&db) && !exists.matches(&none));
        let absent = op("DoesNotExist", &[]);
        assert!(!absent.matches(&web) && absent.matches(&none));
    }

    /// The API rejects In/NotIn without values, Exists/DoesNotExist with values, and unknown
    /// operators; the model refuses them too instead of guessing.
    #[test]
    fn malformed_requirements_are_errors() {
        for bad in [
            json!({"key": "k", "operator": "In"}),
            json!({"key": "k", "operator": "NotIn", "values": []}),
            json!({"key": "k", "operator": "Exists", "values": ["v"]}),
            json!({"key": "k", "operator": "Gt", "values": ["1"]}),
        ] {
            assert!(
                selector(json!({"matchExpressions": [bad.clone()]})).is_err(),
                "{bad}"
            );
        }
    }
}
