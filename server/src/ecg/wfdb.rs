//! WFDB (MIT) records: the `.hea` header, `.dat` signal files in formats 16 and 212, and
//! `.atr` annotation files in the MIT annotation format (beats are kept as reference).
//!
//! Single-segment records only. Signals whose units are not a voltage (respiration, blood
//! pressure and the like) are left out of the [`EcgRecord`]; a record with no ECG signal is
//! refused.

use super::{
    check_sample_rate, check_total_samples, file_stem, microvolts_per_unit, standard_lead_name, to_uv, EcgError,
    EcgFormat, EcgRecord, Lead,
};

/// The parsed `.hea` header of a single-segment record.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub record: String,
    pub sample_rate_hz: f64,
    /// Samples per signal, when the header states it.
    pub samples_per_signal: Option<u64>,
    /// `hh:mm:ss` as written, when given.
    pub base_time: Option<String>,
    /// `dd/mm/yyyy` as written, when given.
    pub base_date: Option<String>,
    pub signals: Vec<SignalSpec>,
}

/// One signal line of a header.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalSpec {
    pub file_name: String,
    /// Storage format: 16 or 212 are read.
    pub format: u32,
    /// Bytes to skip at the start of the signal file.
    pub byte_offset: u64,
    /// ADC units per physical unit.
    pub gain: f64,
    /// ADC value of 0 physical units.
    pub baseline: i64,
    pub units: String,
    pub description: String,
}

/// One annotation of an MIT annotation file.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// Sample number from the start of the record.
    pub sample: u64,
    /// The WFDB annotation code (1 = N, 5 = V, 8 = A, 28 = rhythm change, ...).
    pub code: u8,
    pub subtype: i16,
    pub channel: u16,
    pub num: i16,
    pub aux: Option<String>,
}

impl Annotation {
    /// Whether the annotation marks a beat (QRS complex), per WFDB's `isqrs`.
    pub fn is_beat(&self) -> bool {
        is_beat_code(self.code)
    }

    /// The WFDB mnemonic of the code (`N`, `V`, `A`, `+`, ...), `?` when unknown.
    pub fn mnemonic(&self) -> &'static str {
        mnemonic(self.code)
    }
}

/// WFDB beat codes, as WFDB's `isqrs`: N L R a V F J A S E j / Q B r e n f and learning `?`.
/// A non-conducted P wave (`x`, 37) is not a beat.
pub fn is_beat_code(code: u8) -> bool {
    matches!(code, 1..=13 | 25 | 30 | 34 | 35 | 38 | 41)
}

fn mnemonic(code: u8) -> &'static str {
    const TABLE: [&str; 42] = [
        " ", "N", "L", "R", "a", "V", "F", "J", "A", "S", "E", "j", "/", "Q", "~", "?", "|", "?", "s", "T", "*", "D",
        "\"", "=", "p", "B", "^", "t", "+", "u", "?", "!", "[", "]", "e", "n", "@", "x", "f", "(", ")", "r",
    ];
    TABLE.get(usize::from(code)).copied().unwrap_or("?")
}

const DEFAULT_SAMPLE_RATE_HZ: f64 = 250.0;
const DEFAULT_GAIN: f64 = 200.0;

/// Whether `bytes` read as a WFDB header: text whose first record line is
/// `name nsig [fs [nsamp ...]]` followed by as many signal lines.
pub fn looks_like_header(name: &str, bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    let Ok(text) = std::str::from_utf8(head) else {
        return false;
    };
    if text.contains('\0') {
        return false;
    }
    parse_header(name, text).is_ok()
}

