//! Rendering one frame of a DICOM image to PNG or JPEG: decode (any supported transfer
//! syntax), apply the modality LUT (rescale) and a window (the file's own, a named preset or
//! one given by the viewer), invert MONOCHROME1, and encode. Pure: bytes in, bytes out.

use super::{check_transfer_syntax, open, DicomError};
use dicom_pixeldata::{ConvertOptions, PhotometricInterpretation, PixelDecoder, VoiLutOption};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "png" | "image/png" => Some(Format::Png),
            "jpeg" | "jpg" | "image/jpeg" => Some(Format::Jpeg),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
        }
    }
}

/// Which window to apply to a monochrome image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    /// The file's first window (or a min-max stretch when it has none).
    Default,
    /// Centre and width in output units of the modality LUT (Hounsfield units for CT).
    Given { center: f64, width: f64 },
}

/// Named windows for CT, in Hounsfield units: (name, centre, width).
pub const PRESETS: [(&str, f64, f64); 6] = [
    ("brain", 40.0, 80.0),
    ("soft_tissue", 40.0, 400.0),
    ("abdomen", 60.0, 400.0),
    ("liver", 60.0, 160.0),
    ("lung", -600.0, 1500.0),
    ("bone", 400.0, 1800.0),
];

impl Window {
    /// From the query parameters `preset`, `wc` and `ww` (both or neither).
    pub fn from_query(preset: Option<&str>, wc: Option<f64>, ww: Option<f64>) -> Result<Window, DicomError> {
        match (preset, wc, ww) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                Err(DicomError::BadRequest("give either a preset or wc and ww, not both".into()))
            }
            (Some(name), None, None) => PRESETS
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
                .map(|&(_, center, width)| Window::Given { center, width })
                .ok_or_else(|| {
                    let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
                    DicomError::BadRequest(format!("unknown preset {name:?}; known: {}", names.join(", ")))
                }),
            (None, Some(center), Some(width)) if width >= 1.0 && center.is_finite() && width.is_finite() => {
                Ok(Window::Given { center, width })
            }
            (None, Some(_), Some(_)) => Err(DicomError::BadRequest("ww must be at least 1".into())),
            (None, Some(_), None) | (None, None, Some(_)) => {
                Err(DicomError::BadRequest("wc and ww are given together".into()))
            }
            (None, None, None) => Ok(Window::Default),
        }
    }
}

/// An 8-bit frame ready to encode: grey (1 sample per pixel) or RGB (3).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame8 {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data: Vec<u8>,
}

