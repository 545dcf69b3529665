//! The FHIR search surface, pure: which resource types and search parameters the facade
//! serves (one table that both checks requests and writes the CapabilityStatement), parsing
//! of the parameters a client sends, date ranges, `_include` targets, paging and the
//! searchset Bundle.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};

/// A search parameter: name and FHIR type.
pub type Param = (&'static str, &'static str);

/// A served resource type: its search parameters and `_include` values.
pub struct ResourceDef {
    pub kind: &'static str,
    pub params: &'static [Param],
    pub includes: &'static [&'static str],
}

const PATIENT: Param = ("patient", "reference");

/// Every resource type the facade serves (read and search-type).
pub const RESOURCES: &[ResourceDef] = &[
    ResourceDef { kind: "Patient", params: &[("identifier", "token"), ("name", "string")], includes: &[] },
    ResourceDef { kind: "Practitioner", params: &[("name", "string")], includes: &[] },
    ResourceDef {
        kind: "PractitionerRole",
        params: &[("practitioner", "reference"), ("specialty", "token")],
        includes: &["PractitionerRole:practitioner", "PractitionerRole:organization"],
    },
    ResourceDef { kind: "Organization", params: &[("name", "string")], includes: &[] },
    ResourceDef { kind: "Schedule", params: &[("actor", "reference")], includes: &["Schedule:actor"] },
    ResourceDef {
        kind: "Slot",
        params: &[("schedule", "reference"), ("start", "date"), ("status", "token")],
        includes: &["Slot:schedule"],
    },
    ResourceDef {
        kind: "Appointment",
        params: &[PATIENT, ("practitioner", "reference"), ("date", "date"), ("status", "token")],
        includes: &["Appointment:patient", "Appointment:practitioner"],
    },
    ResourceDef {
        kind: "ServiceRequest",
        params: &[PATIENT, ("status", "token")],
        includes: &["ServiceRequest:patient", "ServiceRequest:requester"],
    },
    ResourceDef { kind: "Task", params: &[PATIENT, ("status", "token")], includes: &["Task:patient", "Task:focus"] },
    ResourceDef { kind: "Consent", params: &[PATIENT], includes: &["Consent:patient"] },
    ResourceDef { kind: "Encounter", params: &[PATIENT], includes: &["Encounter:patient"] },
    ResourceDef { kind: "Communication", params: &[PATIENT], includes: &["Communication:patient"] },
    ResourceDef { kind: "DocumentReference", params: &[PATIENT], includes: &["DocumentReference:patient"] },
    ResourceDef { kind: "ImagingStudy", params: &[PATIENT], includes: &["ImagingStudy:patient"] },
    ResourceDef {
        kind: "Observation",
        params: &[PATIENT, ("code", "token")],
        includes: &["Observation:patient", "Observation:derived-from"],
    },
    ResourceDef {
        kind: "DiagnosticReport",
        params: &[PATIENT],
        includes: &["DiagnosticReport:patient", "DiagnosticReport:result"],
    },
    ResourceDef { kind: "CarePlan", params: &[PATIENT], includes: &["CarePlan:patient"] },
];

/// Parameters every search accepts.
const COMMON: &[&str] = &["_count", "_offset", "_include", "_format", "_id"];

pub const DEFAULT_COUNT: usize = 50;
pub const MAX_COUNT: usize = 200;

pub fn resource_def(kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.kind == kind)
}

/// Why a search request cannot be answered (400 with an OperationOutcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchError {
    pub code: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> SearchError {
    SearchError { code: "invalid", message: message.into() }
}

/// A search request, checked against the table.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub params: Vec<(String, String)>,
    pub count: usize,
    pub offset: usize,
    pub includes: Vec<String>,
    pub id: Option<String>,
}

impl Search {
    /// The first value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a parameter (dates come as several).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.params.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The id in a reference parameter (`Patient/123` or `123`), checked to be of `kind`.
    pub fn reference(&self, name: &str, kind: &str) -> Result<Option<String>, SearchError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        let id = match v.split_once('/') {
            Some((k, id)) if k == kind => id,
            Some(_) => return Err(invalid(format!("{name} must reference a {kind}"))),
            None => v,
        };
        Ok(Some(id.to_string()))
    }
}

