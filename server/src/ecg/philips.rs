//! Philips XML (`restingecgdata`): the export of Philips PageWriter carts, TraceMasterVue and
//! HeartStart monitors (document types SierraECG 1.03 and PhilipsECG 1.04, 1.04.01, 1.04.02).
//!
//! The rhythm data are `waveforms/parsedwaveforms` (SierraECG 1.03 has them at the root):
//! base64 text, either plain little-endian 16-bit samples lead after lead or, as the carts
//! write them, **XLI**-compressed. XLI holds one chunk per lead: an 8-byte header (the chunk's
//! byte count, a 16-bit code, the first sample), then LZW-coded bytes (10-bit codes, most
//! significant bit first, no clear code, the table full at 1022). The decoded bytes are the
//! high bytes of the lead's 16-bit values followed by their low bytes; the values are second
//! differences (offset by 64) from which the samples are rebuilt: each sample is twice the
//! previous one minus the one before, minus the stored difference of the sample before.
//! Philips stores III, aVR, aVL and aVF as residuals against their value from I and II; they
//! are rebuilt as III = II − I − r, aVR = −r − ⌊(I + II)/2⌋, aVL = ⌊(I − III)/2⌋ − r,
//! aVF = ⌊(II + III)/2⌋ − r. Samples are in units of `resolution` µV (5 µV on every file seen).
//!
//! The cart's measurements are the interpretation's global values (heart rate, RR, atrial
//! rate, PR, QRS, QT, QTc Bazett, frontal axes: `globalmeasurements` in 1.04,
//! `interpretationmeasurements` in 1.03), else the internal cross-lead means (`meanventrate`,
//! `meanprint`, `meanqrsdur`, `meanqtint`, `meanqtc`); "Failed", empty or 0 values are left out. The interpretation's
//! statements are kept verbatim. Files are UTF-8 or UTF-16 (the carts write UTF-16 with a
//! byte order mark).

use base64::Engine;
use roxmltree::{Document, Node};

use super::{check_sample_rate, check_total_samples, to_uv, DeviceMeasurements, EcgError, EcgFormat, EcgRecord, Lead};

fn fail(message: impl Into<String>) -> EcgError {
    EcgError::Philips(message.into())
}

/// Whether `bytes` look like a Philips XML export (root element `restingecgdata`), in UTF-8
/// or UTF-16.
pub fn looks_like_philips(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    let text = match utf16_order(head) {
        Some(big_endian) => decode_utf16_lossy(head, big_endian),
        None => String::from_utf8_lossy(head).into_owned(),
    };
    let text = text.trim_start_matches('\u{feff}').trim_start();
    text.starts_with('<') && text.contains("<restingecgdata")
}

/// `Some(true)` for UTF-16 big endian, `Some(false)` little endian (by byte order mark, or by
/// the zero bytes of an ASCII `<` without one), `None` otherwise.
fn utf16_order(bytes: &[u8]) -> Option<bool> {
    match bytes {
        [0xFF, 0xFE, ..] | [b'<', 0, ..] => Some(false),
        [0xFE, 0xFF, ..] | [0, b'<', ..] => Some(true),
        _ => None,
    }
}

fn utf16_units(bytes: &[u8], big_endian: bool) -> impl Iterator<Item = u16> + '_ {
    bytes.chunks_exact(2).map(move |p| {
        if big_endian {
            u16::from_be_bytes([p[0], p[1]])
        } else {
            u16::from_le_bytes([p[0], p[1]])
        }
    })
}

fn decode_utf16_lossy(bytes: &[u8], big_endian: bool) -> String {
    char::decode_utf16(utf16_units(bytes, big_endian)).map(|c| c.unwrap_or('\u{fffd}')).collect()
}

