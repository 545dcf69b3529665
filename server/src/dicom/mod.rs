//! DICOM imaging: reading the identifying attributes of an uploaded DICOM file (study,
//! series and instance UIDs, modality, body part, dates, descriptions, patient), the
//! instance's attributes in the DICOM JSON model for DICOMweb, which transfer syntaxes the
//! server can decode ([`transfer_syntax_support`]), rendering frames to PNG or JPEG with a
//! window ([`render`]), and the DICOMweb services of a consultation ([`web`]).
//!
//! Parsing and rendering are pure (bytes in, values out) and built on the dicom-rs crates
//! (`dicom-object`, `dicom-pixeldata` with the JPEG, RLE, deflate and pure-Rust OpenJPEG
//! decoders); the HTTP side lives in [`web`].

pub mod multipart;
pub mod negotiate;
pub mod qido;
pub mod render;
pub mod store;

use crate::error::ErrorCode;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions, Tag};
use serde_json::Value;

/// Placeholder for the instance's DICOMweb URL in stored metadata; replaced when served.
pub const INSTANCE_URL_PLACEHOLDER: &str = "{instance}";

/// A DICOM file could not be read or rendered; the text is for the uploading user.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DicomError {
    #[error("not a readable DICOM file: {0}")]
    Unreadable(String),
    #[error("the DICOM file lacks {0}")]
    Missing(&'static str),
    #[error("transfer syntax {uid} ({name}) is not supported")]
    UnsupportedTransferSyntax { uid: String, name: String },
    #[error("the DICOM file holds no pixel data")]
    NoPixelData,
    #[error("frame {frame} does not exist; the image has {frames} frame(s)")]
    NoSuchFrame { frame: u32, frames: u32 },
    #[error("the pixel data cannot be decoded: {0}")]
    Decode(String),
    #[error("{0}")]
    BadRequest(String),
}

impl From<DicomError> for crate::error::ApiError {
    fn from(e: DicomError) -> Self {
        use crate::error::ApiError;
        use axum::http::StatusCode;
        match &e {
            DicomError::UnsupportedTransferSyntax { .. } => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedTransferSyntax,
                "Unsupported transfer syntax",
                e.to_string(),
            ),
            DicomError::NoSuchFrame { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NoSuchFrame, "Not found", e.to_string())
            }
            DicomError::BadRequest(_) => ApiError::bad_request(ErrorCode::InvalidRendering, e.to_string()),
            DicomError::NoPixelData => ApiError::unprocessable(ErrorCode::NotAnImage, e.to_string()),
            DicomError::Unreadable(_) | DicomError::Missing(_) => {
                ApiError::unprocessable(ErrorCode::InvalidDicom, e.to_string())
            }
            DicomError::Decode(_) => ApiError::unprocessable(ErrorCode::UndecodablePixelData, e.to_string()),
        }
    }
}

/// What the server knows how to decode, by transfer syntax UID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Supported(&'static str),
    Unsupported(&'static str),
}

