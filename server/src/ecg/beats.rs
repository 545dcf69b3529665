//! Beat classification (normal / ventricular ectopic) and the atrial fibrillation flag.
//!
//! Each detected beat is compared with the recording's dominant beat on the detection leads:
//! - every lead is band-passed 1–40 Hz (zero phase); a beat is its samples from R − 80 ms to
//!   R + 120 ms, its mean removed, the leads side by side;
//! - the **template** is the sample-wise median of the beats (the dominant morphology);
//!   after a first classification it is rebuilt from the beats called normal, and the beats
//!   are classified again (so a bigeminal rhythm does not make a mixed template);
//! - **correlation**: Pearson correlation of the beat with the template, the best over shifts
//!   of ±20 ms (the R peak of a wide beat is not placed where a normal one is);
//! - **width**: how long the summed absolute slope of the leads (each scaled by its median
//!   beat slope) stays above 20 % of the beat's own peak slope around the R peak (gaps of
//!   under 20 ms bridged);
//! - a beat is **ventricular ectopic** when its correlation is under 0.70, or when it is under
//!   0.90 and the beat is at least 1.4 × the template's width and at least 90 ms wide. The
//!   others are **normal** (which here means "dominant morphology": supraventricular beats are
//!   not told apart);
//! - a **second supraventricular morphology**: when the beats called ventricular that share
//!   one shape (correlation of at least 0.90 with their own median beat) are at least a tenth
//!   of all beats, come on time (the median interval before them at least 0.95 × the median
//!   interval between normal beats) and are followed by no pause (the median interval after
//!   them at most 1.05 × the one before), they are the rhythm's own beats conducted another
//!   way (an intermittent bundle branch block: MIT-BIH 212) and are called normal. Ventricular
//!   premature beats come early and are followed by a pause (MIT-BIH 119, 200, 208, 233: the
//!   intervals before them 0.60–0.92 × the normal one, after them 1.2–1.5 ×), and the rule
//!   never looks at fewer than a tenth of the beats, so a run of ventricular beats at the
//!   sinus rate among others is not taken for one (a record made of nothing else would be).
//!
//! Atrial fibrillation is flagged (as a computer-assisted finding, never a diagnosis) when,
//! over at least 6 RR intervals between beats of the dominant morphology, the rhythm is
//! irregular (fewer than 60 % of successive RR differences under 50 ms... see
//! [`irregular_rr`]) and, on a recording whose median beat could be delineated, no P wave was
//! found.

use serde::{Deserialize, Serialize};

use super::filter::band_pass_each;
use super::qrs::median_in_place;

/// What a beat is, by its morphology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BeatClass {
    /// The dominant morphology (sinus and other supraventricular beats).
    Normal,
    /// Ventricular ectopic: a QRS unlike the dominant one, or wide and unlike it.
    Ventricular,
}

const PRE_S: f64 = 0.080;
const POST_S: f64 = 0.120;
const SHIFT_S: f64 = 0.020;
const CORRELATION_ECTOPIC: f64 = 0.70;
const CORRELATION_WIDE: f64 = 0.90;
const WIDE_RATIO: f64 = 1.4;
const WIDE_MIN_S: f64 = 0.090;

