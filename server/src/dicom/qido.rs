//! QIDO-RS (PS3.18 10.6), pure: which query keys a search names and how they match, and the
//! attributes returned at each level. Every attribute can be matched: the indexed ones on
//! their columns, any other (by keyword, tag, or `Sequence.Attribute` path) on the instance's
//! stored DICOM JSON model. A key that is not a DICOM attribute is refused (400); a key that
//! cannot be matched (a sequence as a whole, bulk data) and `fuzzymatching=true` are answered
//! with a `Warning: 299` header, as PS3.18 asks, instead of being ignored silently.

use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_dictionary_std::StandardDataDictionary;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Instance {
    pub file_id: String,
    pub storage_key: String,
    pub size: i64,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub transfer_syntax: String,
    pub modality: String,
    pub body_part: String,
    pub study_date: String,
    pub study_time: String,
    pub study_description: String,
    pub series_description: String,
    pub series_number: Option<i64>,
    pub instance_number: Option<i64>,
    pub accession_number: String,
    pub study_id: String,
    pub patient_name: String,
    pub patient_id: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub rows_count: i64,
    pub columns_count: i64,
    pub frames: i64,
}

/// The level a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Study,
    Series,
    Instance,
}

// ---- DICOM JSON attributes ----------------------------------------------------------------

pub fn put(map: &mut Map<String, Value>, tag: &str, vr: &str, value: &str) {
    let v = if value.is_empty() { json!({"vr": vr}) } else { json!({"vr": vr, "Value": [value]}) };
    map.insert(tag.to_string(), v);
}

pub fn put_list(map: &mut Map<String, Value>, tag: &str, vr: &str, values: Vec<String>) {
    map.insert(tag.to_string(), json!({"vr": vr, "Value": values}));
}

pub fn put_int(map: &mut Map<String, Value>, tag: &str, vr: &str, value: Option<i64>) {
    let v = match value {
        Some(n) => json!({"vr": vr, "Value": [n]}),
        None => json!({"vr": vr}),
    };
    map.insert(tag.to_string(), v);
}

/// A Person Name in the JSON model: `=`-separated groups become Alphabetic, Ideographic, Phonetic.
pub fn put_pn(map: &mut Map<String, Value>, tag: &str, value: &str) {
    if value.is_empty() {
        map.insert(tag.to_string(), json!({"vr": "PN"}));
        return;
    }
    let mut name = Map::new();
    for (group, key) in value.split('=').zip(["Alphabetic", "Ideographic", "Phonetic"]) {
        if !group.is_empty() {
            name.insert(key.into(), Value::String(group.to_string()));
        }
    }
    map.insert(tag.to_string(), json!({"vr": "PN", "Value": [name]}));
}

/// Copies `tag` from the stored model (when present and not bulk data), else an empty
/// element of `vr` when `required`.
fn copy(map: &mut Map<String, Value>, meta: Option<&Value>, tag: &str, vr: &str, required: bool) {
    match meta.and_then(|m| m.get(tag)).filter(|e| e.get("BulkDataURI").is_none()) {
        Some(e) => {
            map.insert(tag.to_string(), e.clone());
        }
        None if required => {
            map.insert(tag.to_string(), json!({"vr": vr}));
        }
        None => {}
    }
}

/// Study attributes (PS3.18 table 10.6.3-3) of a study: `study` is all its instances in the
/// consultation (for the counts), `meta` the stored model of one of them.
pub fn study_attributes(study: &[&Instance], base: &str, meta: Option<&Value>) -> Map<String, Value> {
    let first = study[0];
    let mut m = Map::new();
    copy(&mut m, meta, "00080005", "CS", false);
    put(&mut m, "00080020", "DA", &first.study_date);
    put(&mut m, "00080030", "TM", &first.study_time);
    put(&mut m, "00080050", "SH", &first.accession_number);
    put(&mut m, "00080056", "CS", "ONLINE");
    let mut modalities: Vec<String> = study.iter().map(|i| i.modality.clone()).filter(|m| !m.is_empty()).collect();
    modalities.sort();
    modalities.dedup();
    put_list(&mut m, "00080061", "CS", modalities);
    copy(&mut m, meta, "00080090", "PN", true);
    copy(&mut m, meta, "00080201", "SH", false);
    put(&mut m, "00081030", "LO", &first.study_description);
    put(&mut m, "00081190", "UR", &format!("{base}/studies/{}", first.study_uid));
    put_pn(&mut m, "00100010", &first.patient_name);
    put(&mut m, "00100020", "LO", &first.patient_id);
    put(&mut m, "00100030", "DA", &first.patient_birth_date);
    put(&mut m, "00100040", "CS", &first.patient_sex);
    put(&mut m, "0020000D", "UI", &first.study_uid);
    put(&mut m, "00200010", "SH", &first.study_id);
    let mut series: Vec<&str> = study.iter().map(|i| i.series_uid.as_str()).collect();
    series.sort();
    series.dedup();
    put_int(&mut m, "00201206", "IS", Some(series.len() as i64));
    put_int(&mut m, "00201208", "IS", Some(study.len() as i64));
    m
}

