//! The JSON view of a recording served to the viewer, optionally decimated for an overview.

use serde::Serialize;

use super::{DeviceMeasurements, EcgFormat, EcgRecord, Measurements, PRE_READ_LABEL};

/// What `GET /api/v1/files/{id}/ecg` returns.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct EcgView {
    /// Rate of the samples in `leads` (after decimation, if any).
    pub sample_rate_hz: f64,
    pub duration_s: f64,
    pub leads: Vec<LeadView>,
    pub measurements: Measurements,
    pub acquisition_time: Option<String>,
    pub device: Option<String>,
    pub format: EcgFormat,
    /// The recording device's own measurements, when the file carries them.
    pub device_measurements: Option<DeviceMeasurements>,
    /// Sample rate of the recording as stored.
    pub source_sample_rate_hz: f64,
    /// Samples of the recording per sample pair in `leads` when decimated (min-max
    /// decimation keeps each block's lowest and highest sample, in time order); 1 when not.
    pub decimation_factor: usize,
    /// Says that the measurements are a computer-assisted pre-read, not a diagnosis.
    pub label: &'static str,
}

/// One lead of the view.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LeadView {
    pub name: String,
    /// Always `"uV"`.
    pub unit: &'static str,
    pub samples: Vec<i32>,
}

/// Builds the view. With `max_points_per_lead`, a lead longer than that is min-max
/// decimated: blocks of `factor` samples each become their minimum and maximum in time
/// order, so R peaks survive, and `sample_rate_hz` becomes `2 × rate / factor`.
pub fn to_view(record: &EcgRecord, measurements: &Measurements, max_points_per_lead: Option<usize>) -> EcgView {
    let n = record.samples_per_lead();
    let factor = match max_points_per_lead {
        Some(max) if max >= 2 && n > max => {
            let f = n.div_ceil(max / 2);
            f + (f % 2)
        }
        Some(max) if max < 2 && n > max => n.max(2),
        _ => 1,
    };
    let leads = record
        .leads
        .iter()
        .map(|l| LeadView {
            name: l.name.clone(),
            unit: "uV",
            samples: if factor == 1 { l.samples_uv.clone() } else { min_max_decimate(&l.samples_uv, factor) },
        })
        .collect();
    EcgView {
        sample_rate_hz: if factor == 1 { record.sample_rate_hz } else { 2.0 * record.sample_rate_hz / factor as f64 },
        duration_s: record.duration_s(),
        leads,
        measurements: measurements.clone(),
        acquisition_time: record.acquisition_time.clone(),
        device: record.device.clone(),
        format: record.source_format,
        device_measurements: record.device_measurements.clone(),
        source_sample_rate_hz: record.sample_rate_hz,
        decimation_factor: factor,
        label: PRE_READ_LABEL,
    }
}

fn min_max_decimate(samples: &[i32], factor: usize) -> Vec<i32> {
    let mut out = Vec::with_capacity(2 * samples.len() / factor + 2);
    for block in samples.chunks(factor) {
        let (mut lo, mut hi) = (0, 0);
        for (i, v) in block.iter().enumerate() {
            if *v < block[lo] {
                lo = i;
            }
            if *v > block[hi] {
                hi = i;
            }
        }
        let (first, second) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        out.push(block[first]);
        out.push(block[second]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecg::{analyze, Lead};

    fn record(n: usize) -> EcgRecord {
        let mut samples: Vec<i32> = (0..n as i32).map(|i| i % 7).collect();
        if n > 500 {
            samples[500] = 1500;
        }
        EcgRecord {
            sample_rate_hz: 500.0,
            leads: vec![Lead { name: "II".into(), samples_uv: samples }],
            acquisition_time: Some("2026-11-23T09:30:00+08:00".into()),
            device: Some("Cart".into()),
            source_format: EcgFormat::Csv,
            reference_beats_s: None,
            device_measurements: None,
        }
    }

    #[test]
    fn json_has_the_agreed_shape() {
        let r = record(5000);
        let m = analyze(&r);
        let json = serde_json::to_value(to_view(&r, &m, None)).unwrap();
        for key in ["sample_rate_hz", "duration_s", "leads", "measurements", "label", "format"] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["leads"][0]["unit"], "uV");
        assert_eq!(json["leads"][0]["name"], "II");
        assert_eq!(json["format"], "csv");
        assert_eq!(json["duration_s"], 10.0);
        let m = &json["measurements"];
        for key in
            ["heart_rate_bpm", "rr_ms", "r_peaks_s", "pr_ms", "qrs_ms", "qt_ms", "qtc_bazett_ms", "qtc_fridericia_ms"]
        {
            assert!(m.get(key).is_some(), "{key}");
        }
        assert_eq!(m["computer_assisted"], true);
        assert!(json["label"].as_str().unwrap().contains("not a diagnosis"));
    }

    #[test]
    fn decimation_keeps_peaks_and_bounds_the_size() {
        let r = record(5000);
        let m = analyze(&r);
        let v = to_view(&r, &m, Some(1000));
        assert!(v.leads[0].samples.len() <= 1000, "{}", v.leads[0].samples.len());
        assert!(v.leads[0].samples.contains(&1500));
        assert_eq!(v.decimation_factor, 10);
        assert_eq!(v.sample_rate_hz, 100.0);
        let full = to_view(&r, &m, Some(10_000));
        assert_eq!(full.leads[0].samples.len(), 5000);
        assert_eq!(full.decimation_factor, 1);
        let tiny = to_view(&r, &m, Some(0));
        assert!(tiny.leads[0].samples.len() <= 2);
    }
}
