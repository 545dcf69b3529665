//! ECG ingestion and computer-assisted measurement.
//!
//! This module owns everything that turns an uploaded ECG file into something an expert can
//! read: recognising the format ([`detect_format`]), parsing DICOM waveform, HL7 aECG, WFDB
//! (MIT) and CSV files into one normalised model ([`EcgRecord`]: named leads, samples in
//! microvolts, sample rate, acquisition time, device), detecting QRS complexes ([`qrs`]),
//! measuring heart rate, RR intervals and their variability, rhythm regularity and, for
//! 12-lead resting ECGs, PR, QRS, QT and QTc ([`measure`]), and the JSON view served to the
//! viewer ([`EcgView`], [`to_view`]).
//!
//! It is pure: parsers take bytes or text and return a `Result`, nothing here touches the
//! disk, the network or a clock. Hostile input yields an [`EcgError`] that says what was wrong,
//! never a panic. Every measurement is a computer-assisted pre-read for the expert, never a
//! diagnosis ([`PRE_READ_LABEL`]).

pub mod aecg;
pub mod beats;
pub mod csv;
pub mod dicom;
mod filter;
pub mod http;
pub mod measure;
pub mod muse;
pub mod philips;
pub mod qrs;
pub mod store;
mod view;
pub mod wfdb;

use serde::{Deserialize, Serialize};

pub use beats::BeatClass;
pub use measure::{analyze, Finding, Measurements, Rhythm};
pub use view::{to_view, EcgView, LeadView};

/// The text that accompanies every automated result shown to a user.
pub const PRE_READ_LABEL: &str = "Computer-assisted pre-read for the reviewing physician; \
     not a diagnosis. Automated measurements must be confirmed by a qualified reader.";

/// Largest sample rate accepted from any file, in Hz.
pub const MAX_SAMPLE_RATE_HZ: f64 = 20_000.0;
/// Largest number of samples (all leads together) accepted from any file: a 24-hour
/// two-lead Holter at 360 Hz holds about 62 million.
pub const MAX_TOTAL_SAMPLES: u64 = 100_000_000;
/// Largest number of leads accepted from any file.
pub const MAX_LEADS: usize = 64;

/// One recording, whatever file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct EcgRecord {
    /// Samples per second of every lead.
    pub sample_rate_hz: f64,
    /// The leads, all of the same length.
    pub leads: Vec<Lead>,
    /// When the recording started, ISO 8601 (with its UTC offset when the file gives one).
    pub acquisition_time: Option<String>,
    /// Manufacturer and model of the recording device, when the file names them.
    pub device: Option<String>,
    /// The format the record was read from.
    pub source_format: EcgFormat,
    /// Reference beat times in seconds from the start, when the file carries them (WFDB
    /// `.atr` annotations, the cart's beat fiducials in a DICOM file).
    pub reference_beats_s: Option<Vec<f64>>,
    /// The recording device's own measurements, when the file carries them.
    pub device_measurements: Option<DeviceMeasurements>,
}

/// One lead of a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    /// Standard name (`I`, `II`, `III`, `aVR`, `aVL`, `aVF`, `V1`..`V6`) when the source
    /// identifies a standard lead, otherwise the name the file gives (e.g. `MLII`).
    pub name: String,
    /// Samples in microvolts.
    pub samples_uv: Vec<i32>,
}

/// The file formats this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EcgFormat {
    /// DICOM waveform (12-lead ECG, General ECG IODs).
    DicomWaveform,
    /// HL7 v3 annotated ECG (aECG) XML.
    #[serde(rename = "hl7-aecg")]
    HL7aECG,
    /// WFDB / MIT format: `.hea` header, `.dat` signals, optional `.atr` annotations.
    Wfdb,
    /// The CSV layout described in `docs/ecg.md`.
    Csv,
    /// GE MUSE XML (`RestingECG`), the export of GE carts.
    GeMuseXml,
    /// Philips XML (`restingecgdata`, XLI-compressed waveforms), the export of Philips carts.
    PhilipsXml,
}