/// Series attributes (PS3.18 table 10.6.3-4).
pub fn series_attributes(series: &[&Instance], base: &str, meta: Option<&Value>) -> Map<String, Value> {
    let first = series[0];
    let mut m = Map::new();
    put(&mut m, "00080060", "CS", &first.modality);
    put(&mut m, "0008103E", "LO", &first.series_description);
    put(&mut m, "00081190", "UR", &format!("{base}/studies/{}/series/{}", first.study_uid, first.series_uid));
    put(&mut m, "00180015", "CS", &first.body_part);
    put(&mut m, "0020000E", "UI", &first.series_uid);
    put_int(&mut m, "00200011", "IS", first.series_number);
    put_int(&mut m, "00201209", "IS", Some(series.len() as i64));
    copy(&mut m, meta, "00400244", "DA", true);
    copy(&mut m, meta, "00400245", "TM", true);
    copy(&mut m, meta, "00400275", "SQ", false);
    m
}

/// Instance attributes (PS3.18 table 10.6.3-5).
pub fn instance_attributes(i: &Instance, base: &str, meta: Option<&Value>) -> Map<String, Value> {
    let mut m = Map::new();
    put(&mut m, "00080016", "UI", &i.sop_class_uid);
    put(&mut m, "00080018", "UI", &i.sop_instance_uid);
    put(&mut m, "00080056", "CS", "ONLINE");
    put(&mut m, "00081190", "UR", &instance_url(base, i));
    put(&mut m, "00083002", "UI", &i.transfer_syntax);
    put_int(&mut m, "00200013", "IS", i.instance_number);
    if i.rows_count > 0 {
        put_int(&mut m, "00280008", "IS", Some(i.frames));
        put_int(&mut m, "00280010", "US", Some(i.rows_count));
        put_int(&mut m, "00280011", "US", Some(i.columns_count));
        copy(&mut m, meta, "00280100", "US", true);
    }
    m
}

pub fn instance_url(base: &str, i: &Instance) -> String {
    format!("{base}/studies/{}/series/{}/instances/{}", i.study_uid, i.series_uid, i.sop_instance_uid)
}

/// Tags `includefield=all` adds at the study level (Patient, General Study and Patient Study
/// modules) and, with these, at the series level; at the instance level every attribute.
const STUDY_TAGS: &[&str] = &[
    "00080005", "00080020", "00080030", "00080050", "00080056", "00080061", "00080062", "00080090", "00080201",
    "00081030", "00081032", "00081060", "0020000D", "00200010", "00101010", "00101020", "00101030",
];
const SERIES_TAGS: &[&str] = &[
    "00080021", "00080031", "00080060", "00080070", "0008103E", "00081090", "00180015", "00181030", "0020000E",
    "00200011", "00200060", "00400244", "00400245", "00400253", "00400254", "00400275",
];

fn in_level(tag: &str, level: Level) -> bool {
    match level {
        Level::Instance => true,
        Level::Series => in_level(tag, Level::Study) || SERIES_TAGS.contains(&tag),
        Level::Study => tag.starts_with("0010") || STUDY_TAGS.contains(&tag),
    }
}

// ---- matching --------------------------------------------------------------------------

