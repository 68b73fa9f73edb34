//! The `podSecurity` params: `level` (required), `version` (`latest` or `v1.N`, default
//! `latest`) and `exclude` (control ids). Read by hand from the params map so that each error
//! names the exact key and lists what is accepted.

use super::{Control, Level, NEWEST_MINOR};
use crate::checks::{Params, ParamsError};

/// Params as the planner needs them.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PssParams {
    pub(super) level: Level,
    /// `v1.<minor>`; `latest` is [`NEWEST_MINOR`].
    pub(super) minor: u32,
    pub(super) exclude: Vec<Control>,
}

pub(super) fn parse(params: &Params) -> Result<PssParams, ParamsError> {
    let level = match params.get("level").and_then(|v| v.as_str()) {
        Some("baseline") => Level::Baseline,
        Some("restricted") => Level::Restricted,
        Some(other) => {
            return Err(ParamsError::new(
                "level",
                format!("unknown level {other:?}; use baseline or restricted"),
            ));
        }
        None if params.get("level").is_some_and(|v| !v.is_null()) => {
            return Err(ParamsError::new("level", "must be a string: baseline or restricted"));
        }
        None => return Err(ParamsError::new("level", "is required: baseline or restricted")),
    };
    let minor = match params.get("version") {
        None | Some(serde_json::Value::Null) => NEWEST_MINOR,
        Some(serde_json::Value::String(v)) => parse_version(v).ok_or_else(|| {
            ParamsError::new("version", format!("{v:?} is not latest or v1.N (e.g. v1.30)"))
        })?,
        Some(_) => return Err(ParamsError::new("version", "must be a string: latest or v1.N (e.g. v1.30)")),
    };
    let exclude = match params.get("exclude") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str().and_then(Control::from_id).ok_or_else(|| {
                    let what = item.as_str().map_or_else(|| "not a string".to_owned(), |s| format!("{s:?}"));
                    ParamsError::new(
                        format!("exclude[{i}]"),
                        format!("unknown control {what}; valid: {}", valid_ids()),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ParamsError::new(
                "exclude",
                format!("must be a list of control ids: {}", valid_ids()),
            ));
        }
    };
    Ok(PssParams { level, minor: minor.min(NEWEST_MINOR), exclude })
}

/// `latest` or `v1.N` with no leading zero, as upstream `api.ParseVersion`; returns the minor.
fn parse_version(v: &str) -> Option<u32> {
    if v == "latest" {
        return Some(NEWEST_MINOR);
    }
    let minor = v.strip_prefix("v1.")?;
    let well_formed = !minor.is_empty()
        && minor.bytes().all(|b| b.is_ascii_digit())
        && (minor == "0" || !minor.starts_with('0'));
    // A version beyond u32 is still "newer than the newest": clamp rather than reject.
    well_formed.then(|| minor.parse::<u32>().unwrap_or(u32::MAX))
}

fn valid_ids() -> String {
    Control::ALL.map(Control::id).join(", ")
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn params(yaml: &str) -> Params {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[rstest]
    #[case::latest("latest", Some(37))]
    #[case::v1_0("v1.0", Some(0))]
    #[case::v1_25("v1.25", Some(25))]
    #[case::future("v1.99", Some(99))]
    #[case::huge("v1.99999999999", Some(u32::MAX))]
    #[case::leading_zero("v1.025", None)]
    #[case::no_v("1.25", None)]
    #[case::major_2("v2.0", None)]
    #[case::patch("v1.25.1", None)]
    #[case::empty_minor("v1.", None)]
    #[case::sign("v1.+5", None)]
    #[case::capital("Latest", None)]
    fn versions(#[case] v: &str, #[case] want: Option<u32>) {
        assert_eq!(parse_version(v), want);
    }

    #[test]
    fn defaults_and_clamping() {
        let p = parse(&params("level: restricted")).unwrap();
        assert_eq!(p, PssParams { level: Level::Restricted, minor: 37, exclude: vec![] });
        assert_eq!(parse(&params("level: baseline\nversion: v1.50")).unwrap().minor, 37);
        let p = parse(&params("level: baseline\nversion: v1.23\nexclude: [sysctls, procMount_restricted]"))
            .unwrap();
        assert_eq!((p.minor, p.exclude), (23, vec![Control::Sysctls, Control::ProcMountRestricted]));
    }

    #[rstest]
    #[case::missing_level("{}", "level")]
    #[case::privileged("level: privileged", "level")]
    #[case::level_not_string("level: 3", "level")]
    #[case::bad_version("level: baseline\nversion: v1.x", "version")]
    #[case::version_number("level: baseline\nversion: 1.25", "version")]
    #[case::exclude_not_list("level: baseline\nexclude: privileged", "exclude")]
    #[case::unknown_id("level: baseline\nexclude: [privileged, seccomp]", "exclude[1]")]
    #[case::id_not_string("level: baseline\nexclude: [7]", "exclude[0]")]
    fn errors_name_the_key(#[case] yaml: &str, #[case] field: &str) {
        assert_eq!(parse(&params(yaml)).unwrap_err().field, field);
    }

    #[test]
    fn unknown_exclude_lists_valid_ids() {
        let e = parse(&params("level: baseline\nexclude: [seccomp]")).unwrap_err();
        assert!(e.reason.contains(r#"unknown control "seccomp""#), "{e}");
        assert!(
            e.reason.contains("seccompProfile_baseline") && e.reason.contains("windowsHostProcess"),
            "{e}"
        );
    }
}