fn decode_text(bytes: &[u8]) -> Result<String, EcgError> {
    if let Some(big_endian) = utf16_order(bytes) {
        if !bytes.len().is_multiple_of(2) {
            return Err(fail("the UTF-16 text has an odd number of bytes: truncated file"));
        }
        return char::decode_utf16(utf16_units(bytes, big_endian))
            .collect::<Result<String, _>>()
            .map_err(|_| fail("the text is not valid UTF-16"));
    }
    Ok(match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    })
}

/// Parses a Philips XML document.
pub fn parse(bytes: &[u8]) -> Result<EcgRecord, EcgError> {
    let text = decode_text(bytes)?;
    let text = text.trim_start_matches('\u{feff}');
    let doc = Document::parse(text).map_err(|e| fail(format!("not well-formed XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "restingecgdata" {
        return Err(fail(format!("the root element is <{}>, not <restingecgdata>", root.tag_name().name())));
    }
    let acquisition = child(root, "dataacquisition");
    let signal = acquisition.and_then(|a| child(a, "signalcharacteristics"));
    let waveform = descendant(root, "parsedwaveforms").ok_or_else(|| fail("the file holds no <parsedwaveforms>"))?;

    let sample_rate_hz = attribute_number(waveform, "samplespersecond")
        .or_else(|| signal.and_then(|s| number(s, "samplingrate")))
        .ok_or_else(|| fail("the sample rate (<samplingrate>) is missing"))?;
    check_sample_rate(sample_rate_hz)?;
    let resolution_uv = attribute_number(waveform, "resolution")
        .or_else(|| signal.and_then(|s| number(s, "signalresolution").or_else(|| number(s, "resolution"))))
        .unwrap_or(5.0);
    if !(resolution_uv > 0.0 && resolution_uv <= 1000.0) {
        return Err(fail(format!("a resolution of {resolution_uv} µV per unit is out of range")));
    }
    let encoding = waveform.attribute("dataencoding").unwrap_or("Base64");
    if !encoding.eq_ignore_ascii_case("Base64") {
        return Err(fail(format!("waveform data encoded as {encoding:?} are not supported (Base64 is)")));
    }
    let compression = waveform.attribute("compressmethod").or(waveform.attribute("compression")).unwrap_or("");
    let compressed = match compression.to_ascii_uppercase().as_str() {
        "XLI" => true,
        "" | "NONE" | "UNCOMPRESSED" => {
            waveform.attribute("compressflag").is_some_and(|f| f.eq_ignore_ascii_case("true"))
        }
        other => return Err(fail(format!("waveform compression {other:?} is not supported (XLI is)"))),
    };
    let labels = lead_labels(waveform, signal);
    let per_lead = attribute_number(waveform, "durationperchannel")
        .map(|ms| (ms / 1000.0 * sample_rate_hz).round() as usize)
        .filter(|&n| n > 0);

    let encoded: String = waveform.text().unwrap_or("").chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_bytes())
        .map_err(|e| fail(format!("<parsedwaveforms> is not base64: {e}")))?;
    let mut channels = if compressed {
        xli_decode(&raw)?
    } else {
        let count = labels.len().max(1);
        let per = per_lead.unwrap_or(raw.len() / 2 / count);
        if raw.len() / 2 < per * count {
            return Err(fail(format!(
                "{count} leads of {per} samples need {} bytes, the data hold {}",
                per * count * 2,
                raw.len()
            )));
        }
        raw.chunks_exact(2)
            .take(per * count)
            .map(|p| i32::from(i16::from_le_bytes([p[0], p[1]])))
            .collect::<Vec<_>>()
            .chunks(per.max(1))
            .map(<[i32]>::to_vec)
            .collect()
    };
    if channels.is_empty() {
        return Err(fail("<parsedwaveforms> holds no lead"));
    }
    // SierraECG 1.03 files hold 16 chunks for their 12 leads: the named leads are read.
    if !labels.is_empty() && channels.len() > labels.len() {
        channels.truncate(labels.len());
    }
    if channels.len() > super::MAX_LEADS {
        return Err(fail(format!("more than {} leads", super::MAX_LEADS)));
    }
    if let Some(n) = per_lead {
        for (k, c) in channels.iter_mut().enumerate() {
            if c.len() < n {
                return Err(fail(format!("lead {} holds {} samples, <parsedwaveforms> says {n}", k + 1, c.len())));
            }
            c.truncate(n);
        }
    }
    let shortest = channels.iter().map(Vec::len).min().unwrap_or(0);
    if channels.iter().any(|c| c.len() != shortest) {
        return Err(fail("the leads hold different numbers of samples"));
    }
    check_total_samples((shortest * channels.len()) as u64)?;
    let names: Vec<String> = (0..channels.len())
        .map(|k| labels.get(k).map(|l| super::standard_lead_name(l)).unwrap_or_else(|| format!("channel {}", k + 1)))
        .collect();
    rebuild_limb_leads(&names, &mut channels);
    let leads = names
        .into_iter()
        .zip(channels)
        .map(|(name, c)| Lead {
            name,
            samples_uv: c.into_iter().map(|v| to_uv(f64::from(v) * resolution_uv, 1.0)).collect(),
        })
        .collect();

    let acquisition_time = acquisition.and_then(|a| {
        let date = a.attribute("date")?;
        let time = a.attribute("time").unwrap_or("00:00:00");
        iso_datetime(date, time)
    });
    let device = acquisition.and_then(|a| child(a, "machine")).and_then(|m| {
        let model = m.text().map(str::trim).filter(|t| !t.is_empty())?;
        Some(format!("Philips {model}"))
    });
    let device_measurements = Some(measurements(root));
    EcgRecord {
        sample_rate_hz,
        leads,
        acquisition_time,
        device,
        source_format: EcgFormat::PhilipsXml,
        reference_beats_s: None,
        device_measurements,
    }
    .validated()
}

/// The lead names: the `leadlabels` attribute, else the standard 12 for a 12-lead acquisition.
fn lead_labels(waveform: Node, signal: Option<Node>) -> Vec<String> {
    if let Some(labels) = waveform.attribute("leadlabels").filter(|l| !l.trim().is_empty()) {
        return labels.split_whitespace().map(str::to_string).collect();
    }
    let kind = signal.and_then(|s| text_of(s, "acquisitiontype")).unwrap_or_default();
    if matches!(kind.as_str(), "STD-12" | "10-WIRE") {
        return ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"].map(String::from).to_vec();
    }
    Vec::new()
}

/// Rebuilds III, aVR, aVL and aVF from the residuals Philips stores, when the first six leads
/// are the limb leads in the standard order.
fn rebuild_limb_leads(names: &[String], channels: &mut [Vec<i32>]) {
    let standard = ["I", "II", "III", "aVR", "aVL", "aVF"];
    if channels.len() < 6 || names.iter().zip(standard).any(|(n, s)| n != s) {
        return;
    }
    let half = |v: i32| v.div_euclid(2);
    for t in 0..channels[0].len() {
        let (i, ii) = (channels[0][t], channels[1][t]);
        let iii = ii - i - channels[2][t];
        channels[2][t] = iii;
        channels[3][t] = -channels[3][t] - half(i + ii);
        channels[4][t] = half(i - iii) - channels[4][t];
        channels[5][t] = half(ii + iii) - channels[5][t];
    }
}

/// Decodes XLI data: one chunk per lead, each an 8-byte header and LZW-coded second
/// differences.
pub fn xli_decode(data: &[u8]) -> Result<Vec<Vec<i32>>, EcgError> {
    let mut leads = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let header =
            data.get(at..at + 8).ok_or_else(|| fail(format!("XLI chunk {}: truncated header", leads.len() + 1)))?;
        let size = i32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let first = i32::from(i16::from_le_bytes([header[6], header[7]]));
        at += 8;
        let chunk =
            usize::try_from(size).ok().and_then(|size| data.get(at..at.checked_add(size)?)).ok_or_else(|| {
                fail(format!("XLI chunk {}: claims {size} bytes, {} remain", leads.len() + 1, data.len() - at))
            })?;
        at += chunk.len();
        let mut bytes = lzw_decode(chunk).map_err(|e| fail(format!("XLI chunk {}: {e}", leads.len() + 1)))?;
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        let n = bytes.len() / 2;
        let mut values: Vec<i32> = (0..n).map(|k| i32::from(i16::from_be_bytes([bytes[k], bytes[n + k]]))).collect();
        if n >= 2 {
            let (mut x, mut y, mut last) = (values[0], values[1], first);
            for v in values.iter_mut().skip(2) {
                let z = 2 * y - x - last;
                if !(i32::from(i16::MIN)..=i32::from(i16::MAX)).contains(&z) {
                    return Err(fail(format!(
                        "XLI chunk {}: a sample runs out of the 16-bit range: corrupt data",
                        leads.len() + 1
                    )));
                }
                last = *v - 64;
                *v = z;
                x = y;
                y = z;
            }
        }
        leads.push(values);
        if leads.len() > super::MAX_LEADS {
            return Err(fail(format!("more than {} XLI chunks", super::MAX_LEADS)));
        }
    }
    Ok(leads)
}

