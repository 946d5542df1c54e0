//! The classified catalogue: who owns a layer, how often it changes, and how far it may go —
//! shared between departments (Data art. 21–22), opened to the public (Data art. 24), and its
//! security level (Auth art. 14). The access policy ([`crate::access`]) reads nothing else.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The smallest count an aggregate of a level-3 layer shows when its catalogue entry names
/// none: a smaller non-zero count is shown as "< 5".
pub const DEFAULT_MIN_COUNT: u32 = 5;

/// How a layer is shared between government departments (Data art. 21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShareClass {
    /// every department may use it (无条件共享)
    Unconditional,
    /// a department may use it once its request is approved (有条件共享)
    Conditional,
    /// only the owner department uses it (不予共享)
    NotShared,
}

/// How a layer is opened to the public (Data art. 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpenClass {
    /// anyone may see it (无条件开放)
    Unconditional,
    /// open to a requester on conditions (有条件开放)
    Conditional,
    /// never open (不予开放)
    NotOpen,
}

impl ShareClass {
    /// Parses `unconditional`, `conditional` or `not-shared` (also `none`).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "unconditional" => Ok(Self::Unconditional),
            "conditional" => Ok(Self::Conditional),
            "not-shared" | "none" => Ok(Self::NotShared),
            _ => Err(Error::Invalid(format!(
                "share class {s:?}: use unconditional, conditional or not-shared"
            ))),
        }
    }

    /// The name [`ShareClass::parse`] reads.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Unconditional => "unconditional",
            Self::Conditional => "conditional",
            Self::NotShared => "not-shared",
        }
    }
}

impl OpenClass {
    /// Parses `unconditional`, `conditional` or `not-open` (also `none`).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "unconditional" => Ok(Self::Unconditional),
            "conditional" => Ok(Self::Conditional),
            "not-open" | "none" => Ok(Self::NotOpen),
            _ => Err(Error::Invalid(format!(
                "open class {s:?}: use unconditional, conditional or not-open"
            ))),
        }
    }

    /// The name [`OpenClass::parse`] reads.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Unconditional => "unconditional",
            Self::Conditional => "conditional",
            Self::NotOpen => "not-open",
        }
    }
}

/// A layer's entry in the classified catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Classification {
    /// the department that owns the data (a code such as `planning`, as the identity
    /// provider's department claim names it)
    pub owner: String,
    /// how often the data is updated (`realtime`, `daily`, `monthly`, `yearly`, `on change`…)
    #[serde(default)]
    pub update_frequency: String,
    /// sharing between departments
    pub share: ShareClass,
    /// opening to the public
    pub open: OpenClass,
    /// security level, 1 (lowest) to 4
    pub level: u8,
    /// personal fields (a reporter's name or phone number, a licence plate), each with how it
    /// is shown to those without the right to the raw data
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub personal: BTreeMap<String, Mask>,
    /// coordinates are snapped to a grid of this many metres for those without the right to
    /// the raw data
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision_m: Option<u32>,
    /// numeric fields whose sums and means may be served in aggregates of a level-3 layer
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregable: Vec<String>,
    /// k: the smallest non-zero count an aggregate of a level-3 layer shows (default 5)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<u32>,
}

/// How a personal field is shown to those without the right to the raw data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mask {
    /// left out (null)
    Remove,
    /// the first 3 and last 4 digits kept: `138****5678`
    Phone,
    /// the first character kept: `张**`
    Name,
    /// a licence plate's province and letter and its last character kept: `苏A****5`
    Plate,
    /// the first and last characters kept
    Partial,
}