/// Decodes frame `frame` (1-based, as in DICOMweb) of a DICOM file to 8 bits per sample.
pub fn decode_frame(bytes: &[u8], frame: u32, window: Window) -> Result<Frame8, DicomError> {
    let obj = open(bytes, false)?;
    check_transfer_syntax(obj.meta().transfer_syntax())?;
    if obj.element_opt(dicom_dictionary_std::tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(DicomError::NoPixelData);
    }
    let frames = obj
        .element_opt(dicom_dictionary_std::tags::NUMBER_OF_FRAMES)
        .ok()
        .flatten()
        .and_then(|e| e.to_int::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    if frame == 0 || frame > frames {
        return Err(DicomError::NoSuchFrame { frame, frames });
    }
    let decoded = obj.decode_pixel_data_frame(frame - 1).map_err(|e| DicomError::Decode(e.to_string()))?;
    let (width, height) = (decoded.columns(), decoded.rows());
    let pixels = width as usize * height as usize;
    let samples = decoded.samples_per_pixel();
    if samples == 1 {
        // Modality LUT (rescale) by the library; the window here, so any bit depth works.
        let options = ConvertOptions::new().with_voi_lut(VoiLutOption::Identity);
        let values: Vec<f32> =
            decoded.to_vec_frame_with_options(0, &options).map_err(|e| DicomError::Decode(e.to_string()))?;
        let values = values.get(..pixels).ok_or_else(|| DicomError::Decode("short pixel data".into()))?;
        let (center, window_width) = match window {
            Window::Given { center, width } => (center, width),
            Window::Default => match decoded.window().ok().flatten().and_then(|w| w.first().copied()) {
                Some(w) if w.width >= 1.0 => (w.center, w.width),
                _ => min_max_window(values),
            },
        };
        let mut data = apply_window(values, center, window_width);
        if decoded.photometric_interpretation() == &PhotometricInterpretation::Monochrome1 {
            data.iter_mut().for_each(|v| *v = 255 - *v);
        }
        return Ok(Frame8 { width, height, channels: 1, data });
    }
    if samples != 3 {
        return Err(DicomError::Decode(format!("{samples} samples per pixel are not supported")));
    }
    let raw = decoded.frame_data(0).map_err(|e| DicomError::Decode(e.to_string()))?;
    let mut rgb: Vec<u8> = if decoded.bits_allocated() == 8 {
        if decoded.planar_configuration() == dicom_pixeldata::PlanarConfiguration::Standard {
            raw.get(..pixels * 3).map(<[u8]>::to_vec).ok_or_else(|| DicomError::Decode("short pixel data".into()))?
        } else {
            let plane = raw.get(..pixels * 3).ok_or_else(|| DicomError::Decode("short pixel data".into()))?;
            (0..pixels).flat_map(|i| [plane[i], plane[pixels + i], plane[2 * pixels + i]]).collect()
        }
    } else {
        let options = ConvertOptions::new().with_voi_lut(VoiLutOption::Normalize);
        decoded.to_vec_frame_with_options(0, &options).map_err(|e| DicomError::Decode(e.to_string()))?
    };
    if matches!(decoded.photometric_interpretation(), PhotometricInterpretation::YbrFull) {
        ybr_full_to_rgb(&mut rgb);
    }
    Ok(Frame8 { width, height, channels: 3, data: rgb })
}

/// A window spanning the frame's values, for images that name none.
fn min_max_window(values: &[f32]) -> (f64, f64) {
    let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let width = (hi - lo) as f64 + 1.0;
    (lo as f64 + width / 2.0 - 0.5, width)
}

/// The linear VOI window of PS3.3 C.11.2.1.2.1 onto 0..=255.
pub fn apply_window(values: &[f32], center: f64, width: f64) -> Vec<u8> {
    let (c, w) = (center as f32 - 0.5, (width as f32 - 1.0).max(1.0));
    let (low, high) = (c - w / 2.0, c + w / 2.0);
    values
        .iter()
        .map(|&x| {
            if x <= low {
                0
            } else if x > high {
                255
            } else {
                (((x - c) / w + 0.5) * 255.0).round().clamp(0.0, 255.0) as u8
            }
        })
        .collect()
}

/// YCbCr (full range, PS3.3 C.7.6.3.1.2) to RGB, in place.
fn ybr_full_to_rgb(data: &mut [u8]) {
    for px in data.chunks_exact_mut(3) {
        let (y, cb, cr) = (px[0] as f32, px[1] as f32 - 128.0, px[2] as f32 - 128.0);
        px[0] = (y + 1.402 * cr).round().clamp(0.0, 255.0) as u8;
        px[1] = (y - 0.344_136 * cb - 0.714_136 * cr).round().clamp(0.0, 255.0) as u8;
        px[2] = (y + 1.772 * cb).round().clamp(0.0, 255.0) as u8;
    }
}

/// Encodes an 8-bit frame.
pub fn encode(frame: &Frame8, format: Format) -> Result<Vec<u8>, DicomError> {
    let mut out = Vec::new();
    match format {
        Format::Png => {
            let mut encoder = png::Encoder::new(&mut out, frame.width, frame.height);
            encoder.set_color(if frame.channels == 1 { png::ColorType::Grayscale } else { png::ColorType::Rgb });
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_compression(png::Compression::Fast);
            let mut writer = encoder.write_header().map_err(|e| DicomError::Decode(e.to_string()))?;
            writer.write_image_data(&frame.data).map_err(|e| DicomError::Decode(e.to_string()))?;
            writer.finish().map_err(|e| DicomError::Decode(e.to_string()))?;
        }
        Format::Jpeg => {
            let (w, h) = (
                u16::try_from(frame.width).map_err(|_| DicomError::Decode("image too wide for JPEG".into()))?,
                u16::try_from(frame.height).map_err(|_| DicomError::Decode("image too tall for JPEG".into()))?,
            );
            let color = if frame.channels == 1 { jpeg_encoder::ColorType::Luma } else { jpeg_encoder::ColorType::Rgb };
            jpeg_encoder::Encoder::new(&mut out, 90)
                .encode(&frame.data, w, h, color)
                .map_err(|e| DicomError::Decode(e.to_string()))?;
        }
    }
    Ok(out)
}

/// The native pixel data (little endian, interleaved samples) of frames `frames` (1-based),
/// whatever the transfer syntax the file was stored in: what WADO-RS frames return.
pub fn native_frames(bytes: &[u8], frames: &[u32]) -> Result<Vec<Vec<u8>>, DicomError> {
    let obj = open(bytes, false)?;
    check_transfer_syntax(obj.meta().transfer_syntax())?;
    if obj.element_opt(dicom_dictionary_std::tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(DicomError::NoPixelData);
    }
    let count = obj
        .element_opt(dicom_dictionary_std::tags::NUMBER_OF_FRAMES)
        .ok()
        .flatten()
        .and_then(|e| e.to_int::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    frames
        .iter()
        .map(|&frame| {
            if frame == 0 || frame > count {
                return Err(DicomError::NoSuchFrame { frame, frames: count });
            }
            let decoded = obj.decode_pixel_data_frame(frame - 1).map_err(|e| DicomError::Decode(e.to_string()))?;
            Ok(decoded.data().to_vec())
        })
        .collect()
}

/// Decodes and encodes frame `frame` (1-based) in one step.
pub fn render(bytes: &[u8], frame: u32, window: Window, format: Format) -> Result<Vec<u8>, DicomError> {
    encode(&decode_frame(bytes, frame, window)?, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_come_from_presets_or_values() {
        assert_eq!(Window::from_query(None, None, None).unwrap(), Window::Default);
        assert_eq!(
            Window::from_query(Some("LUNG"), None, None).unwrap(),
            Window::Given { center: -600.0, width: 1500.0 }
        );
        assert_eq!(
            Window::from_query(None, Some(40.0), Some(400.0)).unwrap(),
            Window::Given { center: 40.0, width: 400.0 }
        );
        assert!(Window::from_query(Some("lung"), Some(1.0), None).is_err());
        assert!(Window::from_query(None, Some(1.0), None).is_err());
        assert!(Window::from_query(None, Some(1.0), Some(0.0)).is_err());
        assert!(Window::from_query(Some("kidney"), None, None).unwrap_err().to_string().contains("lung"));
    }

    #[test]
    fn frames_encode_to_png_and_jpeg() {
        let frame = Frame8 { width: 4, height: 2, channels: 1, data: (0..8).map(|v| v * 30).collect() };
        let png = encode(&frame, Format::Png).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let jpeg = encode(&frame, Format::Jpeg).unwrap();
        assert!(jpeg.starts_with(&[0xFF, 0xD8]));
    }

    #[test]
    fn the_linear_window_maps_centre_to_mid_grey() {
        let out = apply_window(&[-1000.0, -160.0, 40.0, 240.0, 3000.0], 40.0, 400.0);
        assert_eq!(out[0], 0);
        assert_eq!(out[4], 255);
        assert!((126..=129).contains(&out[2]), "{out:?}");
        assert!(out[1] <= 1 && out[3] >= 254, "{out:?}");
        assert_eq!(min_max_window(&[0.0, 99.0]), (49.5, 100.0));
    }

    #[test]
    fn ybr_grey_stays_grey() {
        let mut px = [100u8, 128, 128];
        ybr_full_to_rgb(&mut px);
        assert_eq!(px, [100, 100, 100]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(render(b"not dicom", 1, Window::Default, Format::Png), Err(DicomError::Unreadable(_))));
    }
}