/// Matching of one value under its VR: a list of UIDs (`a,b` or `a\b`), a date or time range
/// (`20200101-20201231`, open ends allowed), or a value with `*` and `?` wildcards,
/// case-insensitive.
pub fn match_value(vr: &str, pattern: &str, value: &str) -> bool {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return true;
    }
    if vr == "UI" {
        return pattern.split([',', '\\']).any(|p| p.trim() == value);
    }
    if matches!(vr, "DA" | "TM" | "DT") && pattern.contains('-') {
        let (from, to) = pattern.split_once('-').unwrap_or((pattern, pattern));
        let value = value.trim();
        // A time range compares as many digits as the bound gives.
        let cut = |bound: &str| value.get(..bound.len().min(value.len())).unwrap_or(value).to_string();
        return (from.is_empty() || cut(from).as_str() >= from) && (to.is_empty() || cut(to).as_str() <= to);
    }
    wildcard(&pattern.to_lowercase(), &value.to_lowercase())
}

/// Matching of an indexed attribute by its keyword.
pub fn qido_match(key: &str, pattern: &str, value: &str) -> bool {
    let vr = match key {
        k if k.ends_with("UID") => "UI",
        k if k.ends_with("Date") => "DA",
        k if k.ends_with("Time") => "TM",
        _ => "LO",
    };
    match_value(vr, pattern, value)
}

fn wildcard(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether the stored model has, at `path` (tags; sequences in between), a value matching.
pub fn attribute_match(model: &Value, path: &[String], pattern: &str) -> bool {
    let Some((tag, rest)) = path.split_first() else { return false };
    let Some(element) = model.get(tag) else { return pattern.trim().is_empty() };
    let values = element.get("Value").and_then(Value::as_array);
    if !rest.is_empty() {
        return values.into_iter().flatten().any(|item| attribute_match(item, rest, pattern));
    }
    if pattern.trim().is_empty() {
        return true;
    }
    let vr = element.get("vr").and_then(Value::as_str).unwrap_or("");
    values.into_iter().flatten().any(|v| match v {
        Value::String(s) => match_value(vr, pattern, s),
        Value::Number(n) => match_value(vr, pattern, &n.to_string()),
        Value::Object(pn) => ["Alphabetic", "Ideographic", "Phonetic"]
            .iter()
            .filter_map(|k| pn.get(*k).and_then(Value::as_str))
            .any(|s| match_value(vr, pattern, s)),
        _ => false,
    })
}

/// The indexed column behind a keyword, if any.
fn indexed(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "StudyInstanceUID" => "StudyInstanceUID",
        "SeriesInstanceUID" => "SeriesInstanceUID",
        "SOPInstanceUID" => "SOPInstanceUID",
        "SOPClassUID" => "SOPClassUID",
        "PatientName" => "PatientName",
        "PatientID" => "PatientID",
        "PatientBirthDate" => "PatientBirthDate",
        "PatientSex" => "PatientSex",
        "StudyDate" => "StudyDate",
        "StudyTime" => "StudyTime",
        "AccessionNumber" => "AccessionNumber",
        "ModalitiesInStudy" => "ModalitiesInStudy",
        "Modality" => "Modality",
        "StudyDescription" => "StudyDescription",
        "SeriesDescription" => "SeriesDescription",
        "SeriesNumber" => "SeriesNumber",
        "InstanceNumber" => "InstanceNumber",
        "StudyID" => "StudyID",
        "BodyPartExamined" => "BodyPartExamined",
        _ => return None,
    })
}

pub fn field<'a>(i: &'a Instance, key: &str) -> std::borrow::Cow<'a, str> {
    use std::borrow::Cow::*;
    match key {
        "StudyInstanceUID" => Borrowed(&i.study_uid),
        "SeriesInstanceUID" => Borrowed(&i.series_uid),
        "SOPInstanceUID" => Borrowed(&i.sop_instance_uid),
        "SOPClassUID" => Borrowed(&i.sop_class_uid),
        "PatientName" => Borrowed(&i.patient_name),
        "PatientID" => Borrowed(&i.patient_id),
        "PatientBirthDate" => Borrowed(&i.patient_birth_date),
        "PatientSex" => Borrowed(&i.patient_sex),
        "StudyDate" => Borrowed(&i.study_date),
        "StudyTime" => Borrowed(&i.study_time),
        "AccessionNumber" => Borrowed(&i.accession_number),
        "ModalitiesInStudy" | "Modality" => Borrowed(&i.modality),
        "StudyDescription" => Borrowed(&i.study_description),
        "SeriesDescription" => Borrowed(&i.series_description),
        "BodyPartExamined" => Borrowed(&i.body_part),
        "SeriesNumber" => Owned(i.series_number.map(|n| n.to_string()).unwrap_or_default()),
        "InstanceNumber" => Owned(i.instance_number.map(|n| n.to_string()).unwrap_or_default()),
        "StudyID" => Borrowed(&i.study_id),
        _ => Borrowed(""),
    }
}