impl Mask {
    /// Parses a mask's name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "remove" => Ok(Self::Remove),
            "phone" => Ok(Self::Phone),
            "name" => Ok(Self::Name),
            "plate" => Ok(Self::Plate),
            "partial" => Ok(Self::Partial),
            _ => Err(Error::Invalid(format!(
                "mask {s:?}: use remove, phone, name, plate or partial"
            ))),
        }
    }

    /// The name [`Mask::parse`] reads.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Remove => "remove",
            Self::Phone => "phone",
            Self::Name => "name",
            Self::Plate => "plate",
            Self::Partial => "partial",
        }
    }

    /// The text as those without the right to it see it; `None` when left out. Every
    /// character hidden becomes one `*`; a text too short to keep anything is all `*`.
    ///
    /// ```
    /// use citytwin_city::catalog::Mask;
    /// assert_eq!(Mask::Phone.apply("13812345678").as_deref(), Some("138****5678"));
    /// assert_eq!(Mask::Name.apply("张三丰").as_deref(), Some("张**"));
    /// assert_eq!(Mask::Plate.apply("苏A12345").as_deref(), Some("苏A****5"));
    /// assert_eq!(Mask::Partial.apply("Li Lei, 13812345678").as_deref(), Some(format!("L{}8", "*".repeat(17)).as_str()));
    /// assert_eq!(Mask::Remove.apply("anything"), None);
    /// ```
    #[must_use]
    pub fn apply(self, text: &str) -> Option<String> {
        let chars: Vec<char> = text.chars().collect();
        let keep = |head: usize, tail: usize| -> String {
            let n = chars.len();
            if n <= head + tail {
                // too short to keep anything and still hide something
                return "*".repeat(n.max(1));
            }
            chars[..head]
                .iter()
                .chain(std::iter::repeat_n(&'*', n - head - tail))
                .chain(&chars[n - tail..])
                .collect()
        };
        match self {
            Self::Remove => None,
            Self::Phone => Some(keep(3, 4)),
            Self::Name => Some(keep(1, 0)),
            Self::Plate => Some(keep(2, 1)),
            Self::Partial => Some(keep(1, 1)),
        }
    }
}

impl Classification {
    /// An entry with no personal fields, precision or aggregates.
    #[must_use]
    pub fn new(owner: &str, share: ShareClass, open: OpenClass, level: u8) -> Self {
        Self {
            owner: owner.to_owned(),
            update_frequency: String::new(),
            share,
            open,
            level,
            personal: BTreeMap::new(),
            precision_m: None,
            aggregable: Vec::new(),
            min_count: None,
        }
    }

    /// k: the smallest non-zero count an aggregate shows.
    #[must_use]
    pub fn k(&self) -> u32 {
        self.min_count.unwrap_or(DEFAULT_MIN_COUNT)
    }

    /// Whether those without the right to the raw data see it changed (personal fields or
    /// precision).
    #[must_use]
    pub fn desensitises(&self) -> bool {
        !self.personal.is_empty() || self.precision_m.is_some()
    }

    /// Checks the entry: a known owner, a level of 1 to 4, and no level-3 data opened to the
    /// public unconditionally (Auth art. 14: such data leaves only desensitised).
    pub fn check(&self) -> Result<()> {
        check_department(&self.owner)?;
        crate::live::check_text("update frequency", &self.update_frequency, 64)?;
        if !(1..=4).contains(&self.level) {
            return Err(Error::Invalid(format!(
                "security level {}: use 1 to 4",
                self.level
            )));
        }
        if self.level >= 3 && self.open == OpenClass::Unconditional {
            return Err(Error::Invalid(format!(
                "a level-{} layer cannot be open unconditionally: data at level 3 and above leaves only desensitised or as aggregates",
                self.level
            )));
        }
        if self.level >= 3 && self.share == ShareClass::Unconditional {
            return Err(Error::Invalid(format!(
                "a level-{} layer cannot be shared unconditionally: its raw records stay with the owner",
                self.level
            )));
        }
        for f in self.personal.keys().chain(&self.aggregable) {
            crate::layer::check_field_name(f)?;
        }
        if let Some(f) = self.personal.keys().find(|f| self.aggregable.contains(f)) {
            return Err(Error::Invalid(format!(
                "field {f:?} is personal and cannot be aggregable"
            )));
        }
        if self
            .precision_m
            .is_some_and(|m| !(1..=100_000).contains(&m))
        {
            return Err(Error::Invalid(
                "precision: use 1 to 100000 metres".to_owned(),
            ));
        }
        if self.min_count.is_some_and(|k| !(2..=1000).contains(&k)) {
            return Err(Error::Invalid("minimum count k: use 2 to 1000".to_owned()));
        }
        Ok(())
    }
}