/// Parses a `.hea` header.
pub fn parse_header(file: &str, text: &str) -> Result<Header, EcgError> {
    let err = |line: usize, reason: String| EcgError::WfdbHeader { file: file.to_string(), line, reason };
    let mut lines =
        text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let (line_no, record_line) = lines.next().ok_or_else(|| err(1, "no record line".into()))?;
    let fields: Vec<&str> = record_line.split_whitespace().collect();
    let record = fields.first().copied().unwrap_or_default();
    if record.contains('/') {
        return Err(err(line_no, "multi-segment records are not supported; upload a single-segment record".into()));
    }
    if record.is_empty() || !record.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(err(line_no, format!("invalid record name {record:?}")));
    }
    let signal_count: usize = fields
        .get(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err(line_no, "the number of signals is missing or not a number".into()))?;
    if signal_count > super::MAX_LEADS {
        return Err(err(line_no, format!("{signal_count} signals is more than the {} accepted", super::MAX_LEADS)));
    }
    let sample_rate_hz = match fields.get(2) {
        None => DEFAULT_SAMPLE_RATE_HZ,
        Some(spec) => {
            let fs_text = spec.split(['/', '(']).next().unwrap_or_default();
            let fs: f64 = fs_text.parse().map_err(|_| err(line_no, format!("invalid sampling frequency {spec:?}")))?;
            if fs == 0.0 {
                DEFAULT_SAMPLE_RATE_HZ
            } else {
                fs
            }
        }
    };
    check_sample_rate(sample_rate_hz).map_err(|e| err(line_no, e.to_string()))?;
    let samples_per_signal = match fields.get(3) {
        None => None,
        Some(s) => Some(s.parse::<u64>().map_err(|_| err(line_no, format!("invalid number of samples {s:?}")))?)
            .filter(|&n| n > 0),
    };
    let base_time = fields.get(4).map(|s| s.to_string());
    let base_date = fields.get(5).map(|s| s.to_string());

    let mut signals = Vec::with_capacity(signal_count);
    for _ in 0..signal_count {
        let (line_no, line) = lines.next().ok_or_else(|| {
            err(
                line_no,
                format!("the record line announces {signal_count} signals, the header describes {}", signals.len()),
            )
        })?;
        signals.push(parse_signal_line(line).map_err(|reason| err(line_no, reason))?);
    }
    Ok(Header { record: record.to_string(), sample_rate_hz, samples_per_signal, base_time, base_date, signals })
}