/// Classifies each beat (`r_peaks` in samples, ascending) on `leads` sampled at `fs` Hz.
pub fn classify(leads: &[&[i32]], fs: f64, r_peaks: &[usize]) -> Vec<BeatClass> {
    let n = leads.iter().map(|l| l.len()).min().unwrap_or(0);
    let at = |s: f64| (s * fs).round() as usize;
    let (pre, post, shift) = (at(PRE_S), at(POST_S), at(SHIFT_S).max(1));
    if leads.is_empty() || r_peaks.len() < 3 || pre == 0 {
        return vec![BeatClass::Normal; r_peaks.len()];
    }
    let mut filtered: Vec<Vec<f64>> = leads.iter().map(|l| l[..n].iter().map(|&v| f64::from(v)).collect()).collect();
    band_pass_each(&mut filtered, 1.0, 40.0, fs);
    let width = pre + post;
    // A beat's window, shifted by `offset` samples; None where it leaves the recording.
    let window = |r: usize, offset: isize| -> Option<Vec<f64>> {
        let start = r as isize - pre as isize + offset;
        if start < 0 || start as usize + width > n {
            return None;
        }
        let start = start as usize;
        let mut out = Vec::with_capacity(width * filtered.len());
        for y in &filtered {
            let seg = &y[start..start + width];
            let mean = seg.iter().sum::<f64>() / width as f64;
            out.extend(seg.iter().map(|v| v - mean));
        }
        Some(out)
    };

    // Per-lead slope scale: the median over beats of the lead's peak slope near R.
    let slope_scale: Vec<f64> = filtered
        .iter()
        .map(|y| {
            let mut peaks: Vec<f64> = r_peaks
                .iter()
                .filter(|&&r| r >= pre && r + post + 1 < n)
                .map(|&r| (r - pre..r + post).map(|i| (y[i + 1] - y[i]).abs()).fold(0.0, f64::max))
                .collect();
            median_in_place(&mut peaks).unwrap_or(0.0)
        })
        .collect();
    let widths: Vec<Option<f64>> = r_peaks.iter().map(|&r| qrs_width(&filtered, &slope_scale, fs, r)).collect();

    let mut classes = vec![BeatClass::Normal; r_peaks.len()];
    for _pass in 0..2 {
        let members: Vec<usize> = (0..r_peaks.len()).filter(|&i| classes[i] == BeatClass::Normal).collect();
        let Some(template) = template(&members, r_peaks, &window) else {
            break;
        };
        let mut member_widths: Vec<f64> = members.iter().filter_map(|&i| widths[i]).collect();
        let template_width = median_in_place(&mut member_widths).unwrap_or(0.0);
        for (i, &r) in r_peaks.iter().enumerate() {
            let correlation = best_correlation(r, &template, shift, &window);
            if !correlation.is_finite() {
                classes[i] = BeatClass::Normal;
                continue;
            }
            let wide = widths[i].is_some_and(|w| w >= WIDE_RATIO * template_width && w >= WIDE_MIN_S);
            classes[i] = if correlation < CORRELATION_ECTOPIC || (wide && correlation < CORRELATION_WIDE) {
                BeatClass::Ventricular
            } else {
                BeatClass::Normal
            };
        }
    }
    second_morphology(r_peaks, &mut classes, shift, &window);
    classes
}

const SECOND_MORPHOLOGY_CORRELATION: f64 = 0.90;
const SECOND_MORPHOLOGY_SHARE: f64 = 0.10;
const ON_TIME: f64 = 0.95;
const NO_PAUSE: f64 = 1.05;

/// Calls normal the beats of a second supraventricular morphology among those called
/// ventricular (see the module documentation).
fn second_morphology(
    r_peaks: &[usize],
    classes: &mut [BeatClass],
    shift: usize,
    window: &impl Fn(usize, isize) -> Option<Vec<f64>>,
) {
    let called: Vec<usize> = (1..r_peaks.len()).filter(|&i| classes[i] == BeatClass::Ventricular).collect();
    let Some(shape) = template(&called, r_peaks, window) else {
        return;
    };
    let alike: Vec<usize> = called
        .into_iter()
        .filter(|&i| best_correlation(r_peaks[i], &shape, shift, window) >= SECOND_MORPHOLOGY_CORRELATION)
        .collect();
    if (alike.len() as f64) < SECOND_MORPHOLOGY_SHARE * r_peaks.len() as f64 {
        return;
    }
    let interval = |i: usize| (r_peaks[i] - r_peaks[i - 1]) as f64;
    let mut normal: Vec<f64> = (1..r_peaks.len())
        .filter(|&k| classes[k] == BeatClass::Normal && classes[k - 1] == BeatClass::Normal)
        .map(interval)
        .collect();
    let mut before: Vec<f64> = alike.iter().map(|&i| interval(i)).collect();
    let mut after: Vec<f64> = alike.iter().filter(|&&i| i + 1 < r_peaks.len()).map(|&i| interval(i + 1)).collect();
    let (Some(normal), Some(before), Some(after)) =
        (median_in_place(&mut normal), median_in_place(&mut before), median_in_place(&mut after))
    else {
        return;
    };
    if normal > 0.0 && before >= ON_TIME * normal && after <= NO_PAUSE * before {
        for i in alike {
            classes[i] = BeatClass::Normal;
        }
    }
}