/// Checks a department code: 1 to 64 letters, digits, `-` or `_` (it is matched against the
/// identity provider's department claim as it stands).
pub fn check_department(code: &str) -> Result<()> {
    let ok = !code.is_empty()
        && code.chars().count() <= 64
        && code
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "department {code:?}: use 1 to 64 letters, digits, - or _"
        )))
    }
}

/// A change to a layer's catalogue entry (`citytwin catalog set`): only what is given changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogUpdate {
    /// human title
    pub title: Option<String>,
    /// what the layer holds
    pub description: Option<String>,
    /// owner department
    pub owner: Option<String>,
    /// how often it is updated
    pub update_frequency: Option<String>,
    /// sharing between departments
    pub share: Option<ShareClass>,
    /// opening to the public
    pub open: Option<OpenClass>,
    /// security level
    pub level: Option<u8>,
    /// where the data came from
    pub source: Option<String>,
    /// when it was acquired (YYYY-MM-DD)
    pub acquired: Option<String>,
    /// the text field holding each feature's territorial code, for territory-scoped readers
    pub territory_field: Option<String>,
    /// personal fields and their masks (replacing the list)
    pub personal: Option<BTreeMap<String, Mask>>,
    /// precision in metres (0 removes it)
    pub precision_m: Option<u32>,
    /// aggregable numeric fields (replacing the list)
    pub aggregable: Option<Vec<String>>,
    /// k for aggregates
    pub min_count: Option<u32>,
}

/// Parses `field=mask,field=mask` (`reporter=name,phone=phone`); a field alone is removed.
pub fn parse_personal(s: &str) -> Result<BTreeMap<String, Mask>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((f, m)) => Ok((f.trim().to_owned(), Mask::parse(m.trim())?)),
            None => Ok((p.to_owned(), Mask::Remove)),
        })
        .collect()
}

impl CatalogUpdate {
    /// Applies the update to a layer's metadata. A layer not yet classified needs owner,
    /// share, open and level all given.
    pub fn apply(&self, meta: &mut crate::LayerMeta) -> Result<()> {
        if let Some(t) = &self.title {
            crate::live::check_text("title", t, 200)?;
            meta.title.clone_from(t);
        }
        if let Some(d) = &self.description {
            crate::live::check_text("description", d, 4000)?;
            meta.description.clone_from(d);
        }
        if let Some(s) = &self.source {
            crate::live::check_text("source", s, 400)?;
            meta.source.clone_from(s);
        }
        if let Some(a) = &self.acquired {
            check_date(a)?;
            meta.acquired = Some(a.clone());
        }
        if let Some(f) = &self.territory_field {
            match meta.field_index(f) {
                Some(i) if meta.fields[i].kind == crate::FieldKind::Text => {}
                _ => {
                    return Err(Error::Invalid(format!(
                        "territory field {f:?} is not a text field of layer {}",
                        meta.name
                    )));
                }
            }
            meta.territory_field = Some(f.clone());
        }
        let touches = self.owner.is_some()
            || self.update_frequency.is_some()
            || self.share.is_some()
            || self.open.is_some()
            || self.level.is_some()
            || self.personal.is_some()
            || self.precision_m.is_some()
            || self.aggregable.is_some()
            || self.min_count.is_some();
        if !touches {
            return Ok(());
        }
        let mut c = match &meta.classification {
            Some(c) => Classification {
                owner: self.owner.clone().unwrap_or_else(|| c.owner.clone()),
                update_frequency: self
                    .update_frequency
                    .clone()
                    .unwrap_or_else(|| c.update_frequency.clone()),
                share: self.share.unwrap_or(c.share),
                open: self.open.unwrap_or(c.open),
                level: self.level.unwrap_or(c.level),
                ..c.clone()
            },
            None => {
                let missing: Vec<&str> = [
                    ("--owner", self.owner.is_none()),
                    ("--share", self.share.is_none()),
                    ("--open", self.open.is_none()),
                    ("--level", self.level.is_none()),
                ]
                .iter()
                .filter(|(_, m)| *m)
                .map(|(n, _)| *n)
                .collect();
                if !missing.is_empty() {
                    return Err(Error::Invalid(format!(
                        "layer {} is not classified yet: give {} as well",
                        meta.name,
                        missing.join(", ")
                    )));
                }
                Classification {
                    update_frequency: self.update_frequency.clone().unwrap_or_default(),
                    ..Classification::new(
                        self.owner.as_deref().unwrap_or_default(),
                        self.share.unwrap_or(ShareClass::NotShared),
                        self.open.unwrap_or(OpenClass::NotOpen),
                        self.level.unwrap_or(4),
                    )
                }
            }
        };
        if let Some(p) = &self.personal {
            c.personal.clone_from(p);
        }
        if let Some(m) = self.precision_m {
            c.precision_m = (m > 0).then_some(m);
        }
        if let Some(a) = &self.aggregable {
            c.aggregable.clone_from(a);
        }
        if let Some(k) = self.min_count {
            c.min_count = Some(k);
        }
        c.check()?;
        check_fields(&c, meta)?;
        meta.classification = Some(c);
        Ok(())
    }
}

