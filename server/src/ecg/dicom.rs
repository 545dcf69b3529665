//! DICOM waveform files (12-lead ECG and General ECG IODs), read with dicom-rs.
//!
//! Reads one multiplex group of the Waveform Sequence (5400,0100): the first whose
//! Waveform Originality is ORIGINAL (the rhythm data, not a derived median beat), else the
//! longest. Samples are 8- or 16-bit, signed or unsigned, interleaved by channel; each
//! channel's value is `(sample × sensitivity + baseline) × correction factor` in the
//! sensitivity units, as PS3.3 C.10.9 and pydicom define it. Lead names come from the
//! Channel Source Sequence (SCPECG or MDC codes, else the code meaning), else the channel
//! label.
//!
//! The cart's own measurements in the Waveform Annotation Sequence (0040,B020) are kept as
//! [`DeviceMeasurements`]: RR, PP, PR, QRS, QT, QTc, axes, interpretation statements, and
//! the beat fiducial points. Carts that annotate a median beat as well (Mortara writes its
//! delineation in the lowest-numbered annotation group that holds fiducial points, then one
//! group per beat) have that first group left out of the beat list when the file holds a
//! derived multiplex group.

use dicom_core::value::{PrimitiveValue, Value};
use dicom_object::file::ReadPreamble;
use dicom_object::mem::{InMemDicomObject, InMemFragment};
use dicom_object::{OpenFileOptions, Tag};

use super::{
    check_sample_rate, check_total_samples, microvolts_per_unit, standard_lead_name, to_uv, DeviceMeasurements,
    EcgError, EcgFormat, EcgRecord, Lead,
};

mod tags {
    use dicom_object::Tag;
    pub const WAVEFORM_SEQUENCE: Tag = Tag(0x5400, 0x0100);
    pub const WAVEFORM_ORIGINALITY: Tag = Tag(0x003A, 0x0004);
    pub const NUMBER_OF_CHANNELS: Tag = Tag(0x003A, 0x0005);
    pub const NUMBER_OF_SAMPLES: Tag = Tag(0x003A, 0x0010);
    pub const SAMPLING_FREQUENCY: Tag = Tag(0x003A, 0x001A);
    pub const MULTIPLEX_GROUP_LABEL: Tag = Tag(0x003A, 0x0020);
    pub const CHANNEL_DEFINITION_SEQUENCE: Tag = Tag(0x003A, 0x0200);
    pub const CHANNEL_LABEL: Tag = Tag(0x003A, 0x0203);
    pub const CHANNEL_SOURCE_SEQUENCE: Tag = Tag(0x003A, 0x0208);
    pub const CHANNEL_SENSITIVITY: Tag = Tag(0x003A, 0x0210);
    pub const CHANNEL_SENSITIVITY_UNITS: Tag = Tag(0x003A, 0x0211);
    pub const CHANNEL_CORRECTION_FACTOR: Tag = Tag(0x003A, 0x0212);
    pub const CHANNEL_BASELINE: Tag = Tag(0x003A, 0x0213);
    pub const BITS_ALLOCATED: Tag = Tag(0x5400, 0x1004);
    pub const SAMPLE_INTERPRETATION: Tag = Tag(0x5400, 0x1006);
    pub const PADDING_VALUE: Tag = Tag(0x5400, 0x100A);
    pub const WAVEFORM_DATA: Tag = Tag(0x5400, 0x1010);
    pub const CODE_VALUE: Tag = Tag(0x0008, 0x0100);
    pub const CODING_SCHEME: Tag = Tag(0x0008, 0x0102);
    pub const CODE_MEANING: Tag = Tag(0x0008, 0x0104);
    pub const ANNOTATION_SEQUENCE: Tag = Tag(0x0040, 0xB020);
    pub const CONCEPT_NAME_CODE_SEQUENCE: Tag = Tag(0x0040, 0xA043);
    pub const NUMERIC_VALUE: Tag = Tag(0x0040, 0xA30A);
    pub const MEASUREMENT_UNITS: Tag = Tag(0x0040, 0x08EA);
    pub const UNFORMATTED_TEXT: Tag = Tag(0x0070, 0x0006);
    pub const REFERENCED_SAMPLE_POSITIONS: Tag = Tag(0x0040, 0xA132);
    pub const ANNOTATION_GROUP_NUMBER: Tag = Tag(0x0040, 0xA180);
    pub const ACQUISITION_DATETIME: Tag = Tag(0x0008, 0x002A);
    pub const ACQUISITION_DATE: Tag = Tag(0x0008, 0x0022);
    pub const ACQUISITION_TIME: Tag = Tag(0x0008, 0x0032);
    pub const CONTENT_DATE: Tag = Tag(0x0008, 0x0023);
    pub const CONTENT_TIME: Tag = Tag(0x0008, 0x0033);
    pub const TIMEZONE_OFFSET: Tag = Tag(0x0008, 0x0201);
    pub const MANUFACTURER: Tag = Tag(0x0008, 0x0070);
    pub const MODEL_NAME: Tag = Tag(0x0008, 0x1090);
}