/// Checks a search's parameters: unknown ones are refused (not silently ignored, which
/// would widen the result), `_count` is 1..=200, `_include` must be one the type offers.
pub fn parse(def: &ResourceDef, raw: Vec<(String, String)>) -> Result<Search, SearchError> {
    let mut search = Search { count: DEFAULT_COUNT, ..Search::default() };
    for (k, v) in raw {
        let name = k.split(':').next().unwrap_or(&k);
        match name {
            "_count" => {
                search.count = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_COUNT).contains(n))
                    .ok_or_else(|| invalid(format!("_count must be between 1 and {MAX_COUNT}")))?
            }
            "_offset" => search.offset = v.parse().map_err(|_| invalid("_offset must be a number"))?,
            "_include" => {
                if !def.includes.contains(&v.as_str()) {
                    return Err(SearchError {
                        code: "not-supported",
                        message: format!(
                            "_include={v} is not supported on {} (supported: {})",
                            def.kind,
                            def.includes.join(", ")
                        ),
                    });
                }
                search.includes.push(v);
            }
            "_format" => {
                if !matches!(v.as_str(), "json" | "application/json" | "application/fhir+json") {
                    return Err(SearchError { code: "not-supported", message: "only JSON is served".into() });
                }
            }
            "_id" => search.id = Some(v),
            _ if k.contains(':') => {
                return Err(SearchError { code: "not-supported", message: format!("modifier in {k} is not supported") })
            }
            _ if def.params.iter().any(|(p, _)| *p == name) => search.params.push((k, v)),
            _ if COMMON.contains(&name) => {}
            _ => {
                return Err(SearchError {
                    code: "not-supported",
                    message: format!(
                        "search parameter {k} is not supported on {} (supported: {})",
                        def.kind,
                        def.params.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
                    ),
                })
            }
        }
    }
    Ok(search)
}

/// A half-open time range `[lo, hi)` that date parameters narrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DateRange {
    pub lo: Option<DateTime<Utc>>,
    pub hi: Option<DateTime<Utc>>,
}

impl DateRange {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.lo.is_none_or(|lo| t >= lo) && self.hi.is_none_or(|hi| t < hi)
    }

    /// Narrows by one `date` value: an optional prefix (`eq` `ge` `gt` `le` `lt`) then a
    /// date (a day in `tz`, the platform's time zone) or a date-time with offset.
    pub fn narrow(mut self, value: &str, tz: chrono_tz::Tz) -> Result<DateRange, SearchError> {
        let (prefix, rest) = match value.get(..2) {
            Some(p @ ("eq" | "ge" | "gt" | "le" | "lt")) => (p, &value[2..]),
            _ => ("eq", value),
        };
        let (start, end) = if let Ok(d) = NaiveDate::parse_from_str(rest, "%Y-%m-%d") {
            let day = |d: NaiveDate| {
                tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
            };
            let next = d.succ_opt().ok_or_else(|| invalid("date out of range"))?;
            (
                day(d).ok_or_else(|| invalid("date out of range"))?,
                day(next).ok_or_else(|| invalid("date out of range"))?,
            )
        } else if let Ok(t) = DateTime::parse_from_rfc3339(rest) {
            let t = t.with_timezone(&Utc);
            (t, t + chrono::Duration::seconds(1))
        } else {
            return Err(invalid(format!("{value:?} is not a FHIR date (YYYY-MM-DD or a date-time with offset)")));
        };
        let tighten_lo = |lo: Option<DateTime<Utc>>, v| Some(lo.map_or(v, |lo: DateTime<Utc>| lo.max(v)));
        let tighten_hi = |hi: Option<DateTime<Utc>>, v| Some(hi.map_or(v, |hi: DateTime<Utc>| hi.min(v)));
        match prefix {
            "ge" => self.lo = tighten_lo(self.lo, start),
            "gt" => self.lo = tighten_lo(self.lo, end),
            "le" => self.hi = tighten_hi(self.hi, end),
            "lt" => self.hi = tighten_hi(self.hi, start),
            _ => {
                self.lo = tighten_lo(self.lo, start);
                self.hi = tighten_hi(self.hi, end);
            }
        }
        Ok(self)
    }
}

/// Whether a token parameter (`system|code`, `|code` or `code`) matches a CodeableConcept.
pub fn token_matches(param: &str, concept: &Value) -> bool {
    param.split(',').any(|one| {
        let (system, code) = match one.split_once('|') {
            Some((s, c)) => (Some(s), c),
            None => (None, one),
        };
        concept["coding"].as_array().into_iter().flatten().any(|c| {
            c["code"].as_str() == Some(code) && system.is_none_or(|s| s.is_empty() || c["system"].as_str() == Some(s))
        })
    })
}