/// Checks that the personal and aggregable fields are the layer's (aggregable ones numeric).
pub fn check_fields(c: &Classification, meta: &crate::LayerMeta) -> Result<()> {
    for f in c.personal.keys() {
        if meta.field_index(f).is_none() {
            return Err(Error::Invalid(format!(
                "personal field {f:?} is not a field of layer {}",
                meta.name
            )));
        }
    }
    for f in &c.aggregable {
        match meta.field_index(f).map(|i| meta.fields[i].kind) {
            Some(crate::FieldKind::Integer | crate::FieldKind::Real) => {}
            _ => {
                return Err(Error::Invalid(format!(
                    "aggregable field {f:?} is not a numeric field of layer {}",
                    meta.name
                )));
            }
        }
    }
    Ok(())
}

/// Applies a catalogue change to a layer in a store and returns its metadata as stored. A
/// running server picks the change up with the layer's next refresh.
pub async fn update(
    store: &dyn crate::Store,
    layer: &str,
    change: &CatalogUpdate,
) -> Result<crate::LayerMeta> {
    if crate::live::LiveLayer::parse(layer).is_some() {
        return Err(Error::Invalid(format!(
            "{layer} is a live layer: classify it in the configuration ([catalog.{layer}])"
        )));
    }
    let mut meta = store
        .layers()
        .await?
        .into_iter()
        .find(|m| m.name == layer)
        .ok_or_else(|| Error::UnknownLayer(layer.to_owned()))?;
    change.apply(&mut meta)?;
    store.set_layer_meta(&meta).await
}

/// The line a product built from these layers carries (Data art. 27): the layers drawn (with
/// the form they were drawn in when not as they are) and each source with the dates its data
/// was acquired — or, for a layer with no acquisition date, the day it last changed.
///
/// ```
/// use citytwin_city::{GeometryKind, LayerMeta};
/// use citytwin_city::access::Form;
/// let mut roads = LayerMeta::new("roads", GeometryKind::LineString);
/// roads.source = "© 天地图 Tianditu".into();
/// roads.acquired = Some("2025-01-01".into());
/// let mut calls = LayerMeta::new("hotline", GeometryKind::Point);
/// calls.source = "12345".into();
/// calls.acquired = Some("2026-11-29".into());
/// assert_eq!(
///     citytwin_city::catalog::provenance(&[(&roads, Form::Raw), (&calls, Form::Aggregate)]),
///     "Layers: roads, hotline (aggregates) · Sources: © 天地图 Tianditu (2025-01-01); 12345 (2026-11-29)"
/// );
/// ```
#[must_use]
pub fn provenance(layers: &[(&crate::LayerMeta, crate::access::Form)]) -> String {
    if layers.is_empty() {
        return String::new();
    }
    let names: Vec<String> = layers
        .iter()
        .map(|(m, form)| match form {
            crate::access::Form::Raw => m.name.clone(),
            crate::access::Form::Desensitised => format!("{} (desensitised)", m.name),
            crate::access::Form::Aggregate => format!("{} (aggregates)", m.name),
        })
        .collect();
    let mut sources: Vec<(String, Vec<String>)> = Vec::new();
    for (m, _) in layers {
        let source = if m.source.is_empty() {
            m.classification
                .as_ref()
                .map_or_else(|| m.title.clone(), |c| format!("{} ({})", m.title, c.owner))
        } else {
            m.source.clone()
        };
        let date = m
            .acquired
            .clone()
            .unwrap_or_else(|| m.updated_at.chars().take(10).collect());
        match sources.iter_mut().find(|(s, _)| *s == source) {
            Some((_, dates)) if !dates.contains(&date) => dates.push(date),
            Some(_) => {}
            None => sources.push((source, vec![date])),
        }
    }
    let sources: Vec<String> = sources
        .into_iter()
        .map(|(s, mut d)| {
            d.sort();
            format!("{s} ({})", d.join(", "))
        })
        .collect();
    format!(
        "Layers: {} · Sources: {}",
        names.join(", "),
        sources.join("; ")
    )
}

