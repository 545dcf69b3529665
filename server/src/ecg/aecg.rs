//! HL7 v3 annotated ECG (aECG) XML.
//!
//! Reads the rhythm waveforms of the first series (`AnnotatedECG/component/series`, the one
//! coded `RHYTHM` when there are several): its first `sequenceSet` holds a time sequence
//! (`TIME_ABSOLUTE` as `GLIST_TS` or `TIME_RELATIVE` as `GLIST_PQ`, whose `increment` gives the
//! sample interval) and one `SLIST_PQ` sequence per lead (`MDC_ECG_LEAD_*` code, physical
//! value = `origin` + `scale` × digit). Derived (median beat) series are not read as
//! waveforms.
//!
//! The cart's own global measurements are read from the annotations: the first annotation
//! set written by a device (not by a person) on the representative-beat derived series, else
//! on the rhythm series, whose top-level annotations give `MDC_ECG_TIME_PD_PR`, `_QRS`, `_QT`,
//! `_QTc` (else `_QTcB`), `_RR`, `MDC_ECG_HEART_RATE` and the frontal axes (per-beat annotations nested in
//! `MDC_ECG_BEAT` are not read).

use roxmltree::{Document, Node, ParsingOptions};

use super::{
    check_sample_rate, check_total_samples, microvolts_per_unit, standard_lead_name, to_uv, DeviceMeasurements,
    EcgError, EcgFormat, EcgRecord, Lead,
};

const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Whether `bytes` are XML whose root element is `AnnotatedECG`.
pub fn looks_like_aecg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    text.starts_with('<') && text.contains("AnnotatedECG")
}

