//! AdmissionReview `admission.k8s.io/v1` in and out, matching the Kubernetes API's JSON exactly.
//!
//! Own types rather than kube's, so that the object stays raw JSON text until
//! [`crate::object::decode`] reads it straight into the typed workload (one pass, no
//! `serde_json::Value`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::context::{Operation, UserInfo};

/// `apiVersion` of reviews.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// `kind` of reviews.
pub const KIND: &str = "AdmissionReview";

/// A request body that is not a usable AdmissionReview (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON, or not the shape of an AdmissionReview.
    #[error("invalid AdmissionReview JSON: {0}")]
    Json(String),
    /// Wrong `apiVersion` or `kind`.
    #[error("expected apiVersion {API_VERSION} and kind {KIND}, got `{api_version}` / `{kind}`")]
    Type {
        /// As sent.
        api_version: String,
        /// As sent.
        kind: String,
    },
    /// No `request`.
    #[error("AdmissionReview has no `request`")]
    NoRequest,
    /// Empty `request.uid`.
    #[error("AdmissionReview request has no `uid`")]
    NoUid,
}

/// Group/version/kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

/// Group/version/resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct GroupVersionResource {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub resource: String,
}

/// `AdmissionReview.request`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub resource: GroupVersionResource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub operation: Operation,
    #[serde(default)]
    pub user_info: UserInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_object: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    request: Option<AdmissionRequest>,
}

/// Reads an AdmissionReview request body.
pub fn parse(body: &[u8]) -> Result<AdmissionRequest, ReviewError> {
    let review: ReviewIn = serde_json::from_slice(body).map_err(|e| explain(body, e))?;
    if review.api_version != API_VERSION || review.kind != KIND {
        return Err(ReviewError::Type { api_version: review.api_version, kind: review.kind });
    }
    let request = review.request.ok_or(ReviewError::NoRequest)?;
    if request.uid.is_empty() {
        return Err(ReviewError::NoUid);
    }
    Ok(request)
}

/// Parses a body that failed again, tracking the path, so that the error names the field. The
/// fast parse skips that (it costs an allocation per key) because almost every body is good.
fn explain(body: &[u8], fast: serde_json::Error) -> ReviewError {
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, ReviewIn>(&mut de) {
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                ReviewError::Json(inner.to_string())
            } else {
                ReviewError::Json(format!("{path}: {inner}"))
            }
        }
        // The tracked parse stops after the value; only what follows it can fail the fast one.
        Ok(_) => ReviewError::Json(fast.to_string()),
    }
}

/// `AdmissionResponse.status` on a refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Status {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

/// `AdmissionReview.response`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: &'a AdmissionResponse,
}

impl AdmissionResponse {
    /// The full AdmissionReview JSON carrying this response.
    pub fn to_review_json(&self) -> Vec<u8> {
        let out = ReviewOut { api_version: API_VERSION, kind: KIND, response: self };
        // Serializing plain strings, bools and maps of strings cannot fail.
        serde_json::to_vec(&out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_what_is_not_a_review() {
        assert!(matches!(parse(b"not json"), Err(ReviewError::Json(_))));
        assert!(matches!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#),
            Err(ReviewError::Type { .. })
        ));
        assert_eq!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#).unwrap_err(),
            ReviewError::NoRequest
        );
        let no_uid = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"","kind":{"kind":"Pod"},"operation":"CREATE"}}"#;
        assert_eq!(parse(no_uid).unwrap_err(), ReviewError::NoUid);
        let bad_op = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"PATCH"}}"#;
        let e = parse(bad_op).unwrap_err().to_string();
        assert!(e.contains("request.operation"), "{e}");
        let bad_uid = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7,"kind":{"kind":"Pod"},"operation":"CREATE"}}"#;
        let e = parse(bad_uid).unwrap_err().to_string();
        assert!(e.contains("request.uid: invalid type: integer `7`"), "{e}");
        let trailing = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"} {}"#;
        let e = parse(trailing).unwrap_err().to_string();
        assert!(e.contains("trailing characters"), "{e}");
    }

    #[test]
    fn response_json_matches_the_api() {
        let r = AdmissionResponse {
            uid: "u1".into(),
            allowed: false,
            status: Some(Status { code: 403, reason: "Forbidden".into(), message: "m".into() }),
            warnings: vec![],
            audit_annotations: BTreeMap::new(),
        };
        let v: serde_json::Value = serde_json::from_slice(&r.to_review_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
                "response":{"uid":"u1","allowed":false,"status":{"code":403,"reason":"Forbidden","message":"m"}}})
        );
    }
}
