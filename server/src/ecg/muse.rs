//! GE MUSE XML (`RestingECG`), the export of GE carts and the MUSE system.
//!
//! Reads the `Waveform` whose `WaveformType` is `Rhythm` (else the first): sample rate
//! `SampleBase` × 10^`SampleExponent`, and per `LeadData` the lead name (`LeadID`), the
//! samples (`WaveFormData`, base64 of little-endian 16-bit integers, `LeadSampleSize` 2),
//! `LeadAmplitudeUnitsPerBit` and `LeadAmplitudeUnits` (microvolts or millivolts). GE
//! stores the eight independent leads (I, II, V1–V6); III, aVR, aVL and aVF are derived
//! (III = II − I, aVR = −(I + II)/2, aVL = I − II/2, aVF = II − I/2), as the cart prints them.
//!
//! The cart's measurements (`RestingECGMeasurements`: ventricular and atrial rate, PR, QRS,
//! QT, QTc, axes; `QRSTimesTypes`: the time of each QRS in milliseconds and the global RR)
//! and its statements (`Diagnosis/DiagnosisStatement/StmtText`) are kept as
//! [`DeviceMeasurements`]; a value of 0 is the cart's "not measured" and is left out.

use base64::Engine;
use roxmltree::{Document, Node, ParsingOptions};

use super::{check_sample_rate, check_total_samples, to_uv, DeviceMeasurements, EcgError, EcgFormat, EcgRecord, Lead};

/// Whether `bytes` look like a GE MUSE XML export (root element `RestingECG`).
pub fn looks_like_muse(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    text.starts_with('<') && text.contains("<RestingECG")
}

fn fail(message: impl Into<String>) -> EcgError {
    EcgError::Muse(message.into())
}

/// Parses a GE MUSE XML document.
pub fn parse(bytes: &[u8]) -> Result<EcgRecord, EcgError> {
    parse_waveform(bytes, "Rhythm")
}

