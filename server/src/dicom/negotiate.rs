//! DICOMweb content negotiation (PS3.18 8.7): of the media types and transfer syntaxes a
//! request's `Accept` allows, the first the server can produce; when it allows none, 406
//! instead of an answer the client did not ask for.

use super::render::Format;
use crate::error::ApiError;
use crate::error::ErrorCode;
use axum::http::{header, HeaderMap, StatusCode};

pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
pub const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";

/// One media range of an `Accept` header.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRange {
    /// `type/subtype`, lower case.
    pub media: String,
    /// Parameters other than `q`, names lower case, quotes removed.
    pub params: Vec<(String, String)>,
    pub q: f32,
}

impl MediaRange {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The ranges of an `Accept` value, highest `q` first (ties keep their order); `q=0` ranges
/// are dropped. Commas inside quoted parameter values do not split ranges.
pub fn parse_accept(value: &str) -> Vec<MediaRange> {
    let mut ranges = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut pieces = Vec::new();
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => pieces.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    pieces.push(current);
    for piece in pieces {
        let mut parts = piece.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let mut q = 1.0;
        let mut params = Vec::new();
        for p in parts {
            let Some((k, v)) = p.split_once('=') else { continue };
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim().trim_matches('"').to_string();
            if k == "q" {
                q = v.parse().unwrap_or(1.0);
            } else {
                params.push((k, v));
            }
        }
        if q > 0.0 {
            ranges.push(MediaRange { media, params, q });
        }
    }
    ranges.sort_by(|a, b| b.q.partial_cmp(&a.q).unwrap_or(std::cmp::Ordering::Equal));
    ranges
}

fn accept(headers: &HeaderMap) -> Vec<MediaRange> {
    let joined: Vec<&str> = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).collect();
    parse_accept(&joined.join(","))
}

pub fn not_acceptable(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_ACCEPTABLE, ErrorCode::NotAcceptable, "Not acceptable", detail)
}

/// Rendered resources: PNG or JPEG. `accept` is the `accept` query parameter, which takes
/// the place of the header when given.
pub fn rendered(headers: &HeaderMap, accept_param: Option<&str>) -> Result<Format, ApiError> {
    let ranges = match accept_param {
        Some(a) => parse_accept(a),
        None => accept(headers),
    };
    if ranges.is_empty() {
        return Ok(Format::Png);
    }
    for r in &ranges {
        match r.media.as_str() {
            "image/png" | "image/*" | "*/*" => return Ok(Format::Png),
            "image/jpeg" => return Ok(Format::Jpeg),
            _ => {}
        }
    }
    Err(not_acceptable("rendered images are served as image/png or image/jpeg"))
}

/// Whether a `multipart/related` range's `type` parameter allows `wanted` (absent, equal,
/// `*/*` or `major/*`).
fn type_allows(r: &MediaRange, wanted: &str) -> bool {
    match r.param("type") {
        None => true,
        Some(t) => {
            t.eq_ignore_ascii_case(wanted)
                || t == "*/*"
                || t.strip_suffix("/*").is_some_and(|major| wanted.split('/').next() == Some(major))
        }
    }
}

/// The transfer syntax a multipart range asks for: `None` for any (`*` or absent).
fn syntax_of(r: &MediaRange) -> Option<&str> {
    r.param("transfer-syntax").filter(|t| *t != "*")
}

/// Frames: native pixel data, labelled explicit or implicit VR little endian (the pixel
/// bytes are the same); no encapsulated syntax is produced.
pub fn frames(headers: &HeaderMap) -> Result<&'static str, ApiError> {
    let ranges = accept(headers);
    if ranges.is_empty() {
        return Ok(EXPLICIT_VR_LITTLE_ENDIAN);
    }
    for r in &ranges {
        let multipart_octets = r.media == "multipart/related" && type_allows(r, "application/octet-stream");
        if r.media == "*/*" || r.media == "multipart/*" {
            return Ok(EXPLICIT_VR_LITTLE_ENDIAN);
        }
        if multipart_octets {
            match syntax_of(r) {
                None | Some(EXPLICIT_VR_LITTLE_ENDIAN) => return Ok(EXPLICIT_VR_LITTLE_ENDIAN),
                Some(IMPLICIT_VR_LITTLE_ENDIAN) => return Ok(IMPLICIT_VR_LITTLE_ENDIAN),
                Some(_) => {}
            }
        }
    }
    Err(not_acceptable(
        "frames are served as multipart/related; type=\"application/octet-stream\" in explicit or implicit VR little endian",
    ))
}