/// One attribute named by keyword or tag: (tag as 8 hex digits, VR, keyword).
fn resolve_one(raw: &str) -> Option<(String, String, String)> {
    let dict = StandardDataDictionary;
    let entry = if raw.len() == 8 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        let t = u32::from_str_radix(raw, 16).ok()?;
        dict.by_tag(dicom_core::Tag((t >> 16) as u16, (t & 0xFFFF) as u16))
    } else {
        dict.by_name(raw)
    }?;
    let tag = entry.tag_range().inner();
    Some((
        format!("{:04X}{:04X}", tag.group(), tag.element()),
        format!("{:?}", entry.vr().relaxed()),
        entry.alias().to_string(),
    ))
}

/// A query key: an indexed column, or a path of tags into the stored model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Indexed(&'static str),
    Attribute(Vec<String>),
}

#[derive(Debug, Default)]
pub struct Search {
    pub filters: Vec<(Key, String)>,
    /// Tags `includefield` names.
    pub includes: Vec<String>,
    pub include_all: bool,
    pub limit: usize,
    pub offset: usize,
    /// Texts for `Warning: 299` headers.
    pub warnings: Vec<String>,
}

impl Search {
    /// Whether matching needs every instance's stored model.
    pub fn needs_models(&self) -> bool {
        self.filters.iter().any(|(k, _)| matches!(k, Key::Attribute(_)))
    }
}

fn invalid(detail: String) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidQuery, detail)
}

/// Parses a QIDO query string.
pub fn parse_search(params: &[(String, String)]) -> ApiResult<Search> {
    let mut s = Search { limit: 1000, ..Search::default() };
    for (k, v) in params {
        match k.as_str() {
            "limit" => s.limit = v.parse().map_err(|_| invalid("limit is a number".into()))?,
            "offset" => s.offset = v.parse().map_err(|_| invalid("offset is a number".into()))?,
            "fuzzymatching" => {
                if v.eq_ignore_ascii_case("true") {
                    s.warnings.push("fuzzymatching is not supported: only literal matching was performed".into());
                }
            }
            "includefield" => {
                for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    if name == "all" {
                        s.include_all = true;
                        continue;
                    }
                    let path: Option<Vec<_>> = name.split('.').map(resolve_one).collect();
                    match path {
                        None => {
                            return Err(invalid(format!("includefield {name} is not a DICOM attribute keyword or tag")))
                        }
                        Some(p) if p.len() == 1 => s.includes.push(p[0].0.clone()),
                        Some(_) => s.warnings.push(format!(
                            "includefield {name}: attributes inside sequences are returned with their sequence only"
                        )),
                    }
                }
            }
            "_" => {}
            key => {
                let path: Vec<(String, String, String)> = key
                    .split('.')
                    .map(resolve_one)
                    .collect::<Option<_>>()
                    .ok_or_else(|| invalid(format!("{key} is not a DICOM attribute keyword or tag")))?;
                let (_, vr, keyword) = path.last().expect("split yields one part").clone();
                if path.len() == 1 {
                    if let Some(col) = indexed(&keyword) {
                        s.filters.push((Key::Indexed(col), v.clone()));
                        continue;
                    }
                }
                if matches!(vr.as_str(), "SQ" | "OB" | "OW" | "OF" | "OD" | "OL" | "OV" | "UN") {
                    s.warnings.push(format!("{key} ({vr}) cannot be matched: the key was ignored"));
                    continue;
                }
                s.filters.push((Key::Attribute(path.into_iter().map(|p| p.0).collect()), v.clone()));
            }
        }
    }
    Ok(s)
}

