//! The CSV layout for devices that export only text (documented in `docs/ecg.md`):
//!
//! ```text
//! # sample_rate_hz=500
//! # acquisition_time=2026-11-23T09:30:00+08:00
//! # device=Example cart
//! # units=uV
//! I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6
//! -12,35,47,-11,-29,41,-80,-60,10,90,120,100
//! ...
//! ```
//!
//! Comment lines start with `#` and may carry `key=value` metadata before the header row
//! (`sample_rate_hz`, `acquisition_time`, `device`, `units` = `uV` (default) or `mV`; other
//! keys are ignored). The header row names the leads; the delimiter is a comma, semicolon or
//! tab, taken from the header row. An optional first column `time_s` holds the time of each
//! row in seconds; without a `sample_rate_hz` line the rate is derived from it. Then one row
//! per sample, one number per lead.

use super::{
    check_sample_rate, check_total_samples, microvolts_per_unit, standard_lead_name, to_uv, EcgError, EcgFormat,
    EcgRecord, Lead,
};

const TIME_COLUMN: &str = "time_s";

/// Whether `bytes` read as the documented CSV layout: a header row of lead names followed by
/// a row of as many numbers.
pub fn looks_like_csv(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) => match std::str::from_utf8(&head[..e.valid_up_to()]) {
            Ok(t) => t,
            Err(_) => return false,
        },
    };
    let mut rows =
        text.trim_start_matches('\u{feff}').lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let (Some(header), Some(first)) = (rows.next(), rows.next()) else {
        return false;
    };
    let delimiter = delimiter_of(header);
    let names: Vec<&str> = header.split(delimiter).map(str::trim).collect();
    let values: Vec<&str> = first.split(delimiter).map(str::trim).collect();
    !names.is_empty()
        && names.len() == values.len()
        && names.iter().all(|n| !n.is_empty() && n.parse::<f64>().is_err())
        && values.iter().all(|v| v.parse::<f64>().is_ok())
}

fn delimiter_of(header: &str) -> char {
    [',', ';', '\t']
        .into_iter()
        .max_by_key(|d| header.matches(*d).count())
        .filter(|d| header.contains(*d))
        .unwrap_or(',')
}

/// Parses a recording in the documented CSV layout.
pub fn parse(bytes: &[u8]) -> Result<EcgRecord, EcgError> {
    let text = std::str::from_utf8(bytes).map_err(|e| EcgError::Csv {
        line: bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1,
        reason: "not UTF-8 text".into(),
    })?;
    let err = |line: usize, reason: String| EcgError::Csv { line, reason };
    let mut sample_rate_hz: Option<f64> = None;
    let mut acquisition_time = None;
    let mut device = None;
    let mut uv_per_unit = 1.0;
    let mut header: Option<(usize, Vec<String>, char, bool)> = None;
    let mut columns: Vec<Vec<i32>> = Vec::new();
    let mut times: Vec<f64> = Vec::new();

    for (index, raw) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if header.is_some() {
                continue;
            }
            let Some((key, value)) = comment.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "sample_rate_hz" => {
                    let fs: f64 =
                        value.parse().map_err(|_| err(line_no, format!("invalid sample_rate_hz {value:?}")))?;
                    check_sample_rate(fs).map_err(|e| err(line_no, e.to_string()))?;
                    sample_rate_hz = Some(fs);
                }
                "acquisition_time" if !value.is_empty() => acquisition_time = Some(value.to_string()),
                "device" if !value.is_empty() => device = Some(value.to_string()),
                "units" => {
                    uv_per_unit = microvolts_per_unit(value)
                        .ok_or_else(|| err(line_no, format!("units {value:?} is not uV or mV")))?
                }
                _ => {}
            }
            continue;
        }
        match &header {
            None => {
                let delimiter = delimiter_of(line);
                let mut names: Vec<String> = line.split(delimiter).map(|n| n.trim().to_string()).collect();
                let has_time = names.first().is_some_and(|n| n.eq_ignore_ascii_case(TIME_COLUMN));
                if has_time {
                    names.remove(0);
                }
                if names.is_empty() || names.iter().any(String::is_empty) {
                    return Err(err(line_no, "the header row has an empty lead name".into()));
                }
                if let Some(n) = names.iter().find(|n| n.parse::<f64>().is_ok()) {
                    return Err(err(line_no, format!("the header row must name the leads, found the number {n}")));
                }
                if names.len() > super::MAX_LEADS {
                    return Err(err(
                        line_no,
                        format!("{} leads is more than the {} accepted", names.len(), super::MAX_LEADS),
                    ));
                }
                columns = names.iter().map(|_| Vec::new()).collect();
                header = Some((line_no, names, delimiter, has_time));
            }
            Some((_, names, delimiter, has_time)) => {
                let mut cells = line.split(*delimiter).map(str::trim);
                if *has_time {
                    let cell = cells.next().unwrap_or_default();
                    let t: f64 = cell.parse().map_err(|_| err(line_no, format!("invalid time_s {cell:?}")))?;
                    if times.len() < 2 {
                        times.push(t);
                    }
                }
                let mut count = 0;
                for (column, cell) in columns.iter_mut().zip(cells.by_ref()) {
                    let v: f64 = cell
                        .parse()
                        .map_err(|_| err(line_no, format!("{cell:?} in lead {} is not a number", names[count])))?;
                    if !v.is_finite() {
                        return Err(err(line_no, format!("{cell:?} is not a finite number")));
                    }
                    column.push(to_uv(v, uv_per_unit));
                    count += 1;
                }
                let extra = cells.count();
                if count != names.len() || extra > 0 {
                    return Err(err(
                        line_no,
                        format!("{} values where the header names {} leads", count + extra, names.len()),
                    ));
                }
                check_total_samples((columns[0].len() * columns.len()) as u64)
                    .map_err(|e| err(line_no, e.to_string()))?;
            }
        }
    }
    let Some((header_line, names, _, _)) = header else {
        return Err(err(1, "no header row naming the leads".into()));
    };
    let sample_rate_hz = match (sample_rate_hz, times.as_slice()) {
        (Some(fs), _) => fs,
        (None, [t0, t1]) if t1 > t0 => {
            let fs = 1.0 / (t1 - t0);
            check_sample_rate(fs).map_err(|e| err(header_line + 2, e.to_string()))?;
            fs
        }
        _ => {
            return Err(err(
                header_line,
                "the sample rate is unknown: add a '# sample_rate_hz=500' line or a time_s column".into(),
            ))
        }
    };
    if columns.first().is_none_or(Vec::is_empty) {
        return Err(err(header_line, "no sample row after the header".into()));
    }
    let leads = names
        .iter()
        .zip(columns)
        .map(|(name, samples_uv)| Lead { name: standard_lead_name(name), samples_uv })
        .collect();
    EcgRecord {
        sample_rate_hz,
        leads,
        acquisition_time,
        device,
        source_format: EcgFormat::Csv,
        reference_beats_s: None,
        device_measurements: None,
    }
    .validated()
}