/// Transfer syntaxes: the ones the issue requires (implicit and explicit VR little endian,
/// big endian, deflate, JPEG baseline/extended/lossless, RLE, JPEG 2000) are decoded; the
/// others are named so that the 415 answer can say which syntax it was.
pub fn transfer_syntax_support(uid: &str) -> Support {
    use Support::*;
    match uid.trim_end_matches(['\0', ' ']) {
        "1.2.840.10008.1.2" => Supported("Implicit VR Little Endian"),
        "1.2.840.10008.1.2.1" => Supported("Explicit VR Little Endian"),
        "1.2.840.10008.1.2.2" => Supported("Explicit VR Big Endian"),
        "1.2.840.10008.1.2.1.99" => Supported("Deflated Explicit VR Little Endian"),
        "1.2.840.10008.1.2.4.50" => Supported("JPEG Baseline (Process 1)"),
        "1.2.840.10008.1.2.4.51" => Supported("JPEG Extended (Process 2 & 4)"),
        "1.2.840.10008.1.2.4.57" => Supported("JPEG Lossless, Non-Hierarchical (Process 14)"),
        "1.2.840.10008.1.2.4.70" => Supported("JPEG Lossless, First-Order Prediction (Process 14 SV1)"),
        "1.2.840.10008.1.2.5" => Supported("RLE Lossless"),
        "1.2.840.10008.1.2.4.90" => Supported("JPEG 2000 Image Compression (Lossless Only)"),
        "1.2.840.10008.1.2.4.91" => Supported("JPEG 2000 Image Compression"),
        "1.2.840.10008.1.2.4.80" => Unsupported("JPEG-LS Lossless"),
        "1.2.840.10008.1.2.4.81" => Unsupported("JPEG-LS Near-Lossless"),
        "1.2.840.10008.1.2.4.92" | "1.2.840.10008.1.2.4.93" => Unsupported("JPEG 2000 Part 2 Multi-component"),
        "1.2.840.10008.1.2.4.94" | "1.2.840.10008.1.2.4.95" => Unsupported("JPIP Referenced"),
        "1.2.840.10008.1.2.4.100" | "1.2.840.10008.1.2.4.101" => Unsupported("MPEG-2 video"),
        "1.2.840.10008.1.2.4.102" | "1.2.840.10008.1.2.4.103" => Unsupported("MPEG-4 AVC/H.264 video"),
        "1.2.840.10008.1.2.4.104" | "1.2.840.10008.1.2.4.105" | "1.2.840.10008.1.2.4.106" => {
            Unsupported("MPEG-4 AVC/H.264 video")
        }
        "1.2.840.10008.1.2.4.107" | "1.2.840.10008.1.2.4.108" => Unsupported("HEVC/H.265 video"),
        "1.2.840.10008.1.2.4.110" | "1.2.840.10008.1.2.4.111" | "1.2.840.10008.1.2.4.112" => Unsupported("JPEG XL"),
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => {
            Unsupported("High-Throughput JPEG 2000")
        }
        _ => Unsupported("unknown transfer syntax"),
    }
}

/// Fails with [`DicomError::UnsupportedTransferSyntax`] unless the syntax can be decoded.
pub fn check_transfer_syntax(uid: &str) -> Result<(), DicomError> {
    match transfer_syntax_support(uid) {
        Support::Supported(_) => Ok(()),
        Support::Unsupported(name) => Err(DicomError::UnsupportedTransferSyntax {
            uid: uid.trim_end_matches(['\0', ' ']).to_string(),
            name: name.to_string(),
        }),
    }
}

/// The identifying attributes of one instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DicomInfo {
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
    pub rows: i64,
    pub columns: i64,
    pub frames: i64,
    /// The data set in the DICOM JSON model (PS3.18 F.2), bulk data as BulkDataURIs under
    /// [`INSTANCE_URL_PLACEHOLDER`].
    pub metadata: Value,
}

impl DicomInfo {
    /// Waveform IODs (12-lead ECG, general ECG, ambulatory ECG, ...) rather than images.
    pub fn is_waveform(&self) -> bool {
        self.sop_class_uid.starts_with("1.2.840.10008.5.1.4.1.1.9.")
    }
}

/// Opens a DICOM Part 10 file held in memory (128-byte preamble, `DICM`, file meta).
pub fn open(bytes: &[u8], until_pixel_data: bool) -> Result<DefaultDicomObject, DicomError> {
    let mut options = OpenFileOptions::new().read_preamble(ReadPreamble::Always);
    if until_pixel_data {
        options = options.read_until(tags::PIXEL_DATA);
    }
    options.from_reader(bytes).map_err(|e| DicomError::Unreadable(e.to_string()))
}

