//! The variables a CEL rule sees, built from the request [`Context`] and the [`Subject`]:
//! `object`, `oldObject`, `request`, `params`, `namespaceObject`, `spec`, `metadata`, and under
//! `foreach` `container` and `index`.
//!
//! Only the variables a rule reads are built, once per subject (`container` once per
//! container). JSON becomes CEL values in one pass (a serde visitor, no intermediate
//! `serde_json::Value`), and strings borrow from the JSON text wherever it has no escapes. The
//! typed pod spec and metadata are first rendered as JSON text with serde, so a rule sees exactly
//! the Kubernetes field names and shapes, absent fields absent (so `has()` works).

use std::collections::HashMap;
use std::fmt;

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::patterns::{self, Pattern};
use super::program::{Uses, Var};
use crate::context::Context;
use crate::subject::{ContainerRef, ContainerSource, Subject};

type BoxVal<'v> = Box<dyn Val + 'v>;

/// Reads JSON `text` as a CEL value whose strings borrow from `text` where they can.
pub(super) fn from_json(text: &str) -> Result<BoxVal<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = ValSeed.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// The policy's `params` as a CEL map, converted once at load.
pub(super) fn from_params(params: &crate::checks::Params) -> BoxVal<'static> {
    Box::new(CelMap::from(
        params.iter().map(|(k, v)| (CelMapKey::from(k.clone()), from_value(v))).collect::<HashMap<_, _>>(),
    ))
}

/// Converts an owned JSON value.
fn from_value(v: &serde_json::Value) -> BoxVal<'static> {
    use serde_json::Value as J;
    match v {
        J::Null => Box::new(CelNull),
        J::Bool(b) => Box::new(CelBool::from(*b)),
        J::Number(n) => number(n),
        J::String(s) => Box::new(CelString::from(s.clone())),
        J::Array(a) => Box::new(CelList::from(a.iter().map(from_value).collect::<Vec<_>>())),
        J::Object(o) => Box::new(CelMap::from(
            o.iter().map(|(k, v)| (CelMapKey::from(k.clone()), from_value(v))).collect::<HashMap<_, _>>(),
        )),
    }
}

fn number(n: &serde_json::Number) -> BoxVal<'static> {
    if let Some(i) = n.as_i64() {
        Box::new(CelInt::from(i))
    } else if let Some(u) = n.as_u64() {
        Box::new(CelUInt::from(u))
    } else {
        Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
    }
}

struct ValSeed;