/// Measurements the recording device computed itself, as carried in the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct DeviceMeasurements {
    /// The cart's heart rate (ventricular rate), beats per minute.
    pub heart_rate_bpm: Option<f64>,
    /// The cart's atrial rate, when it gives one.
    pub atrial_rate_bpm: Option<f64>,
    pub rr_ms: Option<f64>,
    pub pp_ms: Option<f64>,
    pub pr_ms: Option<f64>,
    pub qrs_ms: Option<f64>,
    pub qt_ms: Option<f64>,
    pub qtc_ms: Option<f64>,
    pub p_axis_deg: Option<f64>,
    pub qrs_axis_deg: Option<f64>,
    pub t_axis_deg: Option<f64>,
    /// The device's beat fiducial points, in seconds from the start of the rhythm data.
    pub beats_s: Vec<f64>,
    /// Free-text statements of the device's interpretation, verbatim.
    pub statements: Vec<String>,
}

/// Why a file could not be read. The text is meant for the uploading user.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EcgError {
    #[error("no file was given")]
    NoFiles,
    #[error(
        "{name}: not a recognised ECG file (expected DICOM waveform, HL7 aECG XML, GE MUSE XML, Philips XML, \
         a WFDB record (.hea with .dat, optional .atr, or a .zip of them) or the documented CSV layout)"
    )]
    Unrecognised { name: String },
    #[error("WFDB record {record}: {what} is missing (upload the .hea, .dat and optional .atr files together, or one .zip holding them)")]
    MissingFile { record: String, what: String },
    #[error("WFDB header {file}, line {line}: {reason}")]
    WfdbHeader { file: String, line: usize, reason: String },
    #[error("truncated .dat: expected {expected} samples for {signals} signals, file holds {held}")]
    TruncatedDat { expected: u64, signals: usize, held: u64 },
    #[error("WFDB annotations {file}: {reason}")]
    Annotations { file: String, reason: String },
    #[error("CSV line {line}: {reason}")]
    Csv { line: usize, reason: String },
    #[error("HL7 aECG: {0}")]
    Aecg(String),
    #[error("GE MUSE XML: {0}")]
    Muse(String),
    #[error("Philips XML: {0}")]
    Philips(String),
    #[error("DICOM waveform: {0}")]
    Dicom(String),
    #[error("zip archive: {0}")]
    Zip(String),
    #[error("{0}")]
    Signal(String),
}

/// Decides which format a file is in, by its content. The name is used only where the
/// content cannot tell: WFDB `.dat` and `.atr` files are headerless binary and are
/// recognised by their extension as parts of a WFDB record. A `.zip` is recognised as a
/// WFDB record when it holds a `.hea` header.
pub fn detect_format(name: &str, bytes: &[u8]) -> Option<EcgFormat> {
    if dicom::looks_like_dicom(bytes) {
        return Some(EcgFormat::DicomWaveform);
    }
    if is_zip(bytes) {
        return zip_holds_wfdb_header(bytes).then_some(EcgFormat::Wfdb);
    }
    if muse::looks_like_muse(bytes) {
        return Some(EcgFormat::GeMuseXml);
    }
    if philips::looks_like_philips(bytes) {
        return Some(EcgFormat::PhilipsXml);
    }
    if aecg::looks_like_aecg(bytes) {
        return Some(EcgFormat::HL7aECG);
    }
    if wfdb::looks_like_header(name, bytes) {
        return Some(EcgFormat::Wfdb);
    }
    if csv::looks_like_csv(bytes) {
        return Some(EcgFormat::Csv);
    }
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".dat") || lower.ends_with(".atr") {
        return Some(EcgFormat::Wfdb);
    }
    None
}

