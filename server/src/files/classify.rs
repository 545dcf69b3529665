//! What an uploaded file is, decided by its content, and the small header rules of serving
//! it: safe file names, `Content-Disposition` with RFC 5987 `filename*`, and byte ranges.
//! Pure functions, no I/O.

use crate::domain::files::FileKind;
use crate::ecg::EcgFormat;
use serde::Serialize;

/// How many leading bytes of a file classification looks at.
pub const HEAD_BYTES: usize = 64 * 1024;

/// The kinds of file a consultation accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A DICOM Part 10 file (image, or an ECG waveform once its SOP class is known).
    Dicom,
    Pdf,
    Jpeg,
    Png,
    /// An ECG recording in one of the formats of [`crate::ecg`].
    Ecg(EcgFormat),
}

impl Kind {
    /// The name stored and served (`dicom`, `pdf`, `jpeg`, `png`, `ecg`).
    pub fn as_str(self) -> &'static str {
        self.file_kind().as_str()
    }

    /// The kind stored and served, without the ECG format.
    pub fn file_kind(self) -> FileKind {
        match self {
            Kind::Dicom => FileKind::Dicom,
            Kind::Pdf => FileKind::Pdf,
            Kind::Jpeg => FileKind::Jpeg,
            Kind::Png => FileKind::Png,
            Kind::Ecg(_) => FileKind::Ecg,
        }
    }

    /// The ECG format name stored with an ECG file (`dicom-waveform`, `hl7-aecg`, `ge-muse-xml`, `philips-xml`, `wfdb`, `csv`).
    pub fn ecg_format(self) -> Option<&'static str> {
        match self {
            Kind::Ecg(EcgFormat::DicomWaveform) => Some("dicom-waveform"),
            Kind::Ecg(EcgFormat::HL7aECG) => Some("hl7-aecg"),
            Kind::Ecg(EcgFormat::Wfdb) => Some("wfdb"),
            Kind::Ecg(EcgFormat::Csv) => Some("csv"),
            Kind::Ecg(EcgFormat::GeMuseXml) => Some("ge-muse-xml"),
            Kind::Ecg(EcgFormat::PhilipsXml) => Some("philips-xml"),
            _ => None,
        }
    }

    /// The media type a download of this kind is served with.
    pub fn content_type(self, head: &[u8]) -> &'static str {
        match self {
            Kind::Dicom | Kind::Ecg(EcgFormat::DicomWaveform) => "application/dicom",
            Kind::Pdf => "application/pdf",
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Ecg(EcgFormat::HL7aECG | EcgFormat::GeMuseXml | EcgFormat::PhilipsXml) => "application/xml",
            Kind::Ecg(EcgFormat::Csv) => "text/csv; charset=utf-8",
            Kind::Ecg(EcgFormat::Wfdb) if is_zip(head) => "application/zip",
            Kind::Ecg(EcgFormat::Wfdb) if std::str::from_utf8(head).is_ok() => "text/plain; charset=utf-8",
            Kind::Ecg(EcgFormat::Wfdb) => "application/octet-stream",
        }
    }
}

pub fn is_dicom(head: &[u8]) -> bool {
    head.get(128..132) == Some(b"DICM")
}

pub fn is_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04")
}

/// Decides the kind from the leading bytes (see [`HEAD_BYTES`]; a `.zip` needs the whole file
/// to be recognised as a WFDB record). The name is consulted only where the content cannot
/// tell, through [`crate::ecg::detect_format`] (headerless WFDB `.dat`/`.atr` signal files).
pub fn classify(name: &str, head: &[u8]) -> Option<Kind> {
    if is_dicom(head) {
        return Some(Kind::Dicom);
    }
    if head.starts_with(b"%PDF-") {
        return Some(Kind::Pdf);
    }
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(Kind::Jpeg);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(Kind::Png);
    }
    crate::ecg::detect_format(name, head).map(Kind::Ecg)
}