impl<'de> DeserializeSeed<'de> for ValSeed {
    type Value = BoxVal<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = CelMapKey<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = CelMapKey<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(CelMapKey::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(CelMapKey::from(v.to_owned()))
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = BoxVal<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Box::new(CelNull))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Box::new(CelBool::from(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Box::new(CelInt::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        // JSON integers are CEL `int`s, as in Kubernetes; only those beyond int64 become `uint`.
        Ok(match i64::try_from(v) {
            Ok(i) => Box::new(CelInt::from(i)),
            Err(_) => Box::new(CelUInt::from(v)),
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Box::new(CelDouble::from(v)))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Box::new(CelString::from(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Box::new(CelString::from(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Box::new(CelString::from(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(ValSeed)? {
            items.push(v);
        }
        Ok(Box::new(CelList::from(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = HashMap::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(k) = map.next_key_seed(KeySeed)? {
            entries.insert(k, map.next_value_seed(ValSeed)?);
        }
        Ok(Box::new(CelMap::from(entries)))
    }
}

/// A variable that could not be built; becomes an error finding.
#[derive(Debug)]
pub(super) struct BindError {
    /// Which variable.
    pub(super) var: &'static str,
    /// Why.
    pub(super) reason: String,
}

fn bind_err(var: Var) -> impl FnOnce(serde_json::Error) -> BindError {
    move |e| BindError { var: var.name(), reason: e.to_string() }
}

/// The JSON text of the typed parts of a subject that a rule reads; values borrow from it.
#[derive(Debug, Default)]
pub(super) struct Texts {
    spec: Option<String>,
    metadata: Option<String>,
}

impl Texts {
    /// Renders `spec` and `metadata` of `subject`, if `uses` reads them.
    pub(super) fn render(uses: Uses, subject: &Subject<'_>) -> Result<Texts, BindError> {
        fn render<T: Serialize>(v: Var, uses: Uses, value: &T) -> Result<Option<String>, BindError> {
            uses.has(v).then(|| serde_json::to_string(value)).transpose().map_err(bind_err(v))
        }
        Ok(Texts {
            spec: render(Var::Spec, uses, subject.spec)?,
            metadata: render(Var::Metadata, uses, subject.meta)?,
        })
    }
}

/// The JSON text of one container, with `kind` (`container`, `initContainer` or
/// `ephemeralContainer`) added.
pub(super) fn container_text(c: &ContainerRef<'_>) -> Result<String, BindError> {
    #[derive(Serialize)]
    struct WithKind<'a, T> {
        #[serde(flatten)]
        container: &'a T,
        kind: &'static str,
    }
    let kind = c.kind.cel_name();
    match c.source {
        ContainerSource::Regular(container) => serde_json::to_string(&WithKind { container, kind }),
        ContainerSource::Ephemeral(container) => serde_json::to_string(&WithKind { container, kind }),
    }
    .map_err(bind_err(Var::Container))
}

/// The per-subject variables a rule reads, built once and shared by every container.
#[derive(Debug, Default)]
pub(super) struct SubjectVars<'v> {
    object: Option<BoxVal<'v>>,
    old_object: Option<BoxVal<'v>>,
    request: Option<BoxVal<'v>>,
    params: Option<&'v (dyn Val + 'v)>,
    namespace_object: Option<BoxVal<'v>>,
    spec: Option<BoxVal<'v>>,
    metadata: Option<BoxVal<'v>>,
}

impl<'v> SubjectVars<'v> {
    /// Builds what `uses` reads.
    pub(super) fn bind(
        uses: Uses,
        ctx: &Context<'v>,
        texts: &'v Texts,
        params: &'v (dyn Val + 'v),
    ) -> Result<Self, BindError> {
        let json = |v: Var, text: Option<&'v str>| -> Result<Option<BoxVal<'v>>, BindError> {
            if !uses.has(v) {
                return Ok(None);
            }
            match text {
                Some(t) => from_json(t).map(Some).map_err(bind_err(v)),
                None => Ok(Some(Box::new(CelNull))),
            }
        };
        Ok(SubjectVars {
            object: json(Var::Object, ctx.object.map(|r| r.get()))?,
            old_object: json(Var::OldObject, ctx.old_object.map(|r| r.get()))?,
            request: uses.has(Var::Request).then(|| request(ctx)),
            params: uses.has(Var::Params).then_some(params),
            namespace_object: uses.has(Var::NamespaceObject).then(|| namespace_object(ctx)),
            spec: json(Var::Spec, texts.spec.as_deref())?,
            metadata: json(Var::Metadata, texts.metadata.as_deref())?,
        })
    }
}

fn string<'v>(s: &'v str) -> BoxVal<'v> {
    Box::new(CelString::from(s))
}

fn map<'v>(entries: impl IntoIterator<Item = (&'v str, BoxVal<'v>)>) -> BoxVal<'v> {
    Box::new(CelMap::from(
        entries.into_iter().map(|(k, v)| (CelMapKey::from(k), v)).collect::<HashMap<_, _>>(),
    ))
}

fn strings<'v>(items: &'v [String]) -> BoxVal<'v> {
    Box::new(CelList::from(items.iter().map(|s| string(s)).collect::<Vec<_>>()))
}

/// `request`, shaped like the `request` of a ValidatingAdmissionPolicy.
fn request<'v>(ctx: &Context<'v>) -> BoxVal<'v> {
    let user = ctx.user;
    let mut user_info = vec![("username", string(&user.username)), ("groups", strings(&user.groups))];
    if let Some(uid) = &user.uid {
        user_info.push(("uid", string(uid)));
    }
    if let Some(extra) = &user.extra {
        user_info.push(("extra", map(extra.iter().map(|(k, v)| (k.as_str(), strings(v))))));
    }
    // Every kind podguard evaluates is served at v1 of its group.
    let kind = map([
        ("group", string(crate::object::group_of(ctx.kind).unwrap_or(""))),
        ("version", string("v1")),
        ("kind", string(ctx.kind)),
    ]);
    let mut fields = vec![
        ("operation", string(ctx.operation.as_str())),
        ("namespace", string(ctx.namespace)),
        ("name", string(ctx.name)),
        ("userInfo", map(user_info)),
        ("dryRun", Box::new(CelBool::from(ctx.dry_run)) as BoxVal<'v>),
        ("kind", kind),
    ];
    if let Some(sub) = ctx.sub_resource {
        fields.push(("subResource", string(sub)));
    }
    map(fields)
}

/// `namespaceObject`: the namespace's name and labels when they are known, else `null`.
fn namespace_object<'v>(ctx: &Context<'v>) -> BoxVal<'v> {
    match ctx.namespace_labels {
        None => Box::new(CelNull),
        Some(labels) => {
            let labels = map(labels.iter().map(|(k, v)| (k.as_str(), string(v))));
            map([("metadata", map([("name", string(ctx.namespace)), ("labels", labels)]))])
        }
    }
}

/// What a rule sees for one evaluation: the subject's variables, plus the container under
/// `foreach`, plus the rule's compiled patterns. Implements cel's resolver so that nothing is
/// copied into the cel context.
#[derive(Debug)]
pub(super) struct Bindings<'s, 'v> {
    subject: &'s SubjectVars<'v>,
    patterns: &'s [Pattern],
    container: Option<&'s (dyn Val + 'v)>,
    index: Option<CelInt>,
}