fn parse_signal_line(line: &str) -> Result<SignalSpec, String> {
    let mut rest = line;
    let mut fields: Vec<&str> = Vec::with_capacity(8);
    while fields.len() < 8 {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let description = rest.trim().to_string();
    let file_name = fields.first().copied().unwrap_or_default().to_string();
    let format_spec = fields.get(1).ok_or_else(|| format!("signal {file_name:?} has no storage format"))?;
    let digits_end = format_spec.find(|c: char| !c.is_ascii_digit()).unwrap_or(format_spec.len());
    let format: u32 =
        format_spec[..digits_end].parse().map_err(|_| format!("invalid storage format {format_spec:?}"))?;
    let mut byte_offset = 0;
    let mut modifiers = &format_spec[digits_end..];
    while let Some(kind) = modifiers.chars().next() {
        let tail = &modifiers[kind.len_utf8()..];
        let end = tail.find(|c: char| !c.is_ascii_digit()).unwrap_or(tail.len());
        let value: u64 = tail[..end].parse().map_err(|_| format!("invalid storage format {format_spec:?}"))?;
        match kind {
            'x' if value > 1 => {
                return Err(format!("{value} samples per frame (format {format_spec}) are not supported"))
            }
            ':' if value > 0 => return Err(format!("skewed signals (format {format_spec}) are not supported")),
            '+' => byte_offset = value,
            'x' | ':' => {}
            _ => return Err(format!("invalid storage format {format_spec:?}")),
        }
        modifiers = &tail[end..];
    }

    let adc_zero: i64 = match fields.get(4) {
        Some(s) => s.parse().map_err(|_| format!("invalid ADC zero {s:?}"))?,
        None => 0,
    };
    let (gain, baseline, units) = match fields.get(2) {
        None => (DEFAULT_GAIN, adc_zero, "mV".to_string()),
        Some(spec) => {
            let (value, units) = match spec.split_once('/') {
                Some((v, u)) => (v, u.to_string()),
                None => (*spec, "mV".to_string()),
            };
            let (gain_text, baseline) = match value.split_once('(') {
                Some((g, b)) => {
                    let b = b
                        .strip_suffix(')')
                        .and_then(|b| b.parse::<i64>().ok())
                        .ok_or_else(|| format!("invalid baseline in {spec:?}"))?;
                    (g, b)
                }
                None => (value, adc_zero),
            };
            let gain: f64 = gain_text.parse().map_err(|_| format!("invalid gain {spec:?}"))?;
            if !gain.is_finite() || gain < 0.0 {
                return Err(format!("invalid gain {spec:?}"));
            }
            let gain = if gain == 0.0 { DEFAULT_GAIN } else { gain };
            (gain, baseline, units)
        }
    };
    Ok(SignalSpec { file_name, format, byte_offset, gain, baseline, units, description })
}

/// Decodes the ADC values of the signals stored in one signal file (`indices` are the
/// positions of those signals in `header.signals`, all in this file, interleaved in order).
/// Returns one vector of ADC values per signal.
pub fn decode_signal_file(
    file: &str,
    bytes: &[u8],
    format: u32,
    byte_offset: u64,
    signal_count: usize,
    samples_per_signal: Option<u64>,
) -> Result<Vec<Vec<i32>>, EcgError> {
    if signal_count == 0 {
        return Ok(Vec::new());
    }
    let data = usize::try_from(byte_offset).ok().and_then(|o| bytes.get(o..)).unwrap_or(&[]);
    let held_total: u64 = match format {
        16 => (data.len() / 2) as u64,
        212 => (data.len() / 3 * 2 + usize::from(data.len() % 3 == 2)) as u64,
        other => {
            return Err(EcgError::Signal(format!(
                "{file}: WFDB storage format {other} is not supported (supported: 16, 212)"
            )))
        }
    };
    let held = held_total / signal_count as u64;
    let wanted = match samples_per_signal {
        Some(expected) if expected > held => {
            return Err(EcgError::TruncatedDat { expected, signals: signal_count, held })
        }
        Some(expected) => expected,
        None => held,
    };
    check_total_samples(wanted.saturating_mul(signal_count as u64))?;
    let wanted = wanted as usize;
    let total = wanted * signal_count;
    let mut out: Vec<Vec<i32>> = (0..signal_count).map(|_| Vec::with_capacity(wanted)).collect();
    let mut push = |k: usize, v: i32| {
        if let Some(sig) = out.get_mut(k % signal_count) {
            sig.push(v);
        }
    };
    match format {
        16 => {
            for (k, pair) in data.chunks_exact(2).take(total).enumerate() {
                let v = i16::from_le_bytes([pair[0], pair[1]]);
                push(k, if v == i16::MIN { INVALID } else { i32::from(v) });
            }
        }
        _ => {
            let mut k = 0;
            for triple in data.chunks(3) {
                if k >= total {
                    break;
                }
                let b0 = i32::from(triple[0]);
                let b1 = i32::from(triple.get(1).copied().unwrap_or(0));
                let first = twelve_bit(b0 | ((b1 & 0x0F) << 8));
                push(k, first);
                k += 1;
                if k >= total {
                    break;
                }
                if let Some(&b2) = triple.get(2) {
                    let second = twelve_bit(i32::from(b2) | ((b1 & 0xF0) << 4));
                    push(k, second);
                    k += 1;
                }
            }
        }
    }
    Ok(out)
}

/// Marks a WFDB "invalid sample"; it is stored as the baseline (0 µV).
const INVALID: i32 = i32::MIN;

fn twelve_bit(v: i32) -> i32 {
    let v = if v & 0x800 != 0 { v - 0x1000 } else { v };
    if v == -2048 {
        INVALID
    } else {
        v
    }
}

/// Parses an MIT-format annotation file (`.atr`).
pub fn parse_annotations(file: &str, bytes: &[u8]) -> Result<Vec<Annotation>, EcgError> {
    const SKIP: u8 = 59;
    const NUM: u8 = 60;
    const SUB: u8 = 61;
    const CHN: u8 = 62;
    const AUX: u8 = 63;
    let err = |offset: usize, reason: &str| EcgError::Annotations {
        file: file.to_string(),
        reason: format!("{reason} at byte {offset}"),
    };
    let word = |at: usize| -> Option<u16> {
        let b = bytes.get(at..at + 2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    };
    let mut out: Vec<Annotation> = Vec::new();
    let mut time: u64 = 0;
    let (mut channel, mut num, mut subtype) = (0u16, 0i16, 0i16);
    let mut at = 0;
    while at < bytes.len() {
        let w = word(at).ok_or_else(|| err(at, "odd trailing byte"))?;
        at += 2;
        let code = (w >> 10) as u8;
        let value = w & 0x3FF;
        match code {
            0 if value == 0 => break,
            SKIP => {
                let high = word(at).ok_or_else(|| err(at, "truncated SKIP"))?;
                let low = word(at + 2).ok_or_else(|| err(at, "truncated SKIP"))?;
                at += 4;
                let interval = ((u32::from(high) << 16) | u32::from(low)) as i32;
                time = time
                    .checked_add_signed(i64::from(interval))
                    .ok_or_else(|| err(at, "SKIP moves before the start of the record"))?;
            }
            NUM => num = value as i16,
            SUB => subtype = value as i16,
            CHN => channel = value,
            AUX => {
                let len = usize::from(value);
                let text = bytes.get(at..at + len).ok_or_else(|| err(at, "truncated AUX string"))?;
                at += len + (len & 1);
                let Some(last) = out.last_mut() else {
                    return Err(err(at, "AUX string before any annotation"));
                };
                last.aux = Some(String::from_utf8_lossy(text).trim_end_matches('\0').into());
            }
            _ => {
                time += u64::from(value);
                out.push(Annotation { sample: time, code, subtype, channel, num, aux: None });
                subtype = 0;
            }
        }
    }
    Ok(out)
}

/// Parses a whole record from its files: the header, the signal files it names and, when
/// present, `<record>.atr`. File names are matched without their folders.
pub fn parse_record(files: &[(&str, &[u8])]) -> Result<EcgRecord, EcgError> {
    let (header_name, header_bytes) =
        files.iter().find(|(n, b)| looks_like_header(n, b)).copied().ok_or_else(|| EcgError::MissingFile {
            record: files.first().map_or("", |(n, _)| file_stem(n)).to_string(),
            what: "the .hea header".into(),
        })?;
    let text = std::str::from_utf8(header_bytes).map_err(|_| EcgError::WfdbHeader {
        file: header_name.to_string(),
        line: 1,
        reason: "not UTF-8 text".into(),
    })?;
    let header = parse_header(header_name, text)?;
    let base = |n: &str| n.rsplit(['/', '\\']).next().unwrap_or(n).to_string();
    let find = |wanted: &str| {
        files
            .iter()
            .find(|(n, _)| base(n) == wanted)
            .or_else(|| files.iter().find(|(n, _)| base(n).eq_ignore_ascii_case(wanted)))
            .map(|(_, b)| *b)
    };

    let mut adc: Vec<Option<Vec<i32>>> = vec![None; header.signals.len()];
    let mut samples_per_signal = header.samples_per_signal;
    let mut file_names: Vec<&str> = Vec::new();
    for s in &header.signals {
        if !file_names.contains(&s.file_name.as_str()) {
            file_names.push(&s.file_name);
        }
    }
    for file in file_names {
        let indices: Vec<usize> = (0..header.signals.len()).filter(|&i| header.signals[i].file_name == file).collect();
        let first = &header.signals[indices[0]];
        if let Some(i) = indices.iter().find(|&&i| header.signals[i].format != first.format) {
            return Err(EcgError::Signal(format!(
                "{file}: signals in one file must share a storage format ({} and {})",
                first.format, header.signals[*i].format
            )));
        }
        let bytes = find(&base(file)).ok_or_else(|| EcgError::MissingFile {
            record: header.record.clone(),
            what: format!("the signal file {file}"),
        })?;
        let decoded =
            decode_signal_file(file, bytes, first.format, first.byte_offset, indices.len(), samples_per_signal)?;
        samples_per_signal = Some(decoded.first().map_or(0, |d| d.len() as u64));
        for (i, values) in indices.into_iter().zip(decoded) {
            adc[i] = Some(values);
        }
    }

    let mut leads = Vec::new();
    for (k, (spec, values)) in header.signals.iter().zip(adc).enumerate() {
        let Some(uv_per_unit) = microvolts_per_unit(&spec.units) else {
            continue;
        };
        let values = values.unwrap_or_default();
        let name =
            if spec.description.is_empty() { format!("signal {k}") } else { standard_lead_name(&spec.description) };
        let samples_uv =
            values
                .into_iter()
                .map(|v| {
                    if v == INVALID {
                        0
                    } else {
                        to_uv((i64::from(v) - spec.baseline) as f64 / spec.gain, uv_per_unit)
                    }
                })
                .collect();
        leads.push(Lead { name, samples_uv });
    }
    if leads.is_empty() && !header.signals.is_empty() {
        return Err(EcgError::Signal(format!(
            "WFDB record {}: no signal is in a voltage unit, so none is an ECG lead",
            header.record
        )));
    }

    let atr_name = format!("{}.atr", header.record);
    let reference_beats_s = match find(&atr_name) {
        Some(bytes) => Some(
            parse_annotations(&atr_name, bytes)?
                .iter()
                .filter(|a| a.is_beat())
                .map(|a| a.sample as f64 / header.sample_rate_hz)
                .collect(),
        ),
        None => None,
    };

    EcgRecord {
        sample_rate_hz: header.sample_rate_hz,
        leads,
        acquisition_time: acquisition_time(&header),
        device: None,
        source_format: EcgFormat::Wfdb,
        reference_beats_s,
        device_measurements: None,
    }
    .validated()
}

/// `dd/mm/yyyy` + `hh:mm:ss[.sss]` → `yyyy-mm-ddThh:mm:ss[.sss]` (local time, no offset).
fn acquisition_time(header: &Header) -> Option<String> {
    let date = header.base_date.as_deref()?;
    let time = header.base_time.as_deref()?;
    let mut d = date.split('/').map(|p| p.parse::<u32>().ok());
    let (day, month, year) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, m, s) = (t.next()?, t.next()?, t.next().unwrap_or("0"));
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: u32 = whole.parse().ok()?;
    if !(1..=31).contains(&day) || !(1..=12).contains(&month) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let frac =
        if frac.is_empty() || !frac.chars().all(|c| c.is_ascii_digit()) { String::new() } else { format!(".{frac}") };
    Some(format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}{frac}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "# comment\n\
        rec 2 360 4 10:20:30 05/06/2021\n\
        rec.dat 212 200 11 1024 995 -22131 0 MLII\n\
        rec.dat 212 200(1000)/uV 11 1024 1011 20052 0 V5\n";

    fn pack_212(samples: &[i32]) -> Vec<u8> {
        samples
            .chunks(2)
            .flat_map(|p| {
                let a = p[0] & 0xFFF;
                let b = p.get(1).copied().unwrap_or(0) & 0xFFF;
                [(a & 0xFF) as u8, (((a >> 8) & 0x0F) | ((b >> 4) & 0xF0)) as u8, (b & 0xFF) as u8]
            })
            .collect()
    }

    #[test]
    fn header_fields_are_read() {
        let h = parse_header("rec.hea", HEADER).unwrap();
        assert_eq!(h.record, "rec");
        assert_eq!(h.sample_rate_hz, 360.0);
        assert_eq!(h.samples_per_signal, Some(4));
        assert_eq!(h.signals[0].baseline, 1024);
        assert_eq!(h.signals[1].baseline, 1000);
        assert_eq!(h.signals[1].units, "uV");
        assert_eq!(h.signals[0].description, "MLII");
        assert_eq!(acquisition_time(&h).as_deref(), Some("2021-06-05T10:20:30"));
    }

    #[test]
    fn format_212_round_trips_and_converts_to_microvolts() {
        let interleaved = [1224, 1000, 824, 1001, 1024, -2047, 2047, 1000];
        let dat = pack_212(&interleaved);
        let rec = parse_record(&[("rec.hea", HEADER.as_bytes()), ("rec.dat", &dat)]).unwrap();
        assert_eq!(rec.leads[0].name, "MLII");
        assert_eq!(rec.leads[0].samples_uv, vec![1000, -1000, 0, 5115]);
        assert_eq!(rec.leads[1].samples_uv, vec![0, 0, -15, 0]);
        assert_eq!(rec.acquisition_time.as_deref(), Some("2021-06-05T10:20:30"));
    }

    #[test]
    fn a_short_dat_is_reported_as_truncated() {
        let dat = pack_212(&[1024, 1024]);
        let err = parse_record(&[("rec.hea", HEADER.as_bytes()), ("rec.dat", &dat)]).unwrap_err();
        assert_eq!(err.to_string(), "truncated .dat: expected 4 samples for 2 signals, file holds 1");
    }

    #[test]
    fn missing_signal_file_and_broken_headers_are_named() {
        let err = parse_record(&[("rec.hea", HEADER.as_bytes())]).unwrap_err();
        assert!(err.to_string().contains("the signal file rec.dat is missing"), "{err}");
        let bad = "rec 2 360 4\nrec.dat 212 200 11 1024 995 -22131 0 MLII\n";
        let err = parse_header("rec.hea", bad).unwrap_err();
        assert!(err.to_string().contains("announces 2 signals, the header describes 1"));
        assert!(parse_header("x.hea", "rec/3 2 360\n").is_err());
        assert!(parse_header("x.hea", "rec 2 abc\n").is_err());
        let odd = "rec 1 360 4\nrec.dat 212é 200 11 1024 0 0 0 I\n";
        assert!(parse_header("rec.hea", odd).unwrap_err().to_string().contains("invalid storage format"));
        let fmt = "rec 1 360 4\nrec.dat 310 200 11 1024 0 0 0 I\n";
        let err = parse_record(&[("rec.hea", fmt.as_bytes()), ("rec.dat", &[0u8; 12][..])]).unwrap_err();
        assert!(err.to_string().contains("format 310 is not supported"), "{err}");
    }

    #[test]
    fn annotations_handle_skip_aux_num_sub_and_chn() {
        let mut b: Vec<u8> = Vec::new();
        let mut word = |code: u16, value: u16| b.extend((code << 10 | value).to_le_bytes());
        word(28, 18); // rhythm change at 18, aux follows
        word(63, 3);
        let mut out = b.clone();
        out.extend(b"(N\0\0");
        let mut b = out;
        let mut word = |code: u16, value: u16| b.extend((code << 10 | value).to_le_bytes());
        word(1, 100); // N at 118
        word(62, 1);
        word(61, 2);
        word(5, 10); // V at 128, channel 1, subtype 2
        word(59, 0);
        b.extend(0u16.to_le_bytes());
        b.extend(1000u16.to_le_bytes());
        b.extend((8u16 << 10).to_le_bytes()); // A at 1128
        b.extend([0, 0]);
        let anns = parse_annotations("x.atr", &b).unwrap();
        let summary: Vec<(u64, &str)> = anns.iter().map(|a| (a.sample, a.mnemonic())).collect();
        assert_eq!(summary, vec![(18, "+"), (118, "N"), (128, "V"), (1128, "A")]);
        assert_eq!(anns[0].aux.as_deref(), Some("(N"));
        assert_eq!((anns[2].channel, anns[2].subtype), (1, 2));
        assert_eq!(anns.iter().filter(|a| a.is_beat()).count(), 3);
        // A non-conducted P wave (`x`) is no beat; a fusion of ventricular and normal (`f`) is.
        assert_eq!(mnemonic(37), "x");
        assert!(!is_beat_code(37));
        assert!(is_beat_code(38));
    }

    #[test]
    fn truncated_annotations_are_errors() {
        let skip = (59u16 << 10).to_le_bytes();
        assert!(parse_annotations("x.atr", &skip).is_err());
        let aux = [(63u16 << 10 | 8).to_le_bytes(), [1, 2]].concat();
        assert!(parse_annotations("x.atr", &aux).is_err());
        assert!(parse_annotations("x.atr", &[1]).is_err());
    }

    #[test]
    fn header_detection_by_content() {
        assert!(looks_like_header("anything", HEADER.as_bytes()));
        assert!(!looks_like_header("x.hea", b"I,II\n1,2\n"));
        assert!(!looks_like_header("x.hea", b"\x00\x01\x02"));
    }
}