/// Whether `bytes` are a DICOM Part 10 file (`DICM` after the 128-byte preamble).
pub fn looks_like_dicom(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM")
}

/// Parses a DICOM waveform file.
pub fn parse(bytes: &[u8]) -> Result<EcgRecord, EcgError> {
    if !looks_like_dicom(bytes) {
        return Err(fail("no DICM marker after the 128-byte preamble"));
    }
    check_declared_lengths(bytes)?;
    let object = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(bytes)
        .map_err(|e| EcgError::Dicom(format!("unreadable file: {e}")))?;
    let groups = items(&object, tags::WAVEFORM_SEQUENCE);
    if groups.is_empty() {
        return Err(fail("the file holds no Waveform Sequence (5400,0100); is it an image rather than an ECG?"));
    }
    let originality = |g: &InMemDicomObject| text(g, tags::WAVEFORM_ORIGINALITY);
    let has_derived = groups.iter().any(|g| originality(g).is_some_and(|o| o.eq_ignore_ascii_case("DERIVED")));
    let group = groups
        .iter()
        .find(|g| originality(g).is_some_and(|o| o.eq_ignore_ascii_case("ORIGINAL")))
        .or_else(|| groups.iter().max_by_key(|g| uint(g, tags::NUMBER_OF_SAMPLES).unwrap_or(0)))
        .ok_or_else(|| fail("the Waveform Sequence is empty"))?;
    let (sample_rate_hz, leads) = read_group(group)?;

    let device_measurements = device_measurements(&object, sample_rate_hz, has_derived);
    let reference_beats_s = device_measurements.as_ref().map(|m| m.beats_s.clone()).filter(|b| !b.is_empty());
    let device = match (text(&object, tags::MANUFACTURER), text(&object, tags::MODEL_NAME)) {
        (Some(a), Some(b)) => Some(format!("{a} {b}")),
        (a, b) => a.or(b),
    };
    EcgRecord {
        sample_rate_hz,
        leads,
        acquisition_time: acquisition_time(&object),
        device,
        source_format: EcgFormat::DicomWaveform,
        reference_beats_s,
        device_measurements,
    }
    .validated()
}

fn fail(message: &str) -> EcgError {
    EcgError::Dicom(message.to_string())
}

fn items(object: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    object.get(tag).and_then(|e| e.items()).unwrap_or_default()
}

fn text(object: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = object.get(tag)?.to_str().ok()?;
    let value = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!value.is_empty()).then(|| value.to_string())
}