impl<'s, 'v> Bindings<'s, 'v> {
    /// Bindings of `subject`, with `container` (when the rule reads it) and its index under
    /// `foreach`.
    pub(super) fn new(
        subject: &'s SubjectVars<'v>,
        patterns: &'s [Pattern],
        container: Option<(Option<&'s (dyn Val + 'v)>, usize)>,
    ) -> Self {
        let index = container.map(|(_, i)| CelInt::from(i64::try_from(i).unwrap_or(i64::MAX)));
        Self { subject, patterns, container: container.and_then(|(c, _)| c), index }
    }
}

impl VariableResolver for Bindings<'_, '_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let s = self.subject;
        let v: &'b (dyn Val + 'b) = match variable {
            "object" => s.object.as_deref()?,
            "oldObject" => s.old_object.as_deref()?,
            "request" => s.request.as_deref()?,
            "params" => s.params?,
            "namespaceObject" => s.namespace_object.as_deref()?,
            "spec" => s.spec.as_deref()?,
            "metadata" => s.metadata.as_deref()?,
            "container" => self.container?,
            "index" => self.index.as_ref()?,
            _ => {
                let i: usize = variable.strip_prefix(patterns::PREFIX)?.parse().ok()?;
                self.patterns.get(i)?
            }
        };
        Some(CowVal::Borrowed(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_without_escapes_borrow_the_text() {
        let text = r#"{"image": "nginx:1.27", "note": "tab\there"}"#;
        let v = from_json(text).unwrap();
        let map = v.downcast_ref::<CelMap>().unwrap();
        let get = |k: &'static str| {
            map.inner().get(&CelMapKey::from(k)).unwrap().downcast_ref::<CelString>().unwrap()
        };
        assert_eq!(get("image").as_borrowed(), Some("nginx:1.27"));
        assert_eq!(get("note").inner(), "tab\there");
    }

    #[test]
    fn numbers_keep_their_kind() {
        let v = from_json("[1, -2, 18446744073709551615, 1.5]").unwrap();
        let types: Vec<&str> =
            super::super::library::elements(&*v).unwrap().iter().map(|v| v.get_type().name()).collect();
        assert_eq!(types, ["int", "int", "uint", "double"]);
    }

    #[test]
    fn params_become_a_map() {
        let params: crate::checks::Params =
            serde_json::from_str(r#"{"a": [1, "x", null, {"b": true}]}"#).unwrap();
        let v = from_params(&params);
        assert_eq!(v.get_type().name(), "map");
        assert_eq!(format!("{:?}", cel::Value::try_from(&*v).unwrap()).matches("String(\"x\")").count(), 1);
    }
}