/// Reads the identifying attributes and the JSON model of an instance. The pixel data is not
/// read, so `bytes` may stop anywhere after the attributes that precede it.
pub fn parse_info(bytes: &[u8]) -> Result<DicomInfo, DicomError> {
    let obj = open(bytes, true)?;
    let text = |tag: Tag| -> String {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok().map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string()))
            .unwrap_or_default()
    };
    let int = |tag: Tag| -> Option<i64> { obj.element_opt(tag).ok().flatten().and_then(|e| e.to_int::<i64>().ok()) };
    let transfer_syntax = obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']).to_string();
    let mut info = DicomInfo {
        study_uid: text(tags::STUDY_INSTANCE_UID),
        series_uid: text(tags::SERIES_INSTANCE_UID),
        sop_instance_uid: text(tags::SOP_INSTANCE_UID),
        sop_class_uid: text(tags::SOP_CLASS_UID),
        modality: text(tags::MODALITY),
        body_part: text(tags::BODY_PART_EXAMINED),
        study_date: text(tags::STUDY_DATE),
        study_time: text(tags::STUDY_TIME),
        study_description: text(tags::STUDY_DESCRIPTION),
        series_description: text(tags::SERIES_DESCRIPTION),
        series_number: int(tags::SERIES_NUMBER),
        instance_number: int(tags::INSTANCE_NUMBER),
        accession_number: text(tags::ACCESSION_NUMBER),
        study_id: text(tags::STUDY_ID),
        patient_name: text(tags::PATIENT_NAME),
        patient_id: text(tags::PATIENT_ID),
        patient_birth_date: text(tags::PATIENT_BIRTH_DATE),
        patient_sex: text(tags::PATIENT_SEX),
        rows: int(tags::ROWS).unwrap_or(0),
        columns: int(tags::COLUMNS).unwrap_or(0),
        frames: 0,
        transfer_syntax,
        metadata: Value::Null,
    };
    if info.sop_instance_uid.is_empty() {
        info.sop_instance_uid = obj.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_string();
    }
    if info.sop_class_uid.is_empty() {
        info.sop_class_uid = obj.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string();
    }
    for (value, what) in [
        (&info.study_uid, "a Study Instance UID"),
        (&info.series_uid, "a Series Instance UID"),
        (&info.sop_instance_uid, "a SOP Instance UID"),
    ] {
        if value.is_empty() {
            return Err(DicomError::Missing(what));
        }
    }
    if info.rows > 0 {
        info.frames = int(tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    }
    let mut json = dicom_json::to_value(&*obj).map_err(|e| DicomError::Unreadable(e.to_string()))?;
    if let Value::Object(map) = &mut json {
        replace_bulk(map, "");
        let encapsulated = !matches!(
            info.transfer_syntax.as_str(),
            "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2" | "1.2.840.10008.1.2.1.99"
        );
        if encapsulated && int(tags::SAMPLES_PER_PIXEL) == Some(3) {
            // WADO-RS frames are served decoded, as interleaved RGB: say so to the viewer.
            map.insert("00280004".into(), serde_json::json!({"vr": "CS", "Value": ["RGB"]}));
            map.insert("00280006".into(), serde_json::json!({"vr": "US", "Value": [0]}));
        }
        if info.rows > 0 {
            let vr = if int(tags::BITS_ALLOCATED).unwrap_or(16) > 8 { "OW" } else { "OB" };
            map.insert(
                "7FE00010".into(),
                serde_json::json!({"vr": vr, "BulkDataURI": format!("{INSTANCE_URL_PLACEHOLDER}/bulk/7FE00010")}),
            );
        }
    }
    info.metadata = json;
    Ok(info)
}

/// Largest value kept inline in the JSON model; longer ones become `BulkDataURI`s.
pub const INLINE_MAX_BYTES: usize = 1024;