fn key_matches(i: &Instance, models: &HashMap<String, Value>, (key, pattern): &(Key, String)) -> bool {
    match key {
        Key::Indexed(k) => qido_match(k, pattern, &field(i, k)),
        Key::Attribute(path) => models.get(&i.file_id).is_some_and(|m| attribute_match(m, path, pattern)),
    }
}

/// The search's results at `level` over `rows` (the instances in scope) — grouped by
/// study, series or instance, a group kept when one of its instances matches every key —
/// with the study (and series) attributes from `all` (every instance of the consultation)
/// and what `includefield` adds from the stored models in `models`.
pub fn results(
    level: Level,
    all: &[Instance],
    rows: &[&Instance],
    search: &Search,
    models: &HashMap<String, Value>,
    base: &str,
) -> Vec<Value> {
    let key = |i: &Instance| -> String {
        match level {
            Level::Study => i.study_uid.clone(),
            Level::Series => i.series_uid.clone(),
            Level::Instance => i.sop_instance_uid.clone(),
        }
    };
    let mut groups: Vec<Vec<&Instance>> = Vec::new();
    for r in rows {
        match groups.iter_mut().find(|g| key(g[0]) == key(r)) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
        .into_iter()
        .filter(|g| search.filters.iter().all(|f| g.iter().any(|i| key_matches(i, models, f))))
        .skip(search.offset)
        .take(search.limit)
        .map(|g| {
            let head = g[0];
            let meta = models.get(&head.file_id);
            let study: Vec<&Instance> = all.iter().filter(|i| i.study_uid == head.study_uid).collect();
            let mut m = study_attributes(&study, base, meta);
            if level >= Level::Series {
                let series: Vec<&Instance> = all.iter().filter(|i| i.series_uid == head.series_uid).collect();
                m.extend(series_attributes(&series, base, meta));
            }
            if level == Level::Instance {
                m.extend(instance_attributes(head, base, meta));
            }
            if let Some(model) = meta.and_then(Value::as_object) {
                for (tag, element) in model {
                    let wanted = search.includes.contains(tag) || (search.include_all && in_level(tag, level));
                    if wanted && element.get("BulkDataURI").is_none() && !m.contains_key(tag) {
                        m.insert(tag.clone(), element.clone());
                    }
                }
            }
            Value::Object(m)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(study: &str, series: &str, sop: &str, modality: &str) -> Instance {
        Instance {
            file_id: format!("f-{sop}"),
            storage_key: String::new(),
            size: 0,
            study_uid: study.into(),
            series_uid: series.into(),
            sop_instance_uid: sop.into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            transfer_syntax: "1.2.840.10008.1.2.1".into(),
            modality: modality.into(),
            body_part: String::new(),
            study_date: "20040119".into(),
            study_time: "072730".into(),
            study_description: String::new(),
            series_description: String::new(),
            series_number: Some(1),
            instance_number: Some(1),
            accession_number: String::new(),
            study_id: String::new(),
            patient_name: "CompressedSamples^CT1".into(),
            patient_id: "1CT1".into(),
            patient_birth_date: "19500101".into(),
            patient_sex: "O".into(),
            rows_count: 128,
            columns_count: 128,
            frames: 1,
        }
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn qido_matching_follows_ps3_18() {
        assert!(qido_match("PatientName", "compressed*", "CompressedSamples^CT1"));
        assert!(qido_match("PatientName", "?ompressed*", "CompressedSamples^CT1"));
        assert!(!qido_match("PatientName", "li*", "Zhang^Xiuying"));
        assert!(qido_match("StudyDate", "20040101-20041231", "20040119"));
        assert!(qido_match("StudyDate", "-20031231", "20030101"));
        assert!(!qido_match("StudyDate", "20050101-", "20040119"));
        assert!(qido_match("StudyTime", "0700-0800", "072730"));
        assert!(qido_match("StudyInstanceUID", "1.2.3,1.2.4", "1.2.4"));
        assert!(!qido_match("StudyInstanceUID", "1.2.3", "1.2.30"));
        assert!(qido_match("Modality", "", "CT"));
    }

    #[test]
    fn person_names_split_into_groups() {
        let mut m = Map::new();
        put_pn(&mut m, "00100010", "Zhang^Xiuying=张^秀英");
        assert_eq!(m["00100010"]["Value"][0]["Ideographic"], "张^秀英");
        assert_eq!(m["00100010"]["Value"][0]["Alphabetic"], "Zhang^Xiuying");
    }

    #[test]
    fn every_key_is_matched_or_refused_never_ignored() {
        let s = parse_search(&q(&[("PatientBirthDate", "19000101")])).unwrap();
        assert_eq!(s.filters, vec![(Key::Indexed("PatientBirthDate"), "19000101".into())]);
        let s = parse_search(&q(&[("00080090", "Smith*"), ("RequestAttributesSequence.RequestedProcedureID", "RP1")]))
            .unwrap();
        assert_eq!(s.filters[0].0, Key::Attribute(vec!["00080090".into()]));
        assert_eq!(s.filters[1].0, Key::Attribute(vec!["00400275".into(), "00401001".into()]));
        assert!(s.needs_models());
        assert_eq!(parse_search(&q(&[("NoSuchKeyword", "x")])).unwrap_err().status.as_u16(), 400);
        let s = parse_search(&q(&[("fuzzymatching", "true"), ("RequestAttributesSequence", "x")])).unwrap();
        assert_eq!(s.warnings.len(), 2);
        assert!(s.filters.is_empty());
    }

    #[test]
    fn an_unmatched_birth_date_excludes_the_study() {
        let all = vec![instance("1.2.1", "1.2.1.1", "1.2.1.1.1", "CT")];
        let rows: Vec<&Instance> = all.iter().collect();
        let none = HashMap::new();
        let s = parse_search(&q(&[("PatientBirthDate", "19000101")])).unwrap();
        assert!(results(Level::Study, &all, &rows, &s, &none, "b").is_empty());
        let s = parse_search(&q(&[("PatientBirthDate", "19500101")])).unwrap();
        assert_eq!(results(Level::Study, &all, &rows, &s, &none, "b").len(), 1);
    }

    #[test]
    fn stored_attributes_match_and_are_returned() {
        let all =
            vec![instance("1.2.1", "1.2.1.1", "1.2.1.1.1", "CT"), instance("1.2.1", "1.2.1.2", "1.2.1.2.1", "MR")];
        let rows: Vec<&Instance> = all.iter().collect();
        let mut models = HashMap::new();
        models.insert(
            "f-1.2.1.1.1".to_string(),
            json!({"00080090": {"vr": "PN", "Value": [{"Alphabetic": "Smith^John", "Ideographic": "史密斯"}]},
                   "00400275": {"vr": "SQ", "Value": [{"00401001": {"vr": "SH", "Value": ["RP1"]}}]},
                   "00181030": {"vr": "LO", "Value": ["Chest"]},
                   "7FE00010": {"vr": "OW", "BulkDataURI": "x"}}),
        );
        let s = parse_search(&q(&[("ReferringPhysicianName", "史密*")])).unwrap();
        let studies = results(Level::Study, &all, &rows, &s, &models, "b");
        assert_eq!(studies.len(), 1);
        assert_eq!(studies[0]["00080090"]["Value"][0]["Alphabetic"], "Smith^John");
        assert_eq!(studies[0]["00201206"]["Value"][0], 2, "counts cover the whole study");
        let s = parse_search(&q(&[("RequestAttributesSequence.RequestedProcedureID", "RP1")])).unwrap();
        let series = results(Level::Series, &all, &rows, &s, &models, "b");
        assert_eq!(series.len(), 1);
        assert_eq!(series[0]["0020000D"]["Value"][0], "1.2.1", "series results carry the study attributes");
        assert_eq!(series[0]["00100010"]["Value"][0]["Alphabetic"], "CompressedSamples^CT1");
        let s = parse_search(&q(&[("includefield", "all")])).unwrap();
        let series = results(Level::Series, &all, &rows, &s, &models, "b");
        assert_eq!(series[0]["00181030"]["Value"][0], "Chest");
        assert!(series[0].get("7FE00010").is_none());
        let studies = results(Level::Study, &all, &rows, &s, &models, "b");
        assert!(studies[0].get("00181030").is_none(), "a series attribute is not a study's");
    }
}