/// The references (`Type/id`) an `_include` names in a matched resource.
pub fn include_targets(include: &str, resource: &Value) -> Vec<String> {
    let param = include.split(':').nth(1).unwrap_or("");
    let refs = |v: &Value| -> Vec<String> {
        match v {
            Value::Array(items) => items.iter().filter_map(|i| i["reference"].as_str().map(str::to_string)).collect(),
            v => v["reference"].as_str().map(str::to_string).into_iter().collect(),
        }
    };
    let actors = |prefix: &str| -> Vec<String> {
        resource["participant"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["actor"]["reference"].as_str())
            .filter(|r| r.starts_with(prefix))
            .map(str::to_string)
            .collect()
    };
    let mut out = match param {
        "patient" => {
            let mut r = refs(&resource["subject"]);
            r.extend(refs(&resource["patient"]));
            r.extend(refs(&resource["for"]));
            r.extend(actors("Patient/"));
            r.retain(|x| x.starts_with("Patient/"));
            r
        }
        "practitioner" => {
            let mut r = refs(&resource["practitioner"]);
            r.extend(actors("Practitioner/"));
            r
        }
        "derived-from" => refs(&resource["derivedFrom"]),
        "focus" => refs(&resource["focus"]),
        other => refs(&resource[other]),
    };
    out.dedup();
    out
}

/// Percent-encodes a query component.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn page_url(base: &str, kind: &str, raw: &[(String, String)], count: usize, offset: usize) -> String {
    let mut q: Vec<String> = raw
        .iter()
        .filter(|(k, _)| k != "_offset" && k != "_count")
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    q.push(format!("_count={count}"));
    if offset > 0 {
        q.push(format!("_offset={offset}"));
    }
    format!("{base}/{kind}?{}", q.join("&"))
}

/// One page of a search's matches: how many there are in all (when known) and whether
/// more follow.
#[derive(Debug, Default)]
pub struct Page {
    pub matches: Vec<Value>,
    pub total: Option<usize>,
    pub has_more: bool,
}

/// A searchset Bundle of one page, with the included resources, self/next/previous links.
pub fn bundle(
    base: &str,
    kind: &str,
    raw: &[(String, String)],
    search: &Search,
    page: Page,
    included: Vec<Value>,
) -> Value {
    let Page { matches, total, has_more } = page;
    let entry = |mode: &str, r: Value| {
        json!({
            "fullUrl": format!("{base}/{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or("")),
            "resource": r,
            "search": {"mode": mode}
        })
    };
    let mut links = vec![json!({"relation": "self", "url": page_url(base, kind, raw, search.count, search.offset)})];
    if has_more {
        links.push(
            json!({"relation": "next", "url": page_url(base, kind, raw, search.count, search.offset + search.count)}),
        );
    }
    if search.offset > 0 {
        let prev = search.offset.saturating_sub(search.count);
        links.push(json!({"relation": "previous", "url": page_url(base, kind, raw, search.count, prev)}));
    }
    let mut entries: Vec<Value> = matches.into_iter().map(|r| entry("match", r)).collect();
    entries.extend(included.into_iter().map(|r| entry("include", r)));
    let mut b = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries,
    });
    if let Some(t) = total {
        b["total"] = json!(t);
    }
    if b["entry"].as_array().is_some_and(|e| e.is_empty()) {
        b.as_object_mut().map(|o| o.remove("entry"));
    }
    b
}