/// Parses one recording from the uploaded files.
///
/// A DICOM, aECG, MUSE XML, Philips XML or CSV recording is one file. A WFDB record is either its files together
/// (`100.hea`, `100.dat`, optionally `100.atr`, matched by the names the header gives) or
/// one `.zip` holding them.
pub fn parse(files: &[(&str, &[u8])]) -> Result<EcgRecord, EcgError> {
    if files.is_empty() {
        return Err(EcgError::NoFiles);
    }
    let mut expanded: Vec<(String, Vec<u8>)> = Vec::new();
    let mut owned_any = false;
    for (_, bytes) in files {
        if is_zip(bytes) {
            expanded.extend(unzip(bytes)?);
            owned_any = true;
        }
    }
    let all: Vec<(&str, &[u8])> = if owned_any {
        files
            .iter()
            .filter(|(_, b)| !is_zip(b))
            .copied()
            .chain(expanded.iter().map(|(n, b)| (n.as_str(), b.as_slice())))
            .collect()
    } else {
        files.to_vec()
    };
    if all.iter().any(|(n, b)| wfdb::looks_like_header(n, b)) {
        return wfdb::parse_record(&all);
    }
    let Some(&(name, bytes)) = all.first() else {
        return Err(EcgError::NoFiles);
    };
    if all.len() > 1 {
        return Err(EcgError::Signal(format!(
            "{} files were given but none is a WFDB header (.hea); DICOM, aECG and CSV \
             recordings are uploaded one file each",
            all.len()
        )));
    }
    match detect_format(name, bytes) {
        Some(EcgFormat::DicomWaveform) => dicom::parse(bytes),
        Some(EcgFormat::HL7aECG) => aecg::parse(bytes),
        Some(EcgFormat::GeMuseXml) => muse::parse(bytes),
        Some(EcgFormat::PhilipsXml) => philips::parse(bytes),
        Some(EcgFormat::Csv) => csv::parse(bytes),
        Some(EcgFormat::Wfdb) => {
            Err(EcgError::MissingFile { record: file_stem(name).to_string(), what: "the .hea header".to_string() })
        }
        None => Err(EcgError::Unrecognised { name: name.to_string() }),
    }
}

impl EcgRecord {
    /// Number of samples per lead.
    pub fn samples_per_lead(&self) -> usize {
        self.leads.first().map_or(0, |l| l.samples_uv.len())
    }

    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        if self.sample_rate_hz > 0.0 {
            self.samples_per_lead() as f64 / self.sample_rate_hz
        } else {
            0.0
        }
    }

    /// The lead with this name (case-insensitive), if present.
    pub fn lead(&self, name: &str) -> Option<&Lead> {
        self.leads.iter().find(|l| l.name.eq_ignore_ascii_case(name))
    }

    /// Checks the invariants every parser promises: a sane sample rate, at least one lead,
    /// leads of equal length, bounded size.
    pub(crate) fn validated(self) -> Result<Self, EcgError> {
        check_sample_rate(self.sample_rate_hz)?;
        if self.leads.is_empty() {
            return Err(EcgError::Signal("the recording holds no lead".into()));
        }
        if self.leads.len() > MAX_LEADS {
            return Err(EcgError::Signal(format!("{} leads is more than the {MAX_LEADS} accepted", self.leads.len())));
        }
        let n = self.samples_per_lead();
        if n == 0 {
            return Err(EcgError::Signal("the recording holds no sample".into()));
        }
        if let Some(l) = self.leads.iter().find(|l| l.samples_uv.len() != n) {
            return Err(EcgError::Signal(format!(
                "lead {} has {} samples where the first lead has {n}",
                l.name,
                l.samples_uv.len()
            )));
        }
        Ok(self)
    }
}

pub(crate) fn check_sample_rate(fs: f64) -> Result<(), EcgError> {
    if (1.0..=MAX_SAMPLE_RATE_HZ).contains(&fs) {
        Ok(())
    } else {
        Err(EcgError::Signal(format!("sample rate {fs} Hz is out of the accepted range 1..={MAX_SAMPLE_RATE_HZ} Hz")))
    }
}

pub(crate) fn check_total_samples(total: u64) -> Result<(), EcgError> {
    if total > MAX_TOTAL_SAMPLES {
        Err(EcgError::Signal(format!("{total} samples is more than the {MAX_TOTAL_SAMPLES} accepted in one recording")))
    } else {
        Ok(())
    }
}

/// Converts a physical value to whole microvolts, saturating at the `i32` range.
pub(crate) fn to_uv(value: f64, uv_per_unit: f64) -> i32 {
    let v = (value * uv_per_unit).round();
    if v.is_nan() {
        0
    } else {
        v.clamp(i32::MIN as f64, i32::MAX as f64) as i32
    }
}

/// Microvolts per unit for the unit spellings ECG files use (UCUM and WFDB).
pub(crate) fn microvolts_per_unit(unit: &str) -> Option<f64> {
    match unit.trim() {
        "uV" | "µV" | "μV" | "microvolt" | "microvolts" | "UV" | "uv" => Some(1.0),
        "mV" | "millivolt" | "millivolts" | "MV" | "mv" => Some(1_000.0),
        "V" | "volt" | "volts" | "v" => Some(1_000_000.0),
        "nV" | "nv" => Some(0.001),
        _ => None,
    }
}