/// As [`parse`], from the `Waveform` of the given `WaveformType`: `Rhythm` (else the first
/// waveform), or e.g. `Median`, the cart's median beats (one representative beat per lead,
/// on which 12SL places the fiducials `POnset`, `QOnset`, `QOffset` and `TOffset` of
/// `RestingECGMeasurements`, in samples), which must then be present.
pub fn parse_waveform(bytes: &[u8], kind: &str) -> Result<EcgRecord, EcgError> {
    let text = decode_text(bytes);
    let text = text.trim_start_matches('\u{feff}');
    // MUSE files name an external DTD (restecg.dtd); it is not loaded, and roxmltree bounds
    // entity expansion.
    let doc = Document::parse_with_options(text, ParsingOptions { allow_dtd: true, ..ParsingOptions::default() })
        .map_err(|e| fail(format!("not well-formed XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "RestingECG" {
        return Err(fail(format!("the root element is <{}>, not <RestingECG>", root.tag_name().name())));
    }
    let waveforms: Vec<Node> = children(root, "Waveform").collect();
    let waveform = waveforms
        .iter()
        .find(|w| text_of(**w, "WaveformType").is_some_and(|t| t.eq_ignore_ascii_case(kind)))
        .or(waveforms.first().filter(|_| kind.eq_ignore_ascii_case("Rhythm")))
        .copied()
        .ok_or_else(|| fail(format!("the file holds no <Waveform> of type {kind}")))?;
    let base = number(waveform, "SampleBase").ok_or_else(|| fail("<SampleBase> (the sample rate) is missing"))?;
    let exponent = number(waveform, "SampleExponent").unwrap_or(0.0);
    if !(-3.0..=3.0).contains(&exponent) {
        return Err(fail(format!("<SampleExponent> {exponent} is out of range")));
    }
    let sample_rate_hz = base * 10f64.powf(exponent);
    check_sample_rate(sample_rate_hz)?;

    let mut leads: Vec<Lead> = Vec::new();
    let mut total: u64 = 0;
    for (index, data) in children(waveform, "LeadData").enumerate() {
        let name = text_of(data, "LeadID")
            .map(|n| super::standard_lead_name(&n))
            .unwrap_or_else(|| format!("channel {}", index + 1));
        let size = number(data, "LeadSampleSize").unwrap_or(2.0);
        if size != 2.0 {
            return Err(fail(format!("lead {name}: {size}-byte samples are not supported (2-byte samples are)")));
        }
        let per_bit = number(data, "LeadAmplitudeUnitsPerBit").unwrap_or(1.0);
        let unit = text_of(data, "LeadAmplitudeUnits").unwrap_or_else(|| "MICROVOLTS".into());
        let uv_per_unit = match unit.to_ascii_uppercase().as_str() {
            "MICROVOLTS" | "UV" => 1.0,
            "MILLIVOLTS" | "MV" => 1000.0,
            "VOLTS" | "V" => 1_000_000.0,
            other => return Err(fail(format!("lead {name}: amplitude units {other:?} are not a voltage"))),
        };
        let encoded: String = child(data, "WaveFormData")
            .and_then(|n| n.text())
            .ok_or_else(|| fail(format!("lead {name}: <WaveFormData> is missing")))?
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map_err(|e| fail(format!("lead {name}: <WaveFormData> is not base64: {e}")))?;
        let count = number(data, "LeadSampleCountTotal").map(|c| c as usize).unwrap_or(raw.len() / 2);
        if raw.len() / 2 < count {
            return Err(fail(format!(
                "lead {name}: <LeadSampleCountTotal> says {count} samples, <WaveFormData> holds {}",
                raw.len() / 2
            )));
        }
        total += count as u64;
        check_total_samples(total)?;
        let samples_uv = raw
            .chunks_exact(2)
            .take(count)
            .map(|p| to_uv(f64::from(i16::from_le_bytes([p[0], p[1]])) * per_bit, uv_per_unit))
            .collect();
        leads.push(Lead { name, samples_uv });
        if leads.len() > super::MAX_LEADS {
            return Err(fail(format!("more than {} leads", super::MAX_LEADS)));
        }
    }
    if leads.is_empty() {
        return Err(fail(format!("the {kind} <Waveform> holds no <LeadData>")));
    }
    let shortest = leads.iter().map(|l| l.samples_uv.len()).min().unwrap_or(0);
    if let Some(l) = leads.iter().find(|l| l.samples_uv.len() != shortest) {
        return Err(fail(format!("lead {} has {} samples where another has {shortest}", l.name, l.samples_uv.len())));
    }
    derive_limb_leads(&mut leads);

    let demographics = child(root, "TestDemographics");
    let acquisition_time = demographics.and_then(|d| {
        let date = text_of(d, "AcquisitionDate")?;
        let time = text_of(d, "AcquisitionTime").unwrap_or_else(|| "00:00:00".into());
        iso_datetime(&date, &time)
    });
    let device = demographics.and_then(|d| text_of(d, "AcquisitionDevice")).map(|d| format!("GE Healthcare {d}"));
    let device_measurements = Some(measurements(root));
    let reference_beats_s = device_measurements.as_ref().map(|m| m.beats_s.clone()).filter(|b| !b.is_empty());
    EcgRecord {
        sample_rate_hz,
        leads,
        acquisition_time,
        device,
        source_format: EcgFormat::GeMuseXml,
        reference_beats_s,
        device_measurements,
    }
    .validated()
}

/// UTF-8 as is; anything else (MUSE writes ISO-8859-1 too) byte by byte as Latin-1.
fn decode_text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => std::borrow::Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// Adds III, aVR, aVL and aVF from I and II when the file has I and II but not them.
fn derive_limb_leads(leads: &mut Vec<Lead>) {
    let find = |leads: &[Lead], name: &str| leads.iter().position(|l| l.name == name);
    let (Some(i), Some(ii)) = (find(leads, "I"), find(leads, "II")) else {
        return;
    };
    type Rule = fn(f64, f64) -> f64;
    let rules: [(&str, Rule); 4] = [
        ("III", |a, b| b - a),
        ("aVR", |a, b| -(a + b) / 2.0),
        ("aVL", |a, b| a - b / 2.0),
        ("aVF", |a, b| b - a / 2.0),
    ];
    let mut derived = Vec::new();
    for (name, rule) in rules {
        if find(leads, name).is_some() {
            continue;
        }
        let samples_uv = leads[i]
            .samples_uv
            .iter()
            .zip(&leads[ii].samples_uv)
            .map(|(&a, &b)| to_uv(rule(f64::from(a), f64::from(b)), 1.0))
            .collect();
        derived.push(Lead { name: name.to_string(), samples_uv });
    }
    // The standard order: I, II, III, aVR, aVL, aVF, then the rest as given.
    let at = find(leads, "II").map_or(leads.len(), |p| p + 1);
    for (k, lead) in derived.into_iter().enumerate() {
        leads.insert(at + k, lead);
    }
}

/// `MM-DD-YYYY` and `HH:MM:SS` → `YYYY-MM-DDTHH:MM:SS`.
fn iso_datetime(date: &str, time: &str) -> Option<String> {
    let parts: Vec<&str> = date.split('-').collect();
    let [month, day, year] = parts.as_slice() else {
        return None;
    };
    let ok = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    let time_ok = time.len() == 8 && time.split(':').all(|p| ok(p, 2));
    (ok(month, 2) && ok(day, 2) && ok(year, 4) && time_ok).then(|| format!("{year}-{month}-{day}T{time}"))
}

fn measurements(root: Node) -> DeviceMeasurements {
    let mut m = DeviceMeasurements::default();
    if let Some(r) = child(root, "RestingECGMeasurements") {
        let positive = |name: &'static str| number(r, name).filter(|v| *v > 0.0);
        m.heart_rate_bpm = positive("VentricularRate");
        m.atrial_rate_bpm = positive("AtrialRate");
        m.pr_ms = positive("PRInterval");
        m.qrs_ms = positive("QRSDuration");
        m.qt_ms = positive("QTInterval");
        m.qtc_ms = positive("QTCorrected");
        // An axis of 0 is a real axis; GE writes 999 where it could not measure one.
        let axis = |name: &'static str| number(r, name).filter(|v| v.abs() <= 360.0);
        m.p_axis_deg = axis("PAxis");
        m.qrs_axis_deg = axis("RAxis");
        m.t_axis_deg = axis("TAxis");
    }
    if let Some(times) = child(root, "QRSTimesTypes") {
        m.beats_s = children(times, "QRS").filter_map(|q| number(q, "Time")).map(|ms| ms / 1000.0).collect();
        m.beats_s.sort_by(f64::total_cmp);
        m.rr_ms = number(times, "GlobalRR").filter(|v| *v > 0.0);
    }
    if m.rr_ms.is_none() {
        m.rr_ms = m.heart_rate_bpm.map(|hr| (60_000.0 / hr).round());
    }
    if let Some(diagnosis) = child(root, "Diagnosis") {
        m.statements = children(diagnosis, "DiagnosisStatement").filter_map(|s| text_of(s, "StmtText")).collect();
    }
    m
}

fn children<'a, 'input: 'a>(node: Node<'a, 'input>, name: &'static str) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children().filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn child<'a, 'input>(node: Node<'a, 'input>, name: &'static str) -> Option<Node<'a, 'input>> {
    children(node, name).next()
}

fn text_of(node: Node, name: &'static str) -> Option<String> {
    let t = child(node, name)?.text()?.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn number(node: Node, name: &'static str) -> Option<f64> {
    text_of(node, name)?.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MUSE document with two leads (I and II) of known samples.
    fn document(extra: &str, lead_i: &[i16], lead_ii: &[i16]) -> String {
        let encode = |s: &[i16]| {
            let bytes: Vec<u8> = s.iter().flat_map(|v| v.to_le_bytes()).collect();
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        let lead = |id: &str, s: &[i16]| {
            format!(
                "<LeadData><LeadSampleCountTotal>{}</LeadSampleCountTotal><LeadAmplitudeUnitsPerBit>4.88\
                 </LeadAmplitudeUnitsPerBit><LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits><LeadID>{id}</LeadID>\
                 <LeadSampleSize>2</LeadSampleSize><WaveFormData>{}</WaveFormData></LeadData>",
                s.len(),
                encode(s)
            )
        };
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE RestingECG SYSTEM \"restecg.dtd\">\n<RestingECG>\
             <TestDemographics><AcquisitionDevice>MAC 5500</AcquisitionDevice><AcquisitionTime>08:05:09</AcquisitionTime>\
             <AcquisitionDate>03-14-2025</AcquisitionDate></TestDemographics>{extra}\
             <Waveform><WaveformType>Median</WaveformType><SampleBase>500</SampleBase>{}</Waveform>\
             <Waveform><WaveformType>Rhythm</WaveformType><SampleBase>250</SampleBase><SampleExponent>0</SampleExponent>{}{}</Waveform>\
             </RestingECG>",
            lead("I", &[1, 2]),
            lead("I", lead_i),
            lead("II", lead_ii)
        )
    }

    #[test]
    fn the_rhythm_waveform_is_read_and_limb_leads_derived() {
        let xml = document("", &[100, -50, 0, 10], &[200, 50, -20, 10]);
        assert!(looks_like_muse(xml.as_bytes()));
        let r = parse(xml.as_bytes()).unwrap();
        assert_eq!(r.sample_rate_hz, 250.0);
        let names: Vec<&str> = r.leads.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["I", "II", "III", "aVR", "aVL", "aVF"]);
        assert_eq!(r.lead("I").unwrap().samples_uv, [488, -244, 0, 49]);
        assert_eq!(r.lead("II").unwrap().samples_uv, [976, 244, -98, 49]);
        assert_eq!(r.lead("III").unwrap().samples_uv, [488, 488, -98, 0]);
        assert_eq!(r.lead("aVR").unwrap().samples_uv[0], -732);
        assert_eq!(r.acquisition_time.as_deref(), Some("2025-03-14T08:05:09"));
        assert_eq!(r.device.as_deref(), Some("GE Healthcare MAC 5500"));
        assert_eq!(r.source_format, EcgFormat::GeMuseXml);
    }

    #[test]
    fn measurements_and_qrs_times_are_the_carts() {
        let extra = "<RestingECGMeasurements><VentricularRate>75</VentricularRate><PRInterval>0</PRInterval>\
                     <QRSDuration>92</QRSDuration><QTInterval>380</QTInterval><QTCorrected>424</QTCorrected>\
                     <PAxis>999</PAxis><RAxis>0</RAxis></RestingECGMeasurements>\
                     <Diagnosis><DiagnosisStatement><StmtText>Atrial fibrillation</StmtText></DiagnosisStatement></Diagnosis>\
                     <QRSTimesTypes><QRS><Number>1</Number><Type>0</Type><Time>398</Time></QRS>\
                     <QRS><Number>2</Number><Type>0</Type><Time>1200</Time></QRS><GlobalRR>802</GlobalRR></QRSTimesTypes>";
        let r = parse(document(extra, &[0; 4], &[0; 4]).as_bytes()).unwrap();
        let m = r.device_measurements.unwrap();
        assert_eq!(m.heart_rate_bpm, Some(75.0));
        assert_eq!(m.pr_ms, None, "0 is not measured");
        assert_eq!((m.qrs_ms, m.qt_ms, m.qtc_ms), (Some(92.0), Some(380.0), Some(424.0)));
        assert_eq!((m.p_axis_deg, m.qrs_axis_deg), (None, Some(0.0)));
        assert_eq!(m.beats_s, [0.398, 1.2]);
        assert_eq!(m.rr_ms, Some(802.0));
        assert_eq!(m.statements, ["Atrial fibrillation"]);
        assert_eq!(r.reference_beats_s, Some(vec![0.398, 1.2]));
    }

    #[test]
    fn broken_documents_say_what_is_wrong() {
        let err = |xml: &str| parse(xml.as_bytes()).unwrap_err().to_string();
        assert!(err("<RestingECG><Waveform>").contains("not well-formed"));
        assert!(err("<Other/>").contains("not <RestingECG>"));
        assert!(err("<RestingECG></RestingECG>").contains("no <Waveform>"));
        assert!(
            err("<RestingECG><Waveform><SampleBase>500</SampleBase></Waveform></RestingECG>").contains("no <LeadData>")
        );
        let short = document("", &[1, 2, 3], &[1, 2]);
        assert!(err(&short).contains("lead I has 3 samples"), "{}", err(&short));
        let bad = document("", &[1], &[1]).replace("<WaveFormData>AQA=", "<WaveFormData>@@@");
        assert!(err(&bad).contains("not base64"), "{}", err(&bad));
        let lying = document("", &[1], &[1]).replacen("<LeadSampleCountTotal>1<", "<LeadSampleCountTotal>9<", 2);
        assert!(err(&lying).contains("holds"), "{}", err(&lying));
    }

    #[test]
    fn latin1_files_are_read() {
        let mut bytes = document("<Note>caf\u{e9}</Note>", &[1, 2], &[3, 4]).into_bytes();
        let at = bytes.windows(2).position(|w| w == [0xC3, 0xA9]).unwrap();
        bytes.splice(at..at + 2, [0xE9]);
        assert!(parse(&bytes).is_ok());
    }
}