/// The CapabilityStatement, generated from [`RESOURCES`].
pub fn capability_statement(base: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|r| {
            let mut params: Vec<Value> =
                r.params.iter().map(|(name, kind)| json!({"name": name, "type": kind})).collect();
            params.push(json!({"name": "_id", "type": "token"}));
            json!({
                "type": r.kind,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": params,
                "searchInclude": r.includes,
            })
        })
        .map(super::map::prune)
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-04",
        "publisher": "Teleconsult",
        "kind": "instance",
        "software": {"name": "Teleconsult", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Teleconsult FHIR R4 facade (read and search)", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Read-only views of the platform's records; the platform's own API is the source of truth. Scoped by the same access rules; every read of patient data is audited.",
            "security": {
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth"}]}],
                "description": "Bearer access token from POST /api/v1/auth/login (JWT)."
            },
            "resource": resources,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn unknown_parameters_are_refused_not_ignored() {
        let def = resource_def("Patient").unwrap();
        let e = parse(def, raw(&[("birthdate", "1950-01-01")])).unwrap_err();
        assert_eq!(e.code, "not-supported");
        assert!(e.message.contains("birthdate"));
        assert!(parse(def, raw(&[("name", "张")])).is_ok());
        assert_eq!(parse(def, raw(&[("_count", "0")])).unwrap_err().code, "invalid");
        assert_eq!(parse(def, raw(&[("name:exact", "张")])).unwrap_err().code, "not-supported");
        let obs = resource_def("Observation").unwrap();
        assert!(parse(obs, raw(&[("_include", "Observation:patient")])).is_ok());
        assert!(parse(obs, raw(&[("_include", "Observation:performer")])).is_err());
    }

    #[test]
    fn a_date_names_a_day_in_the_platform_time_zone() {
        let tz = chrono_tz::Asia::Shanghai;
        let r = DateRange::default().narrow("2026-11-24", tz).unwrap();
        assert_eq!(r.lo.unwrap().to_rfc3339(), "2026-11-23T16:00:00+00:00");
        assert_eq!(r.hi.unwrap().to_rfc3339(), "2026-11-24T16:00:00+00:00");
        let r = DateRange::default().narrow("ge2026-11-24", tz).unwrap().narrow("lt2026-11-26", tz).unwrap();
        assert!(r.contains("2026-11-25T09:00:00+08:00".parse().unwrap()));
        assert!(!r.contains("2026-11-26T00:00:00+08:00".parse().unwrap()));
        assert!(!r.contains("2026-11-23T23:59:59+08:00".parse().unwrap()));
        let r = DateRange::default().narrow("gt2026-11-24T09:00:00+08:00", tz).unwrap();
        assert!(!r.contains("2026-11-24T09:00:00+08:00".parse().unwrap()));
        assert!(DateRange::default().narrow("yesterday", tz).is_err());
    }

    #[test]
    fn tokens_match_with_or_without_a_system() {
        let c = json!({"coding": [{"system": "http://loinc.org", "code": "8867-4"}]});
        assert!(token_matches("8867-4", &c));
        assert!(token_matches("http://loinc.org|8867-4", &c));
        assert!(token_matches("8625-6,8867-4", &c));
        assert!(!token_matches("http://snomed.info/sct|8867-4", &c));
        assert!(!token_matches("8625-6", &c));
    }

    #[test]
    fn includes_follow_the_named_reference() {
        let appt = json!({"participant": [
            {"actor": {"reference": "Practitioner/e1"}}, {"actor": {"reference": "Patient/p1"}}]});
        assert_eq!(include_targets("Appointment:patient", &appt), ["Patient/p1"]);
        assert_eq!(include_targets("Appointment:practitioner", &appt), ["Practitioner/e1"]);
        let slot = json!({"schedule": {"reference": "Schedule/e1"}});
        assert_eq!(include_targets("Slot:schedule", &slot), ["Schedule/e1"]);
    }

    #[test]
    fn pages_link_forward_and_back_keeping_the_query() {
        let def = resource_def("Observation").unwrap();
        let q =
            raw(&[("patient", "Patient/p1"), ("code", "http://loinc.org|8867-4"), ("_count", "2"), ("_offset", "2")]);
        let s = parse(def, q.clone()).unwrap();
        let page =
            Page { matches: vec![json!({"resourceType": "Observation", "id": "x"})], total: Some(5), has_more: true };
        let b = bundle("http://h/fhir/r4", "Observation", &q, &s, page, vec![]);
        let links = b["link"].as_array().unwrap();
        assert_eq!(links[1]["relation"], "next");
        assert_eq!(
            links[1]["url"],
            "http://h/fhir/r4/Observation?patient=Patient%2Fp1&code=http%3A%2F%2Floinc.org%7C8867-4&_count=2&_offset=4"
        );
        assert_eq!(links[2]["relation"], "previous");
        assert_eq!(b["total"], 5);
        assert_eq!(b["entry"][0]["fullUrl"], "http://h/fhir/r4/Observation/x");
        assert_eq!(b["entry"][0]["search"]["mode"], "match");
    }
}