/// Parses an HL7 aECG document.
pub fn parse(bytes: &[u8]) -> Result<EcgRecord, EcgError> {
    let fail = |m: String| EcgError::Aecg(m);
    let text = std::str::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8 text: {e}")))?;
    let text = text.trim_start_matches('\u{feff}');
    let doc = Document::parse_with_options(text, ParsingOptions { allow_dtd: false, ..ParsingOptions::default() })
        .map_err(|e| fail(format!("not well-formed XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "AnnotatedECG" {
        return Err(fail(format!("the root element is <{}>, not <AnnotatedECG>", root.tag_name().name())));
    }
    let series: Vec<Node> = children(root, "component").flat_map(|c| children(c, "series")).collect();
    let series = series
        .iter()
        .find(|s| code_of(**s).is_some_and(|c| c.eq_ignore_ascii_case("RHYTHM")))
        .or(series.first())
        .copied()
        .ok_or_else(|| fail("no <component><series> holds the waveforms".into()))?;
    let sequence_set = children(series, "component")
        .flat_map(|c| children(c, "sequenceSet"))
        .next()
        .ok_or_else(|| fail("the series has no <sequenceSet>".into()))?;

    let mut interval_s: Option<f64> = None;
    let mut head_time: Option<String> = None;
    let mut leads = Vec::new();
    let mut total: u64 = 0;
    for sequence in children(sequence_set, "component").flat_map(|c| children(c, "sequence")) {
        let code = code_of(sequence).unwrap_or_default().to_string();
        let value = child(sequence, "value").ok_or_else(|| fail(format!("sequence {code} has no <value>")))?;
        let kind = value
            .attribute((XSI, "type"))
            .or_else(|| value.attributes().find(|a| a.name() == "type").map(|a| a.value()))
            .unwrap_or_default();
        if code.starts_with("TIME_") {
            let increment =
                child(value, "increment").ok_or_else(|| fail(format!("time sequence {code} has no <increment>")))?;
            let step = quantity(increment, &code, "increment")?;
            let unit = increment.attribute("unit").unwrap_or("s");
            let seconds = match unit {
                "s" => step,
                "ms" => step / 1000.0,
                "us" => step / 1_000_000.0,
                other => return Err(fail(format!("time increment unit {other:?} is not s or ms"))),
            };
            interval_s = Some(seconds);
            if kind == "GLIST_TS" {
                head_time = child(value, "head").and_then(|h| h.attribute("value")).and_then(hl7_time);
            }
            continue;
        }
        if kind != "SLIST_PQ" && kind != "SLIST_INT" {
            continue;
        }
        let (origin_uv, scale_uv) = if kind == "SLIST_PQ" {
            let origin = child(value, "origin");
            let scale = child(value, "scale").ok_or_else(|| fail(format!("lead {code} has no <scale>")))?;
            let origin_uv = match origin {
                Some(o) => quantity(o, &code, "origin")? * unit_of(o, &code)?,
                None => 0.0,
            };
            (origin_uv, quantity(scale, &code, "scale")? * unit_of(scale, &code)?)
        } else {
            (0.0, 1.0)
        };
        let digits = child(value, "digits")
            .and_then(|d| d.text())
            .ok_or_else(|| fail(format!("lead {code} has no <digits>")))?;
        let mut samples_uv = Vec::new();
        for (i, token) in digits.split_ascii_whitespace().enumerate() {
            let d: f64 =
                token.parse().map_err(|_| fail(format!("lead {code}: digit {} ({token:?}) is not a number", i + 1)))?;
            samples_uv.push(to_uv(origin_uv + scale_uv * d, 1.0));
        }
        total += samples_uv.len() as u64;
        check_total_samples(total)?;
        let name = code.strip_prefix("MDC_ECG_LEAD_").unwrap_or(&code);
        leads.push(Lead { name: standard_lead_name(name), samples_uv });
        if leads.len() > super::MAX_LEADS {
            return Err(fail(format!("more than {} leads", super::MAX_LEADS)));
        }
    }
    let interval_s = interval_s
        .ok_or_else(|| fail("no TIME_ABSOLUTE or TIME_RELATIVE sequence gives the sample interval".into()))?;
    if interval_s.is_nan() || interval_s <= 0.0 {
        return Err(fail(format!("sample interval {interval_s} s is not positive")));
    }
    let sample_rate_hz = round_rate(1.0 / interval_s);
    check_sample_rate(sample_rate_hz)?;
    if leads.is_empty() {
        return Err(fail("the sequence set holds no lead (SLIST_PQ sequence)".into()));
    }
    let acquisition_time = head_time.or_else(|| effective_low(series)).or_else(|| effective_low(root));
    EcgRecord {
        sample_rate_hz,
        leads,
        acquisition_time,
        device: device(series),
        source_format: EcgFormat::HL7aECG,
        reference_beats_s: None,
        device_measurements: device_measurements(series),
    }
    .validated()
}

/// The cart's global measurements (see the module documentation), `None` when no device
/// annotation set gives any.
fn device_measurements(series: Node) -> Option<DeviceMeasurements> {
    let mut sets: Vec<Node> = children(series, "derivation")
        .flat_map(|d| children(d, "derivedSeries"))
        .filter(|d| code_of(*d).is_some_and(|c| c.eq_ignore_ascii_case("REPRESENTATIVE_BEAT")))
        .flat_map(annotation_sets)
        .collect();
    sets.extend(annotation_sets(series));
    sets.into_iter().filter(|set| !authored_by_a_person(*set)).find_map(|set| {
        let mut m = DeviceMeasurements::default();
        for annotation in children(set, "component").flat_map(|c| children(c, "annotation")) {
            let Some(code) = code_of(annotation) else { continue };
            let Some(value) = child(annotation, "value") else { continue };
            let Some(v) = value.attribute("value").and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite())
            else {
                continue;
            };
            let unit = value.attribute("unit").unwrap_or("ms");
            let ms = match unit {
                "ms" => Some(v),
                "s" => Some(v * 1000.0),
                "us" => Some(v / 1000.0),
                _ => None,
            }
            .filter(|ms| *ms > 0.0);
            match code {
                "MDC_ECG_TIME_PD_PR" => m.pr_ms = ms,
                "MDC_ECG_TIME_PD_QRS" => m.qrs_ms = ms,
                "MDC_ECG_TIME_PD_QT" => m.qt_ms = ms,
                "MDC_ECG_TIME_PD_QTc" => m.qtc_ms = ms,
                "MDC_ECG_TIME_PD_QTcB" if m.qtc_ms.is_none() => m.qtc_ms = ms,
                "MDC_ECG_TIME_PD_RR" => m.rr_ms = ms,
                "MDC_ECG_HEART_RATE" => m.heart_rate_bpm = Some(v).filter(|v| *v > 0.0),
                "MDC_ECG_ANGLE_P_FRONT" => m.p_axis_deg = Some(v),
                "MDC_ECG_ANGLE_QRS_FRONT" => m.qrs_axis_deg = Some(v),
                "MDC_ECG_ANGLE_T_FRONT" => m.t_axis_deg = Some(v),
                _ => {}
            }
        }
        (m.pr_ms.is_some() || m.qrs_ms.is_some() || m.qt_ms.is_some()).then_some(m)
    })
}

fn annotation_sets<'a, 'input: 'a>(node: Node<'a, 'input>) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    children(node, "subjectOf").flat_map(|s| children(s, "annotationSet"))
}

