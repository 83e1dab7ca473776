//! The labels every Docker object Berth creates carries; reconciliation and cleanup find objects by them.

use std::collections::{BTreeMap, HashMap};

/// Present (value `"true"`) on every object Berth creates, so Berth never touches objects it did not make.
pub const LABEL_MANAGED: &str = "berth.managed";
/// The workspace id an object belongs to.
pub const LABEL_WORKSPACE: &str = "berth.workspace";
/// The project id an object belongs to.
pub const LABEL_PROJECT: &str = "berth.project";
/// The deployment id an object belongs to.
pub const LABEL_DEPLOYMENT: &str = "berth.deployment";
/// The environment id an object belongs to.
pub const LABEL_ENVIRONMENT: &str = "berth.environment";
/// The managed database id a container or volume belongs to.
pub const LABEL_DATABASE: &str = "berth.database";
/// A run id (tests, one-off jobs) so everything made in one run can be found and removed together.
pub const LABEL_RUN: &str = "berth.run";

/// Labels as the caller passes them: ordered, so what Berth sends is deterministic.
pub type Labels = BTreeMap<String, String>;

/// `labels` plus `berth.managed=true`; the managed label always wins over a caller's value for that key.
pub fn managed_labels(labels: &Labels) -> Labels {
    let mut all = labels.clone();
    all.insert(LABEL_MANAGED.to_owned(), "true".to_owned());
    all
}

/// The same labels in the map shape bollard's models use.
pub(super) fn to_engine(labels: &Labels) -> HashMap<String, String> {
    managed_labels(labels).into_iter().collect()
}

/// The engine's label map (absent = empty) in Berth's ordered shape.
pub(super) fn from_engine(labels: Option<HashMap<String, String>>) -> Labels {
    labels.unwrap_or_default().into_iter().collect()
}

/// A `label` filter list for list endpoints: `berth.managed=true` plus each `key=value`.
pub(super) fn label_filter(filters: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let mut values = vec![format!("{LABEL_MANAGED}=true")];
    values.extend(filters.iter().map(|(k, v)| format!("{k}={v}")));
    HashMap::from([("label".to_owned(), values)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_label_is_always_true() {
        let mut l = Labels::new();
        l.insert(LABEL_MANAGED.into(), "false".into());
        l.insert(LABEL_PROJECT.into(), "p1".into());
        let all = managed_labels(&l);
        assert_eq!(all.get(LABEL_MANAGED).map(String::as_str), Some("true"));
        assert_eq!(all.get(LABEL_PROJECT).map(String::as_str), Some("p1"));
    }

    #[test]
    fn filter_always_includes_managed() {
        let f = label_filter(&[(LABEL_RUN, "r1")]);
        assert_eq!(f["label"], vec!["berth.managed=true".to_owned(), "berth.run=r1".to_owned()]);
    }
}