/// Writes a record in the documented CSV layout (samples in microvolts).
pub fn write(record: &EcgRecord) -> String {
    let mut out = format!("# sample_rate_hz={}\n", record.sample_rate_hz);
    if let Some(t) = &record.acquisition_time {
        out.push_str(&format!("# acquisition_time={t}\n"));
    }
    if let Some(d) = &record.device {
        out.push_str(&format!("# device={d}\n"));
    }
    out.push_str("# units=uV\n");
    let names: Vec<&str> = record.leads.iter().map(|l| l.name.as_str()).collect();
    out.push_str(&names.join(","));
    out.push('\n');
    for i in 0..record.samples_per_lead() {
        let row: Vec<String> =
            record.leads.iter().map(|l| l.samples_uv.get(i).copied().unwrap_or(0).to_string()).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metadata_header_and_rows() {
        let text = "# sample_rate_hz=250\n# device=Cart X\n# units=mV\nlead i;avf\n0.5;-1\n1.25;0\n";
        let r = parse(text.as_bytes()).unwrap();
        assert_eq!(r.sample_rate_hz, 250.0);
        assert_eq!(r.device.as_deref(), Some("Cart X"));
        assert_eq!(r.leads[1].name, "aVF");
        assert_eq!(r.leads[0].name, "lead i");
        assert_eq!(r.leads[0].samples_uv, vec![500, 1250]);
        assert_eq!(r.leads[1].samples_uv, vec![-1000, 0]);
    }

    #[test]
    fn time_column_gives_the_rate() {
        let text = "time_s,II\n0.000,10\n0.002,20\n0.004,30\n";
        let r = parse(text.as_bytes()).unwrap();
        assert!((r.sample_rate_hz - 500.0).abs() < 1e-6);
        assert_eq!(r.leads[0].samples_uv, vec![10, 20, 30]);
        assert!(looks_like_csv(text.as_bytes()));
    }

    #[test]
    fn broken_rows_name_the_line() {
        let short = "# sample_rate_hz=500\nI,II\n1,2\n3\n";
        assert_eq!(
            parse(short.as_bytes()).unwrap_err().to_string(),
            "CSV line 4: 1 values where the header names 2 leads"
        );
        let word = "# sample_rate_hz=500\nI,II\n1,x\n";
        assert_eq!(parse(word.as_bytes()).unwrap_err().to_string(), "CSV line 3: \"x\" in lead II is not a number");
        let no_rate = "I,II\n1,2\n";
        assert!(parse(no_rate.as_bytes()).unwrap_err().to_string().contains("sample rate is unknown"));
        assert!(parse(b"# sample_rate_hz=0\nI\n1\n").is_err());
        assert!(parse(b"# sample_rate_hz=500\nI\n").is_err());
        assert!(parse(b"\xff\xfe").is_err());
    }

    #[test]
    fn what_is_written_reads_back() {
        let text = "# sample_rate_hz=500\nI,II\n1,2\n-3,4\n";
        let r = parse(text.as_bytes()).unwrap();
        assert_eq!(parse(write(&r).as_bytes()).unwrap(), r);
    }
}