/// Whether an annotation set's author is a person (a human reader), not a device.
fn authored_by_a_person(set: Node) -> bool {
    set.descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "author")
        .take(1)
        .any(|a| a.descendants().any(|n| n.is_element() && n.tag_name().name() == "assignedPerson"))
}

fn children<'a, 'input: 'a>(node: Node<'a, 'input>, name: &'static str) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children().filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn child<'a, 'input>(node: Node<'a, 'input>, name: &'static str) -> Option<Node<'a, 'input>> {
    children(node, name).next()
}

fn code_of<'a>(node: Node<'a, '_>) -> Option<&'a str> {
    child(node, "code").and_then(|c| c.attribute("code"))
}

fn quantity(node: Node, code: &str, what: &str) -> Result<f64, EcgError> {
    let raw = node.attribute("value").unwrap_or_default();
    raw.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| EcgError::Aecg(format!("{code}: {what} value {raw:?} is not a number")))
}

fn unit_of(node: Node, code: &str) -> Result<f64, EcgError> {
    let unit = node.attribute("unit").unwrap_or("uV");
    microvolts_per_unit(unit).ok_or_else(|| EcgError::Aecg(format!("{code}: unit {unit:?} is not a voltage")))
}

/// Sample rates are whole numbers of Hz in practice; undo the rounding of a written interval.
fn round_rate(fs: f64) -> f64 {
    let r = fs.round();
    if (fs - r).abs() < 1e-6 * fs.max(1.0) {
        r
    } else {
        fs
    }
}

fn effective_low(node: Node) -> Option<String> {
    child(node, "effectiveTime").and_then(|e| child(e, "low")).and_then(|l| l.attribute("value")).and_then(hl7_time)
}

fn device(series: Node) -> Option<String> {
    let author = child(series, "author").and_then(|a| child(a, "seriesAuthor"))?;
    let text = |n: Option<Node>| n.and_then(|n| n.text()).map(str::trim).filter(|t| !t.is_empty()).map(str::to_string);
    let model = text(child(author, "manufacturedSeriesDevice").and_then(|d| child(d, "manufacturerModelName")));
    let maker = text(child(author, "manufacturerOrganization").and_then(|o| child(o, "name")));
    match (maker, model) {
        (Some(a), Some(b)) => Some(format!("{a} {b}")),
        (a, b) => a.or(b),
    }
}