/// The beat at `r` correlated with `template`, the best over shifts of up to `shift` samples
/// (negative infinity when no shifted window fits in the recording).
fn best_correlation(
    r: usize,
    template: &[f64],
    shift: usize,
    window: &impl Fn(usize, isize) -> Option<Vec<f64>>,
) -> f64 {
    (-(shift as isize)..=shift as isize)
        .filter_map(|o| window(r, o))
        .map(|w| pearson(&w, template))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// The sample-wise median of the windows of `members` (at most 400 of them, evenly spread).
fn template(
    members: &[usize],
    r_peaks: &[usize],
    window: &impl Fn(usize, isize) -> Option<Vec<f64>>,
) -> Option<Vec<f64>> {
    let step = members.len().div_ceil(400).max(1);
    let windows: Vec<Vec<f64>> = members.iter().step_by(step).filter_map(|&i| window(r_peaks[i], 0)).collect();
    if windows.len() < 3 {
        return None;
    }
    let len = windows[0].len();
    let mut column = Vec::with_capacity(windows.len());
    Some(
        (0..len)
            .map(|k| {
                column.clear();
                column.extend(windows.iter().map(|w| w[k]));
                median_in_place(&mut column).unwrap_or(0.0)
            })
            .collect(),
    )
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa <= 0.0 || bb <= 0.0 {
        return f64::NAN;
    }
    ab / (aa * bb).sqrt()
}

/// The QRS width of the beat at `r`, in seconds (see the module documentation).
fn qrs_width(filtered: &[Vec<f64>], scale: &[f64], fs: f64, r: usize) -> Option<f64> {
    let at = |s: f64| (s * fs).round() as usize;
    let n = filtered.first()?.len();
    let (lo, hi) = (r.checked_sub(at(0.200))?, r + at(0.200));
    if hi + 1 >= n {
        return None;
    }
    let slope: Vec<f64> = (lo..hi)
        .map(|i| {
            filtered.iter().zip(scale).filter(|(_, &s)| s > 0.0).map(|(y, s)| (y[i + 1] - y[i]).abs() / s).sum::<f64>()
        })
        .collect();
    let centre = r - lo;
    let near = centre.saturating_sub(at(0.080))..(centre + at(0.080)).min(slope.len());
    let (peak_at, peak) = near.map(|i| (i, slope[i])).max_by(|a, b| a.1.total_cmp(&b.1))?;
    if peak <= 0.0 {
        return None;
    }
    let threshold = 0.2 * peak;
    let gap = at(0.020).max(1);
    let extent = |step: isize| {
        let (mut edge, mut quiet, mut i) = (peak_at, 0, peak_at as isize);
        loop {
            i += step;
            if i < 0 || i as usize >= slope.len() {
                break;
            }
            if slope[i as usize] >= threshold {
                edge = i as usize;
                quiet = 0;
            } else {
                quiet += 1;
                if quiet > gap {
                    break;
                }
            }
        }
        edge
    };
    let (onset, offset) = (extent(-1), extent(1));
    Some((offset - onset) as f64 / fs)
}

/// The fewest RR intervals between dominant beats on which the rhythm's irregularity is judged.
const MIN_RR_INTERVALS: usize = 6;

/// Whether the RR intervals between consecutive beats of the dominant morphology are
/// irregular the way atrial fibrillation's are: at least 6 of them (a 10 s ECG at 60 bpm
/// holds 9, fewer between dominant beats when ventricular ones come between), whose successive
/// differences are large (the fraction of differences over 50 ms above 40 %, pNN50-like, and
/// the RMSSD over 8 % of the mean RR). `None` with fewer intervals.
pub fn irregular_rr(rr_normal_ms: &[f64]) -> Option<bool> {
    if rr_normal_ms.len() < MIN_RR_INTERVALS {
        return None;
    }
    let mean = rr_normal_ms.iter().sum::<f64>() / rr_normal_ms.len() as f64;
    let diffs: Vec<f64> = rr_normal_ms.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    let rmssd = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt();
    let large = diffs.iter().filter(|&&d| d > 50.0).count() as f64 / diffs.len() as f64;
    Some(large > 0.4 && rmssd > 0.08 * mean)
}

/// Whether the rhythm looks like atrial fibrillation: irregular RR intervals
/// ([`irregular_rr`]) and no P wave (`p_wave_found` false). `None` when it cannot be judged:
/// too few intervals, or nothing known about the P wave.
pub fn atrial_fibrillation(rr_normal_ms: &[f64], p_wave_found: Option<bool>) -> Option<bool> {
    let irregular = irregular_rr(rr_normal_ms)?;
    Some(irregular && !p_wave_found?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecg::qrs::tests::{beat_times, synthetic_lead};

    /// Adds a wide, opposite-polarity complex (a synthetic PVC) centred at `t`.
    fn add_pvc(lead: &mut [i32], fs: f64, t: f64, scale: f64) {
        for (i, v) in lead.iter_mut().enumerate() {
            let dt = i as f64 / fs - t;
            let wide =
                -1400.0 * (-(dt / 0.035).powi(2) / 2.0).exp() + 500.0 * (-((dt - 0.07) / 0.03).powi(2) / 2.0).exp();
            *v += (scale * wide).round() as i32;
        }
    }

    #[test]
    fn wide_beats_of_another_shape_are_ventricular() {
        let fs = 360.0;
        let normal = beat_times(30.0);
        let pvcs: Vec<f64> = normal.windows(2).step_by(5).map(|w| (w[0] + w[1]) / 2.0 + 0.05).collect();
        let mut a = synthetic_lead(fs, 30.0, &normal, 1.0);
        let mut b = synthetic_lead(fs, 30.0, &normal, 0.5);
        for &t in &pvcs {
            add_pvc(&mut a, fs, t, 1.0);
            add_pvc(&mut b, fs, t, -0.6);
        }
        let mut all: Vec<(f64, BeatClass)> = normal.iter().map(|&t| (t, BeatClass::Normal)).collect();
        all.extend(pvcs.iter().map(|&t| (t, BeatClass::Ventricular)));
        all.sort_by(|x, y| x.0.total_cmp(&y.0));
        let peaks: Vec<usize> = all.iter().map(|(t, _)| (t * fs).round() as usize).collect();
        let classes = classify(&[&a, &b], fs, &peaks);
        let expected: Vec<BeatClass> = all.iter().map(|(_, c)| *c).collect();
        assert_eq!(classes, expected);
    }

    #[test]
    fn wide_beats_on_time_and_without_a_pause_are_the_rhythms_own() {
        // Every fourth beat conducted with a wide complex of another shape, at the rhythm's
        // own pace (an intermittent bundle branch block): normal. The same complexes early and
        // followed by a pause: ventricular.
        let fs = 360.0;
        let times = beat_times(40.0);
        let wide: Vec<f64> = times.iter().copied().skip(2).step_by(4).collect();
        let narrow: Vec<f64> = times.iter().copied().filter(|t| !wide.contains(t)).collect();
        let lead = |early: f64| {
            let mut a = synthetic_lead(fs, 40.0, &narrow, 1.0);
            let mut b = synthetic_lead(fs, 40.0, &narrow, 0.5);
            for &t in &wide {
                add_pvc(&mut a, fs, t - early, 1.0);
                add_pvc(&mut b, fs, t - early, -0.6);
            }
            (a, b)
        };
        let peaks = |early: f64| -> Vec<usize> {
            let mut all: Vec<f64> = narrow.clone();
            all.extend(wide.iter().map(|t| t - early));
            all.sort_by(f64::total_cmp);
            all.iter().map(|t| (t * fs).round() as usize).collect()
        };
        let (a, b) = lead(0.0);
        assert!(classify(&[&a, &b], fs, &peaks(0.0)).iter().all(|c| *c == BeatClass::Normal));
        let (a, b) = lead(0.3);
        let classes = classify(&[&a, &b], fs, &peaks(0.3));
        let ventricular = classes.iter().filter(|c| **c == BeatClass::Ventricular).count();
        assert_eq!(ventricular, wide.len(), "early, with a pause after: ventricular");
    }

    #[test]
    fn a_regular_recording_is_all_normal() {
        let fs = 500.0;
        let times = beat_times(20.0);
        let a = synthetic_lead(fs, 20.0, &times, 1.0);
        let peaks: Vec<usize> = times.iter().map(|t| (t * fs).round() as usize).collect();
        assert!(classify(&[&a], fs, &peaks).iter().all(|c| *c == BeatClass::Normal));
    }

    #[test]
    fn atrial_fibrillation_needs_irregular_rr_and_no_p_wave() {
        let irregular = [620.0, 910.0, 540.0, 780.0, 1010.0, 600.0, 850.0, 560.0, 940.0, 700.0];
        let regular = [800.0, 810.0, 790.0, 805.0, 800.0, 795.0, 810.0, 800.0, 790.0];
        assert_eq!(atrial_fibrillation(&irregular, Some(false)), Some(true));
        assert_eq!(atrial_fibrillation(&irregular, Some(true)), Some(false));
        assert_eq!(atrial_fibrillation(&regular, Some(false)), Some(false));
        assert_eq!(atrial_fibrillation(&irregular[..6], Some(false)), Some(true));
        assert_eq!(atrial_fibrillation(&irregular[..5], Some(false)), None);
        assert_eq!(atrial_fibrillation(&irregular, None), None);
    }
}