/// The standard spelling of a lead name, if it names one of the 12 standard leads
/// (`"avr"` → `"aVR"`, `"v1"` → `"V1"`); other names come back unchanged.
pub(crate) fn standard_lead_name(name: &str) -> String {
    const STANDARD: [&str; 12] = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"];
    let trimmed = name.trim();
    STANDARD.iter().find(|s| s.eq_ignore_ascii_case(trimmed)).map_or_else(|| trimmed.to_string(), |s| (*s).to_string())
}

pub(crate) fn file_stem(name: &str) -> &str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match base.rfind('.') {
        Some(i) if i > 0 => &base[..i],
        _ => base,
    }
}

fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// Whether a `.zip` holds a WFDB header; reads only the `.hea` entries.
fn zip_holds_wfdb_header(bytes: &[u8]) -> bool {
    use std::io::Read;
    let Ok(mut archive) = zip::ZipArchive::new(std::io::Cursor::new(bytes)) else {
        return false;
    };
    let headers: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .filter(|n| n.to_ascii_lowercase().ends_with(".hea"))
        .map(|n| n.into_owned())
        .collect();
    headers.iter().any(|name| {
        let Ok(entry) = archive.by_name(name) else {
            return false;
        };
        let mut text = Vec::new();
        entry.take(64 * 1024).read_to_end(&mut text).is_ok() && wfdb::looks_like_header(name, &text)
    })
}

/// Largest total size of the files unpacked from one `.zip`.
const MAX_UNZIPPED_BYTES: u64 = 512 * 1024 * 1024;
const MAX_ZIP_ENTRIES: usize = 64;

fn unzip(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, EcgError> {
    use std::io::Read;
    let zip_err = |e: zip::result::ZipError| EcgError::Zip(e.to_string());
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(zip_err)?;
    if archive.len() > MAX_ZIP_ENTRIES {
        return Err(EcgError::Zip(format!("{} entries is more than the {MAX_ZIP_ENTRIES} accepted", archive.len())));
    }
    let mut out = Vec::new();
    let mut budget = MAX_UNZIPPED_BYTES;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(zip_err)?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map_err(|e| EcgError::Zip(e.to_string()))?.to_string();
        let mut data = Vec::new();
        let read = entry
            .by_ref()
            .take(budget + 1)
            .read_to_end(&mut data)
            .map_err(|e| EcgError::Zip(format!("{name}: {e}")))?;
        if read as u64 > budget {
            return Err(EcgError::Zip(format!("the files unpack to more than {MAX_UNZIPPED_BYTES} bytes")));
        }
        budget -= read as u64;
        out.push((name, data));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_to_standard_spelling() {
        assert_eq!(standard_lead_name("avr"), "aVR");
        assert_eq!(standard_lead_name(" v5 "), "V5");
        assert_eq!(standard_lead_name("MLII"), "MLII");
    }

    #[test]
    fn stems_drop_folders_and_extension() {
        assert_eq!(file_stem("mitdb/100.hea"), "100");
        assert_eq!(file_stem("100"), "100");
        assert_eq!(file_stem(".hidden"), ".hidden");
    }

    #[test]
    fn nothing_or_garbage_is_refused_with_a_reason() {
        assert_eq!(parse(&[]), Err(EcgError::NoFiles));
        let err = parse(&[("x.bin", &[0u8, 1, 2, 3][..])]).unwrap_err();
        assert!(err.to_string().starts_with("x.bin: not a recognised ECG file"));
        let err = parse(&[("100.dat", &[0u8; 30][..])]).unwrap_err();
        assert!(err.to_string().contains(".hea header is missing"), "{err}");
    }

    #[test]
    fn a_broken_zip_is_an_error() {
        let err = parse(&[("r.zip", &b"PK\x03\x04garbage"[..])]).unwrap_err();
        assert!(matches!(err, EcgError::Zip(_)), "{err}");
    }

    #[test]
    fn unit_conversion_saturates() {
        assert_eq!(to_uv(1.5, 1000.0), 1500);
        assert_eq!(to_uv(1e12, 1000.0), i32::MAX);
        assert_eq!(to_uv(f64::NAN, 1.0), 0);
        assert_eq!(microvolts_per_unit("mV"), Some(1000.0));
        assert_eq!(microvolts_per_unit("furlong"), None);
    }
}