/// HL7 TS `YYYYMMDDHHMMSS[.fff][+ZZzz]` → ISO 8601 `YYYY-MM-DDTHH:MM:SS[.fff][+ZZ:zz]`.
pub(crate) fn hl7_time(ts: &str) -> Option<String> {
    let ts = ts.trim();
    let (main, zone) = match ts.find(['+', '-']) {
        Some(i) => (&ts[..i], Some(&ts[i..])),
        None => (ts, None),
    };
    let (whole, frac) = main.split_once('.').unwrap_or((main, ""));
    if whole.len() < 8 || !whole.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let part = |a: usize, b: usize| whole.get(a..b).unwrap_or("00");
    let mut out =
        format!("{}-{}-{}T{}:{}:{}", part(0, 4), part(4, 6), part(6, 8), part(8, 10), part(10, 12), part(12, 14));
    if !frac.is_empty() && frac.chars().all(|c| c.is_ascii_digit()) {
        out.push('.');
        out.push_str(frac);
    }
    if let Some(z) = zone {
        if z.len() == 5 && z[1..].chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("{}:{}", &z[..3], &z[3..]));
        }
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a faithful HL7 aECG document for `record`: the structure, namespaces, codes and
    /// data types of the HL7 v3 AnnotatedECG schema, a median-beat derived series that must not
    /// be read, and the lead samples as SLIST_PQ digits with an origin and a scale.
    pub(crate) fn generate(record: &EcgRecord, scale_uv: f64, origin_uv: f64) -> String {
        let increment = 1.0 / record.sample_rate_hz;
        let mut seqs = String::new();
        for lead in &record.leads {
            let code = match lead.name.as_str() {
                "aVR" => "AVR".to_string(),
                "aVL" => "AVL".to_string(),
                "aVF" => "AVF".to_string(),
                n => n.to_string(),
            };
            let digits: Vec<String> =
                lead.samples_uv.iter().map(|&v| ((f64::from(v) - origin_uv) / scale_uv).round().to_string()).collect();
            seqs.push_str(&format!(
                r#"
          <component>
            <sequence>
              <code code="MDC_ECG_LEAD_{code}" codeSystem="2.16.840.1.113883.6.24" codeSystemName="MDC"/>
              <value xsi:type="SLIST_PQ">
                <origin value="{origin_uv}" unit="uV"/>
                <scale value="{scale_uv}" unit="uV"/>
                <digits>{}</digits>
              </value>
            </sequence>
          </component>"#,
                digits.join(" ")
            ));
        }
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<AnnotatedECG xmlns="urn:hl7-org:v3" xmlns:voc="urn:hl7-org:v3/voc" xmlns:xsi="{XSI}" xsi:schemaLocation="urn:hl7-org:v3 /HL7/aECG/2003-12/schema/PORT_MT020001.xsd" type="Observation">
  <id root="61d1a24f-b47e-41aa-ae95-f8ac302f4eeb"/>
  <code code="93000" codeSystem="2.16.840.1.113883.6.12" codeSystemName="CPT-4"/>
  <effectiveTime>
    <low value="20261123093000" inclusive="true"/>
    <high value="20261123093010" inclusive="false"/>
  </effectiveTime>
  <componentOf>
    <timepointEvent>
      <componentOf>
        <subjectAssignment>
          <subject><trialSubject><id extension="test-subject"/></trialSubject></subject>
        </subjectAssignment>
      </componentOf>
    </timepointEvent>
  </componentOf>
  <component>
    <series>
      <id root="0b2c1d54-5d58-4b0b-9a2f-3b6e1b3b9c11"/>
      <code code="RHYTHM" codeSystem="2.16.840.1.113883.5.4" codeSystemName="ActCode"/>
      <effectiveTime>
        <low value="20261123093000.000+0800" inclusive="true"/>
        <high value="20261123093010.000+0800" inclusive="false"/>
      </effectiveTime>
      <author>
        <seriesAuthor>
          <manufacturedSeriesDevice>
            <id extension="SN-0001"/>
            <manufacturerModelName>TestCart 12</manufacturerModelName>
          </manufacturedSeriesDevice>
          <manufacturerOrganization><name>Example Medical</name></manufacturerOrganization>
        </seriesAuthor>
      </author>
      <component>
        <sequenceSet>
          <component>
            <sequence>
              <code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4"/>
              <value xsi:type="GLIST_TS">
                <head value="20261123093000.000+0800" unit="s"/>
                <increment value="{increment}" unit="s"/>
              </value>
            </sequence>
          </component>{seqs}
        </sequenceSet>
      </component>
      <derivation>
        <derivedSeries>
          <code code="REPRESENTATIVE_BEAT" codeSystem="2.16.840.1.113883.5.4"/>
          <component>
            <sequenceSet>
              <component>
                <sequence>
                  <code code="TIME_RELATIVE" codeSystem="2.16.840.1.113883.5.4"/>
                  <value xsi:type="GLIST_PQ"><head value="0" unit="s"/><increment value="0.002" unit="s"/></value>
                </sequence>
              </component>
              <component>
                <sequence>
                  <code code="MDC_ECG_LEAD_I" codeSystem="2.16.840.1.113883.6.24"/>
                  <value xsi:type="SLIST_PQ"><origin value="0" unit="uV"/><scale value="1" unit="uV"/><digits>9 9 9</digits></value>
                </sequence>
              </component>
            </sequenceSet>
          </component>
        </derivedSeries>
      </derivation>
    </series>
  </component>
</AnnotatedECG>
"#
        )
    }

    fn twelve_lead(fs: f64, seconds: f64) -> EcgRecord {
        let names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"];
        let beats = crate::ecg::qrs::tests::beat_times(seconds);
        let leads = names
            .iter()
            .enumerate()
            .map(|(k, name)| Lead {
                name: name.to_string(),
                samples_uv: crate::ecg::qrs::tests::synthetic_lead(fs, seconds, &beats, 0.5 + k as f64 / 10.0)
                    .into_iter()
                    .map(|v| v / 5 * 5)
                    .collect(),
            })
            .collect();
        EcgRecord {
            sample_rate_hz: fs,
            leads,
            acquisition_time: None,
            device: None,
            source_format: EcgFormat::HL7aECG,
            reference_beats_s: None,
            device_measurements: None,
        }
    }

    #[test]
    fn a_generated_document_reads_back_exactly() {
        let original = twelve_lead(500.0, 10.0);
        let xml = generate(&original, 5.0, 0.0);
        assert!(looks_like_aecg(xml.as_bytes()));
        let parsed = parse(xml.as_bytes()).unwrap();
        assert_eq!(parsed.sample_rate_hz, 500.0);
        assert_eq!(parsed.leads, original.leads);
        assert_eq!(parsed.acquisition_time.as_deref(), Some("2026-11-23T09:30:00.000+08:00"));
        assert_eq!(parsed.device.as_deref(), Some("Example Medical TestCart 12"));
    }

    #[test]
    fn origin_and_scale_are_applied() {
        let original = twelve_lead(250.0, 4.0);
        let xml = generate(&original, 2.5, -100.0);
        let parsed = parse(xml.as_bytes()).unwrap();
        for (a, b) in parsed.leads.iter().zip(&original.leads) {
            for (x, y) in a.samples_uv.iter().zip(&b.samples_uv) {
                assert!((x - y).abs() <= 2, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn broken_documents_say_what_is_wrong() {
        let original = twelve_lead(500.0, 2.0);
        let xml = generate(&original, 5.0, 0.0);
        let cut = &xml[..xml.len() / 2];
        assert!(parse(cut.as_bytes()).unwrap_err().to_string().contains("not well-formed XML"));
        let no_time = xml.replace("TIME_ABSOLUTE", "SOMETHING_ELSE");
        assert!(parse(no_time.as_bytes()).unwrap_err().to_string().contains("sample interval"));
        let bad_digit = xml.replacen("<digits>", "<digits>1 2 x ", 1);
        assert!(parse(bad_digit.as_bytes()).unwrap_err().to_string().contains("is not a number"));
        let ragged = xml.replacen("<digits>", "<digits>1 ", 1);
        assert!(parse(ragged.as_bytes()).unwrap_err().to_string().contains("samples where"));
        let zero = xml.replace("<increment value=\"0.002\" unit=\"s\"/>\n              </value>\n            </sequence>\n          </component>\n          <component>", "<increment value=\"0\" unit=\"s\"/>\n              </value>\n            </sequence>\n          </component>\n          <component>");
        assert!(parse(zero.as_bytes()).is_err());
        assert!(parse(b"<Other/>").unwrap_err().to_string().contains("not <AnnotatedECG>"));
    }

    #[test]
    fn hl7_timestamps_become_iso() {
        assert_eq!(hl7_time("20021122091000").as_deref(), Some("2002-11-22T09:10:00"));
        assert_eq!(hl7_time("20021122091000.5-0500").as_deref(), Some("2002-11-22T09:10:00.5-05:00"));
        assert_eq!(hl7_time("2002"), None);
    }
}