const LZW_BITS: u32 = 10;
const LZW_MAX_CODE: usize = (1 << LZW_BITS) - 2;

/// LZW with 10-bit codes read most significant bit first; the table starts with the 256
/// single bytes and grows until code 1022; a code of 1023 or the end of the data ends it.
fn lzw_decode(data: &[u8]) -> Result<Vec<u8>, String> {
    // Each table entry is (prefix code, last byte, length); entries < 256 are single bytes.
    let mut table: Vec<(u16, u8, u32)> = (0..=255u8).map(|b| (u16::MAX, b, 1)).collect();
    let mut out: Vec<u8> = Vec::with_capacity(data.len() * 3);
    let (mut buffer, mut bits, mut at) = (0u32, 0u32, 0usize);
    let mut previous: Option<usize> = None;
    let expand = |table: &[(u16, u8, u32)], code: usize, out: &mut Vec<u8>| -> u8 {
        let start = out.len();
        let len = table[code].2 as usize;
        out.resize(start + len, 0);
        let mut c = code;
        for k in (0..len).rev() {
            out[start + k] = table[c].1;
            c = usize::from(table[c].0);
        }
        out[start]
    };
    loop {
        while bits <= 24 && at < data.len() {
            buffer |= u32::from(data[at]) << (24 - bits);
            bits += 8;
            at += 1;
        }
        if bits < LZW_BITS {
            break;
        }
        let code = (buffer >> (32 - LZW_BITS)) as usize;
        buffer <<= LZW_BITS;
        bits -= LZW_BITS;
        if code > LZW_MAX_CODE {
            break;
        }
        if out.len() > 64 * 1024 * 1024 {
            return Err("decodes to more than 64 MiB".into());
        }
        let first = if code < table.len() {
            expand(&table, code, &mut out)
        } else if code == table.len() {
            // The code being defined right now: the previous string and its own first byte.
            let Some(p) = previous else {
                return Err(format!("LZW code {code} before any string"));
            };
            let first = expand(&table, p, &mut out);
            out.push(first);
            first
        } else {
            return Err(format!("LZW code {code} is not yet defined (the table holds {})", table.len()));
        };
        if let Some(p) = previous {
            if table.len() <= LZW_MAX_CODE {
                table.push((p as u16, first, table[p].2 + 1));
            }
        }
        previous = Some(code);
    }
    Ok(out)
}