/// Replaces every binary value over [`INLINE_MAX_BYTES`] (base64 over 4/3 of it), at any
/// depth (a waveform's samples sit in the items of the Waveform Sequence), by a
/// `BulkDataURI`: `bulk/{tag}` at the top level, `bulk/{sequence}.{item}.{tag}` inside a
/// sequence item (items counted from 0).
fn replace_bulk(map: &mut serde_json::Map<String, Value>, prefix: &str) {
    for (tag, element) in map.iter_mut() {
        let path = format!("{prefix}{tag}");
        let long_inline =
            element.get("InlineBinary").and_then(Value::as_str).is_some_and(|s| s.len() > INLINE_MAX_BYTES * 4 / 3 + 4);
        if long_inline {
            let vr = element.get("vr").cloned().unwrap_or(Value::Null);
            *element = serde_json::json!({"vr": vr, "BulkDataURI": format!("{INSTANCE_URL_PLACEHOLDER}/bulk/{path}")});
            continue;
        }
        if element.get("vr").and_then(Value::as_str) == Some("SQ") {
            if let Some(items) = element.get_mut("Value").and_then(Value::as_array_mut) {
                for (n, item) in items.iter_mut().enumerate() {
                    if let Value::Object(item) = item {
                        replace_bulk(item, &format!("{path}.{n}."));
                    }
                }
            }
        }
    }
}

/// Whether the patient named in a DICOM file is the consultation's patient: the DICOM
/// Patient ID equals one of `known_ids`, or one of the name's component groups (alphabetic,
/// ideographic, phonetic) equals `name` once `^`, spaces and case are set aside. An empty
/// DICOM name and ID (an anonymised study) is not a mismatch.
pub fn patient_matches(dicom_name: &str, dicom_id: &str, name: &str, known_ids: &[&str]) -> bool {
    if dicom_name.trim().is_empty() && dicom_id.trim().is_empty() {
        return true;
    }
    let id = dicom_id.trim();
    if !id.is_empty() && known_ids.iter().any(|k| !k.is_empty() && k.trim().eq_ignore_ascii_case(id)) {
        return true;
    }
    let normal = |s: &str| -> String {
        s.chars().filter(|c| *c != '^' && !c.is_whitespace()).flat_map(char::to_lowercase).collect()
    };
    let wanted = normal(name);
    let reversed = {
        let parts: Vec<&str> = name.split_whitespace().collect();
        normal(&parts.iter().rev().copied().collect::<Vec<_>>().join(""))
    };
    !wanted.is_empty()
        && dicom_name.split('=').map(normal).any(|group| !group.is_empty() && (group == wanted || group == reversed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_syntaxes_required_by_the_issue_are_supported() {
        for uid in [
            "1.2.840.10008.1.2",
            "1.2.840.10008.1.2.1",
            "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.1.99",
            "1.2.840.10008.1.2.4.50",
            "1.2.840.10008.1.2.4.57",
            "1.2.840.10008.1.2.4.70",
            "1.2.840.10008.1.2.5",
            "1.2.840.10008.1.2.4.90",
            "1.2.840.10008.1.2.4.91\0",
        ] {
            assert!(check_transfer_syntax(uid).is_ok(), "{uid}");
        }
        let err = check_transfer_syntax("1.2.840.10008.1.2.4.80").unwrap_err();
        assert_eq!(err.to_string(), "transfer syntax 1.2.840.10008.1.2.4.80 (JPEG-LS Lossless) is not supported");
    }

    #[test]
    fn dicom_patients_are_matched_by_id_or_any_name_group() {
        assert!(patient_matches("Zhang^Xiuying=张^秀英=", "", "张秀英", &[]));
        assert!(patient_matches("ZHANG^XIUYING", "", "Xiuying Zhang", &[]));
        assert!(patient_matches("Other^Name", "110101195001011234", "张秀英", &["110101195001011234"]));
        assert!(patient_matches("", "", "张秀英", &[]));
        assert!(!patient_matches("CompressedSamples^CT1", "1CT1", "张秀英", &["p-1"]));
        assert!(!patient_matches("", "999", "张秀英", &["p-1"]));
    }
}