fn float(object: &InMemDicomObject, tag: Tag) -> Option<f64> {
    text(object, tag)?.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn uint(object: &InMemDicomObject, tag: Tag) -> Option<u64> {
    object.get(tag)?.to_int::<u64>().ok()
}

fn read_group(group: &InMemDicomObject) -> Result<(f64, Vec<Lead>), EcgError> {
    let label = text(group, tags::MULTIPLEX_GROUP_LABEL).unwrap_or_else(|| "waveform".into());
    let channels = uint(group, tags::NUMBER_OF_CHANNELS)
        .ok_or_else(|| fail("Number of Waveform Channels (003A,0005) is missing"))?;
    let samples = uint(group, tags::NUMBER_OF_SAMPLES)
        .ok_or_else(|| fail("Number of Waveform Samples (003A,0010) is missing"))?;
    if channels == 0 || channels > super::MAX_LEADS as u64 {
        return Err(EcgError::Dicom(format!("{label}: {channels} channels is outside 1..={}", super::MAX_LEADS)));
    }
    check_total_samples(channels.saturating_mul(samples))?;
    let sample_rate_hz = float(group, tags::SAMPLING_FREQUENCY)
        .ok_or_else(|| fail("Sampling Frequency (003A,001A) is missing or not a number"))?;
    check_sample_rate(sample_rate_hz)?;
    let bits =
        uint(group, tags::BITS_ALLOCATED).ok_or_else(|| fail("Waveform Bits Allocated (5400,1004) is missing"))?;
    let interpretation = text(group, tags::SAMPLE_INTERPRETATION).unwrap_or_else(|| "SS".into());
    let signed = match (bits, interpretation.as_str()) {
        (16, "SS") | (8, "SB") => true,
        (16, "US") | (8, "UB") => false,
        _ => {
            return Err(EcgError::Dicom(format!(
                "{label}: {bits}-bit {interpretation} samples are not supported \
                 (supported: 16-bit SS/US, 8-bit SB/UB)"
            )))
        }
    };
    let definitions = items(group, tags::CHANNEL_DEFINITION_SEQUENCE);
    if definitions.len() as u64 != channels {
        return Err(EcgError::Dicom(format!(
            "{label}: {channels} channels announced, {} channel definitions given",
            definitions.len()
        )));
    }
    let data_element = group.get(tags::WAVEFORM_DATA).ok_or_else(|| fail("Waveform Data (5400,1010) is missing"))?;
    let raw = decode_samples(data_element.value(), bits, signed);
    let (channels, samples) = (channels as usize, samples as usize);
    let needed = channels * samples;
    if raw.len() < needed {
        return Err(EcgError::Dicom(format!(
            "{label}: Waveform Data holds {} samples, {channels} channels × {samples} samples need {needed}",
            raw.len()
        )));
    }
    let padding = group.get(tags::PADDING_VALUE).and_then(|e| decode_samples(e.value(), bits, signed).first().copied());

    let mut leads = Vec::with_capacity(channels);
    for (c, definition) in definitions.iter().enumerate() {
        let sensitivity = float(definition, tags::CHANNEL_SENSITIVITY).unwrap_or(1.0);
        let correction = float(definition, tags::CHANNEL_CORRECTION_FACTOR).unwrap_or(1.0);
        let baseline = float(definition, tags::CHANNEL_BASELINE).unwrap_or(0.0);
        let unit = items(definition, tags::CHANNEL_SENSITIVITY_UNITS)
            .first()
            .and_then(|u| text(u, tags::CODE_VALUE))
            .unwrap_or_else(|| "uV".into());
        let uv_per_unit = microvolts_per_unit(&unit)
            .ok_or_else(|| EcgError::Dicom(format!("{label}: channel {} is in {unit:?}, not a voltage", c + 1)))?;
        let samples_uv = raw
            .iter()
            .skip(c)
            .step_by(channels)
            .take(samples)
            .map(|&v| {
                if Some(v) == padding {
                    0
                } else {
                    to_uv((f64::from(v) * sensitivity + baseline) * correction, uv_per_unit)
                }
            })
            .collect();
        leads.push(Lead { name: channel_name(definition, c), samples_uv });
    }
    Ok((sample_rate_hz, leads))
}

fn decode_samples(value: &Value<InMemDicomObject, InMemFragment>, bits: u64, signed: bool) -> Vec<i32> {
    use PrimitiveValue as P;
    let Some(primitive) = value.primitive() else {
        return Vec::new();
    };
    match (primitive, bits) {
        (P::U16(v), 16) if signed => v.iter().map(|&x| i32::from(x as i16)).collect(),
        (P::U16(v), 16) => v.iter().map(|&x| i32::from(x)).collect(),
        (P::I16(v), 16) if signed => v.iter().map(|&x| i32::from(x)).collect(),
        (P::I16(v), 16) => v.iter().map(|&x| i32::from(x as u16)).collect(),
        (P::U8(v), 8) if signed => v.iter().map(|&x| i32::from(x as i8)).collect(),
        (P::U8(v), 8) => v.iter().map(|&x| i32::from(x)).collect(),
        (P::U8(v), 16) => v
            .chunks_exact(2)
            .map(|p| {
                let x = u16::from_le_bytes([p[0], p[1]]);
                if signed {
                    i32::from(x as i16)
                } else {
                    i32::from(x)
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn channel_name(definition: &InMemDicomObject, index: usize) -> String {
    let source = items(definition, tags::CHANNEL_SOURCE_SEQUENCE).first();
    if let Some(source) = source {
        if let Some(name) = text(source, tags::CODE_VALUE).and_then(|code| {
            let scheme = text(source, tags::CODING_SCHEME).unwrap_or_default();
            lead_from_code(&scheme, &code)
        }) {
            return name.to_string();
        }
        if let Some(meaning) = text(source, tags::CODE_MEANING) {
            let without_prefix =
                meaning.strip_prefix("Lead ").or_else(|| meaning.strip_prefix("lead ")).unwrap_or(&meaning);
            let without_note = without_prefix.split(" (").next().unwrap_or(without_prefix);
            return standard_lead_name(without_note);
        }
    }
    text(definition, tags::CHANNEL_LABEL)
        .map(|l| standard_lead_name(&l))
        .unwrap_or_else(|| format!("channel {}", index + 1))
}

/// SCPECG (`5.6.3-9-N`) and MDC (`2:N`) codes of the 12 standard leads.
fn lead_from_code(scheme: &str, code: &str) -> Option<&'static str> {
    let number = match scheme {
        "SCPECG" => code.strip_prefix("5.6.3-9-")?,
        "MDC" => code.strip_prefix("2:")?,
        _ => return None,
    };
    Some(match number {
        "1" => "I",
        "2" => "II",
        "61" => "III",
        "62" => "aVR",
        "63" => "aVL",
        "64" => "aVF",
        "3" => "V1",
        "4" => "V2",
        "5" => "V3",
        "6" => "V4",
        "7" => "V5",
        "8" => "V6",
        _ => return None,
    })
}

/// DICOM DT / DA+TM → ISO 8601, with the file's UTC offset when it gives one.
fn acquisition_time(object: &InMemDicomObject) -> Option<String> {
    let datetime = text(object, tags::ACQUISITION_DATETIME).or_else(|| {
        let (date, time) = (text(object, tags::ACQUISITION_DATE), text(object, tags::ACQUISITION_TIME));
        let (date, time) = match (date, time) {
            (Some(d), Some(t)) => (d, t),
            _ => (text(object, tags::CONTENT_DATE)?, text(object, tags::CONTENT_TIME)?),
        };
        Some(format!("{date}{time}"))
    })?;
    let with_zone = if datetime.contains(['+', '-']) {
        datetime
    } else {
        match text(object, tags::TIMEZONE_OFFSET) {
            Some(zone) => format!("{datetime}{zone}"),
            None => datetime,
        }
    };
    super::aecg::hl7_time(&with_zone)
}

fn device_measurements(
    object: &InMemDicomObject,
    sample_rate_hz: f64,
    has_derived_group: bool,
) -> Option<DeviceMeasurements> {
    let annotations = items(object, tags::ANNOTATION_SEQUENCE);
    if annotations.is_empty() {
        return None;
    }
    let mut m = DeviceMeasurements::default();
    let mut fiducials: Vec<(u64, f64)> = Vec::new();
    for a in annotations {
        if let Some(statement) = text(a, tags::UNFORMATTED_TEXT) {
            m.statements.push(statement);
            continue;
        }
        let Some(code) = items(a, tags::CONCEPT_NAME_CODE_SEQUENCE).first() else {
            continue;
        };
        let Some(concept) = concept(
            text(code, tags::CODING_SCHEME).as_deref(),
            text(code, tags::CODE_VALUE).as_deref(),
            text(code, tags::CODE_MEANING).as_deref(),
        ) else {
            continue;
        };
        if concept == Concept::FiducialPoint {
            let position = a.get(tags::REFERENCED_SAMPLE_POSITIONS).and_then(|e| e.to_int::<u64>().ok());
            if let Some(p) = position.filter(|&p| p >= 1) {
                let group = uint(a, tags::ANNOTATION_GROUP_NUMBER).unwrap_or(0);
                fiducials.push((group, (p - 1) as f64 / sample_rate_hz));
            }
            continue;
        }
        let Some(value) = float(a, tags::NUMERIC_VALUE) else {
            continue;
        };
        let unit = items(a, tags::MEASUREMENT_UNITS)
            .first()
            .and_then(|u| text(u, tags::CODE_VALUE))
            .unwrap_or_else(|| "ms".into());
        let ms = match unit.as_str() {
            "s" => value * 1000.0,
            "us" => value / 1000.0,
            _ => value,
        };
        // 0 is how carts write "not measured" for an interval or a rate.
        let interval = (ms > 0.0).then_some(ms);
        let rate = (value > 0.0).then_some(value);
        match concept {
            Concept::Rr => m.rr_ms = interval,
            Concept::Pp => m.pp_ms = interval,
            Concept::Pr => m.pr_ms = interval,
            Concept::Qrs => m.qrs_ms = interval,
            Concept::Qt => m.qt_ms = interval,
            Concept::Qtc => m.qtc_ms = interval,
            Concept::PAxis => m.p_axis_deg = Some(value),
            Concept::QrsAxis => m.qrs_axis_deg = Some(value),
            Concept::TAxis => m.t_axis_deg = Some(value),
            Concept::VentricularRate => m.heart_rate_bpm = rate,
            Concept::AtrialRate => m.atrial_rate_bpm = rate,
            Concept::FiducialPoint => {}
        }
    }
    if has_derived_group {
        if let Some(first_group) = fiducials.iter().map(|(g, _)| *g).min() {
            if fiducials.iter().any(|(g, _)| *g != first_group) {
                fiducials.retain(|(g, _)| *g != first_group);
            }
        }
    }
    m.beats_s = fiducials.into_iter().map(|(_, t)| t).collect();
    m.beats_s.sort_by(f64::total_cmp);
    Some(m)
}

/// The cart measurements this module reads from the Waveform Annotation Sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Concept {
    Rr,
    Pp,
    Pr,
    Qrs,
    Qt,
    Qtc,
    PAxis,
    QrsAxis,
    TAxis,
    VentricularRate,
    AtrialRate,
    FiducialPoint,
}

/// What an annotation's concept name is: by coding scheme and code value first (MDC as in
/// DICOM PS3.16 TID 3713 ECG Global Measurements, SCPECG, LOINC), by its code meaning only
/// when the code is not one of these (so a cart that writes its own wording, or a
/// translated meaning, is still read when its code is standard).
fn concept(scheme: Option<&str>, code: Option<&str>, meaning: Option<&str>) -> Option<Concept> {
    use Concept::*;
    let by_code = match (scheme.map(str::to_ascii_uppercase).as_deref(), code) {
        (Some("MDC"), Some(code)) => match code {
            "2:15872" => Some(Pr),
            "2:16156" => Some(Qrs),
            "2:16160" => Some(Qt),
            "2:15876" => Some(Qtc),
            "2:16128" => Some(PAxis),
            "2:16132" => Some(QrsAxis),
            "2:16136" => Some(TAxis),
            "2:16016" | "2:16770" => Some(VentricularRate),
            "2:16020" => Some(AtrialRate),
            _ => None,
        },
        (Some("SCPECG"), Some(code)) => match code {
            "5.10.2.1-3" => Some(Rr),
            "5.10.2.1-5" => Some(Pp),
            "5.13.5-7" => Some(Pr),
            "5.13.5-9" => Some(Qrs),
            "5.13.5-11" => Some(Qt),
            "5.10.2.5-5" => Some(Qtc),
            "5.10.3-11" => Some(PAxis),
            "5.10.3-13" => Some(QrsAxis),
            "5.10.3-15" => Some(TAxis),
            "5.10.2.5-1" => Some(VentricularRate),
            "5.7.1-3" => Some(FiducialPoint),
            _ => None,
        },
        (Some("LN"), Some(code)) => match code {
            "8625-6" => Some(Pr),
            "8633-0" => Some(Qrs),
            "8634-8" => Some(Qt),
            "8636-3" => Some(Qtc),
            "8626-4" => Some(PAxis),
            "8632-2" => Some(QrsAxis),
            "8638-9" => Some(TAxis),
            "8867-4" => Some(VentricularRate),
            _ => None,
        },
        _ => None,
    };
    by_code.or_else(|| {
        let meaning = meaning?.to_ascii_lowercase();
        let meaning = meaning.trim().trim_end_matches(" global").trim();
        Some(match meaning {
            "rr interval" => Rr,
            "pp interval" => Pp,
            "pr interval" => Pr,
            "qrs duration" => Qrs,
            "qt interval" => Qt,
            "qtc interval" => Qtc,
            "p axis" => PAxis,
            "qrs axis" | "r axis" => QrsAxis,
            "t axis" => TAxis,
            "ventricular heart rate" | "ventricular rate" | "heart rate" => VentricularRate,
            "atrial heart rate" | "atrial rate" => AtrialRate,
            "fiducial point" => FiducialPoint,
            _ => return None,
        })
    })
}

/// Refuses a file in which an element claims more bytes than the file holds, before
/// dicom-rs allocates a buffer of the claimed size. It walks the elements the way dicom-rs
/// tokenises them (explicit or implicit VR little endian; an unknown explicit VR reads as UN
/// with a 4-byte length), descending into sequences and items, so every length dicom-rs
/// will read has been checked against the bytes left.
fn check_declared_lengths(bytes: &[u8]) -> Result<(), EcgError> {
    const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
    const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
    const UNDEFINED: u32 = u32::MAX;
    let mut at = 132;
    let mut implicit = false;
    let mut in_meta = true;
    let mut transfer_syntax = String::new();
    while at < bytes.len() {
        let header = bytes.get(at..at + 8).ok_or_else(|| fail("the file ends inside an element header"))?;
        let group = u16::from_le_bytes([header[0], header[1]]);
        let element = u16::from_le_bytes([header[2], header[3]]);
        if in_meta && group != 0x0002 {
            in_meta = false;
            match transfer_syntax.as_str() {
                EXPLICIT_LE => {}
                IMPLICIT_LE => implicit = true,
                other => {
                    return Err(EcgError::Dicom(format!(
                        "transfer syntax {other:?} is not supported for waveforms \
                         (supported: explicit and implicit VR little endian)"
                    )))
                }
            }
        }
        let (len, header_len, is_sequence) = if group == 0xFFFE {
            let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            // items hold data sets: walk into them; delimiters have no value
            (len, 8, true)
        } else if implicit {
            let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let starts_with_item =
                len != UNDEFINED && bytes.get(at + 8..at + 12) == Some(&[0xFE, 0xFF, 0x00, 0xE0][..]);
            (len, 8, len == UNDEFINED || starts_with_item)
        } else {
            let vr = [header[4], header[5]];
            let short_form = matches!(
                &vr,
                b"AE"
                    | b"AS"
                    | b"AT"
                    | b"CS"
                    | b"DA"
                    | b"DS"
                    | b"DT"
                    | b"FL"
                    | b"FD"
                    | b"IS"
                    | b"LO"
                    | b"LT"
                    | b"PN"
                    | b"SH"
                    | b"SL"
                    | b"SS"
                    | b"ST"
                    | b"TM"
                    | b"UI"
                    | b"UL"
                    | b"US"
            );
            if short_form {
                (u32::from(u16::from_le_bytes([header[6], header[7]])), 8, false)
            } else {
                let l = bytes.get(at + 8..at + 12).ok_or_else(|| fail("the file ends inside an element header"))?;
                let len = u32::from_le_bytes([l[0], l[1], l[2], l[3]]);
                (len, 12, &vr == b"SQ")
            }
        };
        at += header_len;
        if (group, element) == (0x7FE0, 0x0010) {
            return Err(fail("the file holds pixel data: it is an image, not a waveform"));
        }
        if len == UNDEFINED {
            if is_sequence {
                continue;
            }
            return Err(EcgError::Dicom(format!(
                "element ({group:04X},{element:04X}) has an undefined length but is not a sequence"
            )));
        }
        let len = len as usize;
        let left = bytes.len() - at;
        if len > left {
            return Err(EcgError::Dicom(format!(
                "element ({group:04X},{element:04X}) claims {len} bytes, the file holds {left} \
                 after it: truncated or corrupt file"
            )));
        }
        if (group, element) == (0x0002, 0x0010) {
            transfer_syntax = String::from_utf8_lossy(&bytes[at..at + len]).trim_end_matches(['\0', ' ']).to_string();
        }
        if !is_sequence {
            at += len;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_concepts_are_read_by_code_before_meaning() {
        use Concept::*;
        assert_eq!(concept(Some("MDC"), Some("2:15872"), Some("PR interval global")), Some(Pr));
        // The code decides, whatever the meaning says (a translated or vendor wording).
        assert_eq!(concept(Some("MDC"), Some("2:16160"), Some("QT-Zeit")), Some(Qt));
        assert_eq!(concept(Some("MDC"), Some("2:15876"), None), Some(Qtc));
        assert_eq!(concept(Some("MDC"), Some("2:16016"), Some("Ventricular Heart Rate")), Some(VentricularRate));
        assert_eq!(concept(Some("SCPECG"), Some("5.10.2.5-1"), None), Some(VentricularRate));
        assert_eq!(concept(Some("SCPECG"), Some("5.13.5-9"), Some("whatever")), Some(Qrs));
        assert_eq!(concept(Some("LN"), Some("8634-8"), None), Some(Qt));
        // Unknown codes fall back to the meaning, case and " global" aside.
        assert_eq!(concept(Some("99LOCAL"), Some("x"), Some("QRS Duration Global")), Some(Qrs));
        assert_eq!(concept(None, None, Some("Fiducial Point")), Some(FiducialPoint));
        assert_eq!(concept(Some("MDC"), Some("10:256"), Some("P wave")), None);
    }

    #[test]
    fn standard_codes_name_the_leads() {
        assert_eq!(lead_from_code("SCPECG", "5.6.3-9-62"), Some("aVR"));
        assert_eq!(lead_from_code("MDC", "2:8"), Some("V6"));
        assert_eq!(lead_from_code("LN", "2:8"), None);
    }

    #[test]
    fn non_dicom_and_tiny_inputs_are_errors() {
        assert!(parse(b"hello").is_err());
        let mut fake = vec![0u8; 132];
        fake[128..132].copy_from_slice(b"DICM");
        assert!(parse(&fake).is_err());
        fake.extend([0x02, 0x00, 0x10, 0x00, b'U', b'I', 0xFF, 0x7F]);
        let err = parse(&fake).unwrap_err();
        assert!(matches!(err, EcgError::Dicom(_)), "{err}");
    }

    #[test]
    fn a_length_beyond_the_file_is_refused_before_reading() {
        let mut file = vec![0u8; 128];
        file.extend(b"DICM");
        file.extend([0x02, 0x00, 0x10, 0x00, b'U', b'I', 20, 0]);
        file.extend(b"1.2.840.10008.1.2.1\0");
        // an unknown VR reads as UN with a 4-byte length: here almost 4 GiB
        file.extend([0x08, 0x00, 0x70, 0x00, b'z', b'z', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF]);
        file.extend([0u8; 64]);
        let err = parse(&file).unwrap_err();
        assert!(err.to_string().contains("(0008,0070) claims 4294967280 bytes"), "{err}");
    }
}