/// Checks an ISO date `YYYY-MM-DD`.
pub fn check_date(s: &str) -> Result<()> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, fmt)
        .map(|_| ())
        .map_err(|_| Error::Invalid(format!("date {s:?}: use YYYY-MM-DD")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GeometryKind, LayerMeta};

    fn c(share: ShareClass, open: OpenClass, level: u8) -> Classification {
        Classification {
            update_frequency: "monthly".into(),
            ..Classification::new("planning", share, open, level)
        }
    }

    #[test]
    fn levels_and_classes_are_checked() {
        assert!(
            c(ShareClass::Unconditional, OpenClass::Unconditional, 1)
                .check()
                .is_ok()
        );
        assert!(
            c(ShareClass::Conditional, OpenClass::NotOpen, 3)
                .check()
                .is_ok()
        );
        assert!(
            c(ShareClass::Conditional, OpenClass::Unconditional, 3)
                .check()
                .is_err()
        );
        assert!(
            c(ShareClass::Unconditional, OpenClass::NotOpen, 3)
                .check()
                .is_err()
        );
        assert!(
            c(ShareClass::NotShared, OpenClass::NotOpen, 5)
                .check()
                .is_err()
        );
        assert!(
            c(ShareClass::NotShared, OpenClass::NotOpen, 0)
                .check()
                .is_err()
        );
        let mut bad = c(ShareClass::NotShared, OpenClass::NotOpen, 2);
        bad.owner = "bad dept!".into();
        assert!(bad.check().is_err());
    }

    #[test]
    fn a_first_classification_needs_every_class_and_later_ones_change_a_part() {
        let mut meta = LayerMeta::new("roads", GeometryKind::LineString);
        let partial = CatalogUpdate {
            owner: Some("planning".into()),
            ..CatalogUpdate::default()
        };
        let err = partial.apply(&mut meta).unwrap_err().to_string();
        assert!(err.contains("--share") && err.contains("--level"), "{err}");
        assert!(meta.classification.is_none());
        CatalogUpdate {
            owner: Some("planning".into()),
            share: Some(ShareClass::Unconditional),
            open: Some(OpenClass::Unconditional),
            level: Some(1),
            ..CatalogUpdate::default()
        }
        .apply(&mut meta)
        .unwrap();
        CatalogUpdate {
            open: Some(OpenClass::NotOpen),
            ..CatalogUpdate::default()
        }
        .apply(&mut meta)
        .unwrap();
        let got = meta.classification.unwrap();
        assert_eq!(got.open, OpenClass::NotOpen);
        assert_eq!(got.share, ShareClass::Unconditional);
        assert_eq!(got.owner, "planning");
    }

    #[test]
    fn classes_parse_their_names() {
        for s in [
            ShareClass::Unconditional,
            ShareClass::Conditional,
            ShareClass::NotShared,
        ] {
            assert_eq!(ShareClass::parse(s.name()).unwrap(), s);
        }
        for o in [
            OpenClass::Unconditional,
            OpenClass::Conditional,
            OpenClass::NotOpen,
        ] {
            assert_eq!(OpenClass::parse(o.name()).unwrap(), o);
        }
        assert!(ShareClass::parse("maybe").is_err());
        assert!(check_date("2025-02-30").is_err());
        assert!(check_date("2025-02-28").is_ok());
    }
}