/// Longest stored file name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A file name safe to store and to offer back in `Content-Disposition`: the last path
/// component only (both `/` and `\` separate), no control or format characters, no leading
/// dots (so never `.` or `..` or a hidden name), no characters Windows refuses, at most
/// [`MAX_NAME_CHARS`] characters keeping the extension; `file` if nothing is left.
pub fn sanitize_filename(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .map(|c| match c {
            ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() || is_format_char(c) => '_',
            c => c,
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim_end_matches(['.', ' ']).trim();
    let name = if trimmed.chars().all(|c| c == '_') { "" } else { trimmed };
    if name.is_empty() {
        return "file".to_string();
    }
    if name.chars().count() <= MAX_NAME_CHARS {
        return name.to_string();
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() && e.chars().count() <= 16 => (s, Some(e)),
        _ => (name, None),
    };
    let keep = MAX_NAME_CHARS - ext.map_or(0, |e| e.chars().count() + 1);
    let stem: String = stem.chars().take(keep).collect();
    match ext {
        Some(e) => format!("{stem}.{e}"),
        None => stem,
    }
}

/// Unicode format characters that can disguise a name (bidi overrides, zero-width).
fn is_format_char(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266 / RFC 5987):
/// the quoted ASCII fallback replaces anything non-ASCII, quotes and backslashes by `_`.
pub fn content_disposition(disposition: &str, name: &str) -> String {
    let fallback: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    if name.is_ascii() && fallback == name {
        return format!("{disposition}; filename=\"{fallback}\"");
    }
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// The outcome of reading a `Range` header against a file of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: serve everything (no header, another unit, or several ranges).
    Full,
    /// Serve bytes `start..end` (end exclusive) with 206.
    Partial { start: u64, end: u64 },
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

/// Reads one `bytes=` range (`a-b`, `a-`, `-n`). Several ranges are answered with the whole
/// file, which RFC 9110 allows.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeRequest::Full };
    let (a, b) = (a.trim(), b.trim());
    let parsed = if a.is_empty() {
        match b.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(n) => Some((size.saturating_sub(n), size)),
            Err(_) => None,
        }
    } else {
        match (a.parse::<u64>(), b) {
            (Ok(start), "") => Some((start, size)),
            (Ok(start), b) => match b.parse::<u64>() {
                Ok(last) if last >= start => Some((start, last.saturating_add(1).min(size))),
                _ => None,
            },
            _ => None,
        }
    };
    match parsed {
        None => RangeRequest::Full,
        Some((start, end)) if start >= size || start >= end => RangeRequest::Unsatisfiable,
        Some((start, end)) => RangeRequest::Partial { start, end },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dicom_head() -> Vec<u8> {
        let mut v = vec![0u8; 128];
        v.extend_from_slice(b"DICM\x02\x00\x00\x00");
        v
    }

    #[test]
    fn kinds_come_from_content_not_from_the_name() {
        assert_eq!(classify("scan.pdf", &dicom_head()), Some(Kind::Dicom));
        assert_eq!(classify("holiday.jpg", b"%PDF-1.7\n..."), Some(Kind::Pdf));
        assert_eq!(classify("report.pdf", &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]), Some(Kind::Jpeg));
        assert_eq!(classify("x.dcm", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some(Kind::Png));
        assert_eq!(classify("notes.pdf", b"#!/bin/sh\nrm -rf /\n"), None);
        assert_eq!(classify("empty.png", b""), None);
    }

    #[test]
    fn ecg_formats_are_recognised_through_the_ecg_module() {
        let aecg = br#"<?xml version="1.0"?><AnnotatedECG xmlns="urn:hl7-org:v3"><id root="1"/></AnnotatedECG>"#;
        assert_eq!(classify("trace.bin", aecg), Some(Kind::Ecg(EcgFormat::HL7aECG)));
        let hea =
            b"100 2 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n100.dat 212 200 11 1024 1011 20052 0 V5\n";
        assert_eq!(classify("100.hea", hea), Some(Kind::Ecg(EcgFormat::Wfdb)));
        assert_eq!(Kind::Ecg(EcgFormat::Wfdb).ecg_format(), Some("wfdb"));
        let muse =
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE RestingECG SYSTEM \"restecg.dtd\">\n<RestingECG>";
        assert_eq!(classify("export.xml", muse), Some(Kind::Ecg(EcgFormat::GeMuseXml)));
        assert_eq!(Kind::Ecg(EcgFormat::GeMuseXml).ecg_format(), Some("ge-muse-xml"));
        assert_eq!(Kind::Ecg(EcgFormat::GeMuseXml).content_type(muse), "application/xml");
        // Philips carts write UTF-16 with a byte order mark.
        let philips: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(
                "<?xml version=\"1.0\" encoding=\"utf-16\"?>\n<restingecgdata xmlns=\"http://www3.medical.philips.com\">"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert_eq!(classify("ecg.xml", &philips), Some(Kind::Ecg(EcgFormat::PhilipsXml)));
        assert_eq!(Kind::Ecg(EcgFormat::PhilipsXml).ecg_format(), Some("philips-xml"));
        assert_eq!(Kind::Ecg(EcgFormat::PhilipsXml).content_type(&philips), "application/xml");
    }

    #[test]
    fn path_traversal_and_control_characters_are_neutralised() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("..\\..\\windows\\system32\\cmd.exe"), "cmd.exe");
        assert_eq!(sanitize_filename(".."), "file");
        assert_eq!(sanitize_filename("/"), "file");
        assert_eq!(sanitize_filename(".bashrc"), "bashrc");
        assert_eq!(sanitize_filename("ecg\r\nSet-Cookie: x.xml"), "ecg__Set-Cookie_ x.xml");
        assert_eq!(sanitize_filename("a\u{202E}fdp.exe"), "a_fdp.exe");
        assert_eq!(sanitize_filename("心电图 2026-11-23.xml"), "心电图 2026-11-23.xml");
        assert_eq!(sanitize_filename("\0\0"), "file");
        let long = format!("{}.dcm", "x".repeat(500));
        let short = sanitize_filename(&long);
        assert_eq!(short.chars().count(), MAX_NAME_CHARS);
        assert!(short.ends_with(".dcm"));
    }

    #[test]
    fn content_disposition_has_an_ascii_fallback_and_rfc5987_name() {
        assert_eq!(content_disposition("attachment", "ct.dcm"), "attachment; filename=\"ct.dcm\"");
        assert_eq!(
            content_disposition("attachment", "心电图.xml"),
            "attachment; filename=\"___.xml\"; filename*=UTF-8''%E5%BF%83%E7%94%B5%E5%9B%BE.xml"
        );
        assert_eq!(
            content_disposition("inline", "a\"b.pdf"),
            "inline; filename=\"a_b.pdf\"; filename*=UTF-8''a%22b.pdf"
        );
    }

    #[test]
    fn ranges_follow_rfc9110() {
        assert_eq!(parse_range(None, 100), RangeRequest::Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), RangeRequest::Partial { start: 0, end: 10 });
        assert_eq!(parse_range(Some("bytes=90-"), 100), RangeRequest::Partial { start: 90, end: 100 });
        assert_eq!(parse_range(Some("bytes=-10"), 100), RangeRequest::Partial { start: 90, end: 100 });
        assert_eq!(parse_range(Some("bytes=-500"), 100), RangeRequest::Partial { start: 0, end: 100 });
        assert_eq!(parse_range(Some("bytes=50-5000"), 100), RangeRequest::Partial { start: 50, end: 100 });
        assert_eq!(parse_range(Some("bytes=100-"), 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=9-3"), 100), RangeRequest::Full);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), RangeRequest::Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), RangeRequest::Full);
    }
}