/// Instances: the transfer syntax to send them in; `None` for as stored. The caller checks
/// that it can transcode to a named syntax.
pub fn instances(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let ranges = accept(headers);
    if ranges.is_empty() {
        return Ok(None);
    }
    for r in &ranges {
        if r.media == "*/*" || r.media == "multipart/*" {
            return Ok(None);
        }
        let multipart_dicom = r.media == "multipart/related" && type_allows(r, "application/dicom");
        if multipart_dicom {
            return Ok(syntax_of(r).map(str::to_string));
        }
    }
    Err(not_acceptable("instances are served as multipart/related; type=\"application/dicom\""))
}

/// QIDO results and metadata: the DICOM JSON model only.
pub fn dicom_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ranges = accept(headers);
    let ok = ranges.is_empty()
        || ranges.iter().any(|r| {
            matches!(r.media.as_str(), "application/dicom+json" | "application/json" | "application/*" | "*/*")
        });
    if ok {
        Ok(())
    } else {
        Err(not_acceptable("served as application/dicom+json only"))
    }
}

/// Bulk data: multipart/related octet-stream.
pub fn octet_stream(headers: &HeaderMap) -> Result<(), ApiError> {
    let ranges = accept(headers);
    let ok = ranges.is_empty()
        || ranges.iter().any(|r| {
            r.media == "*/*"
                || r.media == "multipart/*"
                || (r.media == "multipart/related"
                    && type_allows(r, "application/octet-stream")
                    && syntax_of(r).is_none_or(|t| t == EXPLICIT_VR_LITTLE_ENDIAN || t == IMPLICIT_VR_LITTLE_ENDIAN))
        });
    if ok {
        Ok(())
    } else {
        Err(not_acceptable("bulk data is served as multipart/related; type=\"application/octet-stream\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn accept_ranges_are_ordered_by_quality_and_keep_quoted_commas() {
        let r = parse_accept(
            r#"image/gif, image/jpeg;q=0.9, multipart/related; type="application/dicom"; transfer-syntax=*;q=0.5"#,
        );
        assert_eq!(
            r.iter().map(|m| m.media.as_str()).collect::<Vec<_>>(),
            ["image/gif", "image/jpeg", "multipart/related"]
        );
        assert_eq!(r[2].param("type"), Some("application/dicom"));
        assert_eq!(r[2].param("transfer-syntax"), Some("*"));
        assert!(parse_accept("image/png;q=0").is_empty());
    }

    #[test]
    fn what_cannot_be_produced_is_not_acceptable() {
        assert_eq!(rendered(&with_accept("image/gif"), None).unwrap_err().status.as_u16(), 406);
        assert!(matches!(rendered(&with_accept("image/gif, image/jpeg"), None), Ok(Format::Jpeg)));
        assert!(matches!(rendered(&HeaderMap::new(), Some("image/png")), Ok(Format::Png)));
        assert_eq!(
            frames(&with_accept(
                r#"multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.50"#
            ))
            .unwrap_err()
            .status
            .as_u16(),
            406
        );
        assert_eq!(
            frames(&with_accept(
                r#"multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2"#
            ))
            .unwrap(),
            IMPLICIT_VR_LITTLE_ENDIAN
        );
        assert_eq!(
            instances(&with_accept(
                r#"multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2"#
            ))
            .unwrap(),
            Some(IMPLICIT_VR_LITTLE_ENDIAN.to_string())
        );
        assert_eq!(
            instances(&with_accept(r#"multipart/related; type="application/dicom"; transfer-syntax=*"#)).unwrap(),
            None
        );
        assert!(instances(&with_accept("application/zip")).is_err());
        assert!(dicom_json(&with_accept(r#"multipart/related; type="application/dicom+xml""#)).is_err());
        assert!(dicom_json(&with_accept("application/dicom+json")).is_ok());
        assert!(octet_stream(&with_accept(r#"multipart/related; type="application/octet-stream""#)).is_ok());
        assert!(octet_stream(&with_accept("image/jpeg")).is_err());
        // dicomweb-client's default for bulk data and frames.
        assert!(octet_stream(&with_accept(r#"multipart/related; type="*/*""#)).is_ok());
        assert_eq!(frames(&with_accept(r#"multipart/related; type="*/*""#)).unwrap(), EXPLICIT_VR_LITTLE_ENDIAN);
        assert!(frames(&with_accept(r#"multipart/related; type="image/jpeg""#)).is_err());
    }
}