/// `YYYY-MM-DD` and `HH:MM:SS` → `YYYY-MM-DDTHH:MM:SS`.
fn iso_datetime(date: &str, time: &str) -> Option<String> {
    let ok = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    let date_ok = d.len() == 3 && ok(d[0], 4) && ok(d[1], 2) && ok(d[2], 2);
    let time_ok = t.len() == 3 && t.iter().all(|p| ok(p, 2));
    (date_ok && time_ok).then(|| format!("{date}T{time}"))
}

fn measurements(root: Node) -> DeviceMeasurements {
    let mut m = DeviceMeasurements::default();
    let interpretation = descendant(root, "interpretations").and_then(|i| descendant(i, "interpretation"));
    // Where the cart writes its global values, the interpretation's first: `globalmeasurements`
    // (1.04) or `interpretationmeasurements` (1.03) there, then the internal cross-lead means
    // (`internalmeasurements/crossleadmeasurements` in 1.04, `measurements/globalmeasurements`
    // in 1.03).
    let sources: Vec<Node> = [
        interpretation.and_then(|i| child(i, "globalmeasurements")),
        interpretation.and_then(|i| child(i, "interpretationmeasurements")),
        descendant(root, "internalmeasurements").and_then(|i| child(i, "crossleadmeasurements")),
        descendant(root, "measurements").and_then(|i| child(i, "globalmeasurements")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let value = |names: &[&'static str]| sources.iter().find_map(|node| names.iter().find_map(|n| number(*node, n)));
    let positive = |names: &[&'static str]| value(names).filter(|v| *v > 0.0);
    m.heart_rate_bpm = positive(&["heartrate", "meanventrate"]);
    m.atrial_rate_bpm = positive(&["atrialrate"]);
    m.rr_ms = positive(&["rrint", "meanrrint"]).or_else(|| m.heart_rate_bpm.map(|hr| (60_000.0 / hr).round()));
    m.pr_ms = positive(&["print", "meanprint"]);
    m.qrs_ms = positive(&["qrsdur", "meanqrsdur"]);
    m.qt_ms = positive(&["qtint", "meanqtint"]);
    m.qtc_ms = positive(&["qtcb", "meanqtc"]);
    let axis = |name: &'static str| value(&[name]).filter(|v| v.abs() <= 360.0);
    m.p_axis_deg = axis("pfrontaxis");
    m.qrs_axis_deg = axis("qrsfrontaxis");
    m.t_axis_deg = axis("tfrontaxis");
    if let Some(i) = interpretation {
        m.statements = children(i, "statement")
            .filter_map(|s| {
                let parts: Vec<String> =
                    ["leftstatement", "rightstatement"].into_iter().filter_map(|n| text_of(s, n)).collect();
                (!parts.is_empty()).then(|| parts.join(" — "))
            })
            .collect();
    }
    m
}

fn children<'a, 'input: 'a>(node: Node<'a, 'input>, name: &'static str) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children().filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn child<'a, 'input>(node: Node<'a, 'input>, name: &'static str) -> Option<Node<'a, 'input>> {
    children(node, name).next()
}

fn descendant<'a, 'input>(node: Node<'a, 'input>, name: &'static str) -> Option<Node<'a, 'input>> {
    node.descendants().find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text_of(node: Node, name: &'static str) -> Option<String> {
    let t = child(node, name)?.text()?.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn number(node: Node, name: &'static str) -> Option<f64> {
    text_of(node, name)?.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn attribute_number(node: Node, name: &str) -> Option<f64> {
    node.attribute(name)?.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs 10-bit codes most significant bit first, as the carts write them.
    fn pack(codes: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0u32);
        for &c in codes {
            acc = (acc << 10) | u32::from(c);
            bits += 10;
            while bits >= 8 {
                out.push((acc >> (bits - 8)) as u8);
                bits -= 8;
            }
        }
        if bits > 0 {
            out.push((acc << (8 - bits)) as u8);
        }
        out
    }

    #[test]
    fn lzw_decodes_the_textbook_stream_and_the_code_being_defined() {
        // "ABABABA": A B AB ABA — the last code (258) is the one being defined (the KwKwK case).
        let codes = [65, 66, 256, 258];
        assert_eq!(lzw_decode(&pack(&codes)).unwrap(), b"ABABABA");
        // A code of 1023 ends the stream.
        assert_eq!(lzw_decode(&pack(&[65, 1023, 66])).unwrap(), b"A");
        assert!(lzw_decode(&pack(&[65, 300])).unwrap_err().contains("not yet defined"));
        assert!(lzw_decode(&pack(&[256])).unwrap_err().contains("before any string"));
    }

    /// One XLI chunk holding `values` (already second differences) as LZW of single bytes.
    fn chunk(values: &[i16], first: i16) -> Vec<u8> {
        let highs = values.iter().map(|v| v.to_be_bytes()[0]);
        let lows = values.iter().map(|v| v.to_be_bytes()[1]);
        let codes: Vec<u16> = highs.chain(lows).map(u16::from).collect();
        let body = pack(&codes);
        let mut out = (body.len() as i32).to_le_bytes().to_vec();
        out.extend(0u16.to_le_bytes());
        out.extend(first.to_le_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn xli_rebuilds_samples_from_second_differences() {
        // Samples 10, 12, 14, 20, 30: x[i] = 2x[i-1] - x[i-2] - d[i-1], with d stored + 64.
        // d = first (header) for i = 2, then the stored values of 2, 3: 14 = 24 - 10 - 0,
        // 20 = 28 - 12 - d, d = -4 (stored 60), 30 = 40 - 14 - d, d = -4 (stored 60).
        let data = [chunk(&[10, 12, 60, 60, 99], 0), chunk(&[-5, -5, 64, 64], 0)].concat();
        let leads = xli_decode(&data).unwrap();
        assert_eq!(leads, vec![vec![10, 12, 14, 20, 30], vec![-5, -5, -5, -5]]);
        let truncated = &data[..data.len() - 3];
        assert!(xli_decode(truncated).unwrap_err().to_string().contains("claims"));
        assert!(xli_decode(&data[..5]).unwrap_err().to_string().contains("truncated header"));
    }

    #[test]
    fn limb_leads_are_rebuilt_from_residuals() {
        let names: Vec<String> = ["I", "II", "III", "aVR", "aVL", "aVF"].map(String::from).to_vec();
        // I = 100, II = 300: III = 200, aVR = -200, aVL = -50, aVF = 250 with residuals 0, and
        // residuals shift them.
        let mut channels = vec![vec![100, 100], vec![300, 300], vec![0, 5], vec![0, 1], vec![0, -2], vec![0, 3]];
        rebuild_limb_leads(&names, &mut channels);
        assert_eq!(channels[2], [200, 195]);
        assert_eq!(channels[3], [-200, -201]);
        assert_eq!(channels[4], [-50, -46]);
        assert_eq!(channels[5], [250, 244]);
    }

    fn document(waveform: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-16\"?>\n<restingecgdata xmlns=\"http://www3.medical.philips.com\">\
             <dataacquisition date=\"2020-05-18\" time=\"15:48:11\"><machine machineid=\"1\">PageWriter TC</machine>\
             <signalcharacteristics><samplingrate>500</samplingrate><resolution>5</resolution></signalcharacteristics>\
             </dataacquisition><interpretations><interpretation><globalmeasurements><heartrate>64</heartrate>\
             <print>Failed</print><qrsdur>102</qrsdur><qtint>399</qtint><qtcb>412</qtcb><qrsfrontaxis>-30</qrsfrontaxis>\
             </globalmeasurements><statement><leftstatement>SINUS RHYTHM</leftstatement><rightstatement>V-rate 60-99\
             </rightstatement></statement></interpretation></interpretations><waveforms>{waveform}</waveforms>\
             </restingecgdata>"
        )
    }

    fn utf16(text: &str) -> Vec<u8> {
        let mut out = vec![0xFF, 0xFE];
        out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        out
    }

    #[test]
    fn a_utf16_document_with_xli_waveforms_is_read_with_the_carts_measurements() {
        let data = [chunk(&[10, 12, 60, 60], 0), chunk(&[20, 20, 64, 64], 0)].concat();
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        let waveform = format!(
            "<parsedwaveforms dataencoding=\"Base64\" compression=\"XLI\" numberofleads=\"2\" leadlabels=\"I II\" \
             durationperchannel=\"8\" samplespersecond=\"500\" resolution=\"5\">{encoded}</parsedwaveforms>"
        );
        let bytes = utf16(&document(&waveform));
        assert!(looks_like_philips(&bytes));
        assert!(!looks_like_philips(b"<RestingECG></RestingECG>"));
        let r = parse(&bytes).unwrap();
        assert_eq!(r.sample_rate_hz, 500.0);
        assert_eq!(r.leads.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["I", "II"]);
        assert_eq!(r.leads[0].samples_uv, [50, 60, 70, 100]);
        assert_eq!(r.leads[1].samples_uv, [100, 100, 100, 100]);
        assert_eq!(r.acquisition_time.as_deref(), Some("2020-05-18T15:48:11"));
        assert_eq!(r.device.as_deref(), Some("Philips PageWriter TC"));
        assert_eq!(r.source_format, EcgFormat::PhilipsXml);
        let m = r.device_measurements.unwrap();
        assert_eq!(
            (m.heart_rate_bpm, m.pr_ms, m.qrs_ms, m.qt_ms, m.qtc_ms),
            (Some(64.0), None, Some(102.0), Some(399.0), Some(412.0))
        );
        assert_eq!(m.rr_ms, Some(938.0));
        assert_eq!(m.qrs_axis_deg, Some(-30.0));
        assert_eq!(m.statements, ["SINUS RHYTHM — V-rate 60-99"]);
    }

    #[test]
    fn uncompressed_waveforms_are_read_lead_after_lead() {
        let samples: Vec<u8> = [1i16, 2, 3, 4, -1, -2, -3, -4].iter().flat_map(|v| v.to_le_bytes()).collect();
        let encoded = base64::engine::general_purpose::STANDARD.encode(samples);
        let waveform = format!(
            "<parsedwaveforms dataencoding=\"Base64\" leadlabels=\"V1 V2\" durationperchannel=\"8\">{encoded}</parsedwaveforms>"
        );
        let r = parse(document(&waveform).as_bytes()).unwrap();
        assert_eq!(r.leads[0].samples_uv, [5, 10, 15, 20]);
        assert_eq!(r.leads[1].samples_uv, [-5, -10, -15, -20]);
    }

    #[test]
    fn broken_documents_say_what_is_wrong() {
        let err = |bytes: &[u8]| parse(bytes).unwrap_err().to_string();
        assert!(err(b"<restingecgdata>").contains("not well-formed"));
        assert!(err(b"<other/>").contains("not <restingecgdata>"));
        assert!(err(document("").as_bytes()).contains("no <parsedwaveforms>"));
        let bad = document("<parsedwaveforms compression=\"XLI\">@@@</parsedwaveforms>");
        assert!(err(bad.as_bytes()).contains("not base64"));
        let other = document("<parsedwaveforms compression=\"ZIP\">AAAA</parsedwaveforms>");
        assert!(err(other.as_bytes()).contains("not supported"));
        let mut odd = utf16(&document(""));
        odd.push(0);
        assert!(err(&odd).contains("odd number of bytes"));
        let short = base64::engine::general_purpose::STANDARD.encode(chunk(&[1, 2, 64], 0));
        let lying = document(&format!(
            "<parsedwaveforms compression=\"XLI\" leadlabels=\"I\" durationperchannel=\"1000\">{short}</parsedwaveforms>"
        ));
        assert!(err(lying.as_bytes()).contains("holds 3 samples"), "{}", err(lying.as_bytes()));
    }
}
