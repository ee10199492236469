//! Kubernetes label selectors, evaluated as the API server defines them: `matchLabels` and
//! `matchExpressions` all hold (AND); an empty selector selects everything.

use std::collections::BTreeMap;

/// Labels of a pod or a namespace.
pub type Labels = BTreeMap<String, String>;

/// One `matchExpressions` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `In`: the label is present with one of the values.
    In(String, Vec<String>),
    /// `NotIn`: the label is absent or has none of the values.
    NotIn(String, Vec<String>),
    /// `Exists`: the label is present.
    Exists(String),
    /// `DoesNotExist`: the label is absent.
    DoesNotExist(String),
}

/// A validated label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// `matchLabels`.
    pub labels: Labels,
    /// `matchExpressions`.
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that selects everything (`{}`).
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// Whether `labels` satisfy every part of the selector.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.requirements.iter().all(|r| match r {
                Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
                Requirement::NotIn(key, values) => {
                    labels.get(key).is_none_or(|v| !values.contains(v))
                }
                Requirement::Exists(key) => labels.contains_key(key),
                Requirement::DoesNotExist(key) => !labels.contains_key(key),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_empty_selector_selects_everything() {
        assert!(Selector::everything().matches(&Labels::new()));
        assert!(Selector::everything().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn labels_and_expressions_must_all_hold() {
        let selector = Selector {
            labels: labels(&[("app", "web")]),
            requirements: vec![
                Requirement::In("tier".into(), vec!["a".into(), "b".into()]),
                Requirement::NotIn("env".into(), vec!["prod".into()]),
                Requirement::Exists("team".into()),
                Requirement::DoesNotExist("legacy".into()),
            ],
        };
        let ok = labels(&[("app", "web"), ("tier", "b"), ("team", "x")]);
        assert!(selector.matches(&ok));
        let mut no = ok.clone();
        no.insert("env".into(), "prod".into());
        assert!(!selector.matches(&no), "NotIn with the value present");
        let mut no = ok.clone();
        no.insert("legacy".into(), "".into());
        assert!(!selector.matches(&no), "DoesNotExist with the key present");
        let mut no = ok.clone();
        no.remove("tier");
        assert!(!selector.matches(&no), "In with the key absent");
        let mut no = ok;
        no.insert("app".into(), "db".into());
        assert!(!selector.matches(&no), "matchLabels with another value");
    }
}
