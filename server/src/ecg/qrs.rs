//! QRS detection: where the R peaks are.
//!
//! A Pan–Tompkins style detector over all leads together:
//! 1. each lead is band-passed 5–15 Hz (zero phase, one second-order section run forwards
//!    and backwards), differentiated, squared and integrated
//!    over a centred 150 ms window; each lead's result is scaled by its typical beat height
//!    (the median of its per-second maxima). With more than one lead, a lead counts for less
//!    where it carries more energy than usual (its energy over the surrounding 0.9 s against
//!    its median: weight 1/ratio^1.5 above 1), so a burst of noise or an electrode artefact on
//!    one lead does not drown the beats on the others; and a lead whose median energy (between
//!    beats) is a larger share of its typical beat's than the cleanest lead's counts for that
//!    ratio less in the feature all through (not in the slope below), so a lead noisy
//!    throughout does not add beats of its own. The leads are summed into one feature;
//! 2. the feature's peaks (each the largest within ±100 ms) are classified with the adaptive
//!    signal/noise thresholds of Pan and Tompkins (threshold = noise + 0.25 × (signal − noise)),
//!    a 200 ms refractory period, T-wave rejection (a peak within 360 ms of the last beat whose
//!    steepest slope is under half that beat's is a T wave), and search-back at half the
//!    threshold when no beat has come for 1.4 × the mean of the last eight RR intervals (Pan and
//!    Tompkins wait 1.66 ×; earlier finds premature beats of low slope energy before their
//!    compensatory pause), taking only a peak at least 360 ms after the last beat (not its T
//!    wave) and 3 times above the noise level (not noise where that level is high); one under 4
//!    times the noise level must also show on some lead at 0.15 of that lead's usual beat (the
//!    median of its last eight), so that in a long pause the largest ripple of a noisy lead is
//!    not taken for the beat the pause seems to lack. Past the
//!    T-wave window a peak of at least 0.7 × the threshold that stands 12 times above the noise
//!    level is a beat at once (a premature beat of low slope energy whose pause is too short
//!    for the search-back), except within 0.36 s of either end of the recording (where the
//!    filters have not settled) and when the silent-lead rule below calls it an artefact.
//!    To stay adaptive after artefacts: a beat moves the signal level as if it were at most
//!    twice the current level, a noise peak moves the noise level by at most the signal level,
//!    and when the search-back finds nothing even at half the threshold the signal level is
//!    halved (not below half the recording's typical beat) and the search repeated; a peak
//!    within 360 ms of the last beat that is taller and at least twice as steep replaces it
//!    (the earlier one was an artefact or a wave before the QRS, and moves the noise level as
//!    noise does), as does one within the 200 ms refractory period that is 1.5 times as tall
//!    whatever its slope (peaks that close share their steepest slope); past the refractory
//!    period a steeper peak replaces it only when it is also 2.5 times as tall (else the
//!    earlier one is as likely a low beat of a fast run). With more than one lead, a peak over the threshold that a lead
//!    which is at its usual energy level and showed each of the last eight beats does not show
//!    at all (its energy within ±50 ms under 3 % of the weakest of those eight beats') is an
//!    artefact of the other leads when at least half of such leads are silent, and is passed
//!    over (MIT-BIH 103: steps and saturation on V2 between beats that MLII shows clearly) —
//!    at most twice in a row, so that a lead whose beats changed for good cannot hold back
//!    every beat after;
//! 3. each beat is then placed on the R peak of the lead with the tallest QRS complexes: the
//!    QRS centre is the steepest point (30 ms smoothed squared slope of all leads) within
//!    ±30 ms of the detection, and the R peak the largest of the lead's peaks (points that are
//!    the extreme of their ±3 ms, so never the edge of a still rising wave) within ±50 ms of
//!    it (and ±100 ms of the detection) in the lead's dominant polarity, or in the other
//!    polarity when that one is more than 1.5 times as far from the local mean (a beat of
//!    opposite polarity), or simply farther when the dominant polarity's peak lies within
//!    10 ms of the search's edge on a wave that goes on rising past it (the upstroke of the
//!    broad second half of a wide ventricular beat, not its R peak).
//!
//! Every duration is in seconds and converted with the sample rate, so the detector runs
//! unchanged at 250, 360, 500 or 1000 Hz.

use super::filter::{moving_average, Biquad};

/// The beats found in a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct QrsDetection {
    /// Sample index of each R peak, ascending.
    pub r_peaks: Vec<usize>,
    /// Index (into the leads given) of the lead the R peaks were placed on.
    pub primary_lead: usize,
}

const REFRACTORY_S: f64 = 0.200;
const T_WAVE_WINDOW_S: f64 = 0.360;
const INTEGRATION_S: f64 = 0.150;
const PEAK_NEIGHBOURHOOD_S: f64 = 0.100;
const REFINE_WINDOW_S: f64 = 0.100;
const SLOPE_WINDOW_S: f64 = 0.075;
/// A beat (or an artefact taken for one) moves the signal level as if it were at most this many
/// times the current level, so that one burst of noise cannot lift the thresholds for good.
const SIGNAL_CLAMP: f64 = 2.0;
/// A peak soon after the last beat replaces it when it is taller and this many times as steep.
const REPLACE_SLOPE: f64 = 2.0;
/// Past the refractory period, the last beat is replaced only by a peak this many times as
/// tall in the feature: that far back it is as often a true beat of low slope energy in a
/// fast run (MIT-BIH 203: 1.2–1.5 times lower than the next beat) as a wave before the QRS
/// (200: 2.8–3.2 times lower).
const REPLACE_HEIGHT_PAST_REFRACTORY: f64 = 2.5;
/// Within the refractory period, a peak this many times as tall replaces the last beat whatever
/// its slope: peaks that close share their steepest slope (looked for within ±75 ms of each),
/// so the slope cannot tell them apart, and the taller is the QRS (MIT-BIH 108: a wave
/// 105–120 ms before the QRS, taken first, left the beat 150–200 ms before the reference's
/// mark).
const REPLACE_HEIGHT_WITHIN_REFRACTORY: f64 = 1.5;
/// Search-back (at half the threshold) once no beat has come for this many times the mean of
/// the last eight RR intervals (Pan and Tompkins: 1.66). Lower, so that a premature beat of
/// low slope energy (an aberrant atrial premature beat) before a compensatory pause is found.
const SEARCH_BACK_RR: f64 = 1.4;
/// A peak found by search-back must also stand this many times above the noise level, so that
/// in a noisy stretch (where half the threshold is below the noise peaks) noise is not taken.
const SEARCH_BACK_OVER_NOISE: f64 = 3.0;
/// ... and one that stands less than this many times above it must show on some lead at
/// [`SEARCH_BACK_SHOWN`] of that lead's usual beat (the median of its last eight), so that in a
/// long pause the largest ripple of a noisy lead, which no other lead shows, is not taken for
/// the beat the pause seems to lack (MIT-BIH 232: pauses of up to 6 s with a noisy V1). A
/// premature beat of low slope energy found by the search-back shows at a fifth or more of
/// the usual beat on one lead at least.
const SEARCH_BACK_CLEAR_OF_NOISE: f64 = 4.0;
const SEARCH_BACK_SHOWN: f64 = 0.15;
/// Past the T-wave window, a peak under the threshold is still a beat when it reaches this
/// fraction of the threshold and stands [`EARLY_OVER_NOISE`] times above the noise level: where
/// the noise is that low, such a peak is a premature beat of low slope energy (MIT-BIH 201's
/// aberrated atrial premature beats, 15–25 % of the usual beat's energy, often followed by a
/// pause too short for the search-back), not noise.
const EARLY_OF_THRESHOLD: f64 = 0.7;
const EARLY_OVER_NOISE: f64 = 12.0;
/// ... and when at least this much of the recording lies on either side of it: at the ends the
/// band-pass filter (run forwards and backwards) and the integration have not settled, and a
/// low peak there is as likely their transient (a clean cart recording's last 0.3 s).
const EARLY_EDGE_S: f64 = 0.36;
/// In a fast rhythm the T-wave rule's window shrinks to this fraction of the mean of the last
/// eight RR intervals (never under the refractory period): at 130 bpm and more a peak 300 ms
/// after a beat is the next beat far more often than a T wave (MIT-BIH 203's fast runs of
/// multiform ventricular beats, whose slope is under half the narrow beat's before them).
const T_WAVE_RR_FRACTION: f64 = 0.5;
/// The span over which a lead's local energy is compared with its usual energy.
const LOCAL_ENERGY_S: f64 = 0.9;
/// A lead is silent at a peak when its energy within this much of the peak is under
/// [`SILENT_FRACTION`] of the weakest of its last [`SILENT_HISTORY`] beats.
const SILENT_NEAR_S: f64 = 0.050;
const SILENT_FRACTION: f64 = 0.03;
const SILENT_HISTORY: usize = 8;
/// The silence of a lead counts only where its local energy (over [`LOCAL_ENERGY_S`]) is
/// within this range of its usual energy: not a lead gone flat or quiet in a pause, nor one
/// in a burst of noise.
const SILENT_USUAL: std::ops::Range<f64> = 0.5..1.5;
/// Peaks passed over in a row (no beat between them) before the rule rests until the next beat.
const SILENT_AT_MOST: usize = 2;
/// Smoothing of the squared slope that finds the QRS centre.
const STEEP_SMOOTHING_S: f64 = 0.030;
/// How far from the detection the QRS centre is looked for.
const R_CENTRE_SEARCH_S: f64 = 0.030;
/// How far from the QRS centre the R peak is looked for.
const R_NEAR_STEEPEST_S: f64 = 0.050;
/// An R peak is the extreme of the lead over this much either side (at least one sample).
const R_PEAK_RIPPLE_S: f64 = 0.003;
/// The other polarity's extremum is the R peak when it is this many times as far from the
/// local mean as the dominant polarity's.
const OPPOSITE_DOMINANCE: f64 = 1.5;
/// A peak within this much of the R-peak search span's edge, which the lead exceeds within this
/// much beyond it, is on the upstroke of a wave outside the span.
const EDGE_S: f64 = 0.010;

/// Finds the R peaks in `leads` (samples at `fs` Hz; leads of unequal length are read up to
/// the shortest). Returns no beat for a recording shorter than one second.
pub fn detect(leads: &[&[i32]], fs: f64) -> QrsDetection {
    let n = leads.iter().map(|l| l.len()).min().unwrap_or(0);
    let empty = QrsDetection { r_peaks: Vec::new(), primary_lead: 0 };
    if n < fs as usize || !(fs.is_finite() && fs >= 50.0) {
        return empty;
    }
    let secs = |s: f64| ((s * fs).round() as usize).max(1);

    let mut feature = vec![0.0; n];
    let mut slope = vec![0.0; n];
    // Every lead band-passed first, several at a time (`filtfilt_each`: identical results).
    let mut band_passed: Vec<Vec<f64>> = leads.iter().map(|l| l[..n].iter().map(|&v| f64::from(v)).collect()).collect();
    Biquad::band_pass(5.0, 15.0, fs).filtfilt_each(&mut band_passed);
    let mut squared = vec![0.0; n];
    // Each lead's part of the feature, and how much of its energy lies between its beats (the
    // median of its integrated energy over its typical beat's); the slope is summed at once.
    let mut parts: Vec<(Vec<f64>, f64)> = Vec::with_capacity(leads.len());
    // Each lead's own energy (scaled to its typical beat) and its local energy against its
    // usual, for the silent-lead rule (with more than one lead only).
    let mut own: Vec<(Vec<f32>, Vec<f32>)> = Vec::with_capacity(leads.len());
    for filtered in &band_passed {
        squared_slope(filtered, fs, &mut squared);
        let integrated = moving_average(&squared, secs(INTEGRATION_S));
        let scale = typical_peak(&integrated, secs(1.0));
        if scale <= 0.0 {
            continue;
        }
        let inverse = 1.0 / scale;
        let mut sub: Vec<f64> = integrated.iter().step_by(7).copied().collect();
        let between = median_in_place(&mut sub).unwrap_or(0.0) * inverse;
        let mut f_part = vec![0.0; n];
        if leads.len() > 1 {
            // Where this lead carries far more energy than usual (noise, an electrode
            // artefact), it counts for less, so the other leads' beats still stand out.
            let local = moving_average(&integrated, secs(LOCAL_ENERGY_S));
            let mut blocks: Vec<f64> = local.iter().step_by(secs(1.0)).copied().collect();
            let usual = median_in_place(&mut blocks).unwrap_or(0.0);
            let inverse_usual = if usual > 0.0 { 1.0 / usual } else { 0.0 };
            let (mut energy, mut usualness) = (vec![0.0f32; n], vec![0.0f32; n]);
            for (((((f, s), i), q), l), (e, u)) in f_part
                .iter_mut()
                .zip(slope.iter_mut())
                .zip(&integrated)
                .zip(&squared)
                .zip(&local)
                .zip(energy.iter_mut().zip(usualness.iter_mut()))
            {
                let ratio = l * inverse_usual;
                // ratio^1.5 as ratio × √ratio: cheaper than `powf` on every sample.
                let w = if ratio > 1.0 { inverse / (ratio * ratio.sqrt()) } else { inverse };
                *f = i * w;
                *s += q * w;
                *e = (i * inverse) as f32;
                *u = ratio as f32;
            }
            own.push((energy, usualness));
        } else {
            for (((f, s), i), q) in f_part.iter_mut().zip(slope.iter_mut()).zip(&integrated).zip(&squared) {
                *f = i * inverse;
                *s += q * inverse;
            }
        }
        parts.push((f_part, between));
    }
    // A lead whose energy between beats is a larger share of its beats' than the cleanest
    // lead's (noise or spikes that its scaling to its typical beat lifts to the others'
    // height) counts for that much less in finding beats (MIT-BIH 101, 106 and 221: a V1
    // noisy throughout). The slope, which places and tells apart the beats found, keeps every
    // lead as it is (weighting it too moved a paced 12-lead file's QT by 22 ms).
    let cleanest = parts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    for (part, between) in &parts {
        let q = if *between > cleanest { cleanest / between } else { 1.0 };
        for (f, p) in feature.iter_mut().zip(part) {
            *f += p * q;
        }
    }

    let candidates = peaks(&feature, secs(PEAK_NEIGHBOURHOOD_S));
    // Each candidate's energy on each lead (the largest within ±50 ms), and whether that lead is
    // at its usual energy level there.
    let near = secs(SILENT_NEAR_S);
    let per_lead: Vec<Vec<LeadEnergy>> = candidates
        .iter()
        .map(|&c| {
            own.iter()
                .map(|(energy, usualness)| LeadEnergy {
                    energy: energy[c.saturating_sub(near)..(c + near + 1).min(n)].iter().copied().fold(0.0, f32::max),
                    usual: SILENT_USUAL.contains(&f64::from(usualness[c])),
                })
                .collect()
        })
        .collect();
    let beats = classify(&feature, &slope, &candidates, &per_lead, fs);
    if beats.is_empty() {
        return empty;
    }
    place_on_r_peaks(leads, n, fs, &beats, &feature, &slope)
}

/// The squared centred derivative of `x` (per second), written into `out`.
fn squared_slope(x: &[f64], fs: f64, out: &mut [f64]) {
    let half_fs = fs / 2.0;
    let n = x.len().min(out.len());
    for i in 1..n.saturating_sub(1) {
        let d = (x[i + 1] - x[i - 1]) * half_fs;
        out[i] = d * d;
    }
    if n >= 2 {
        out[0] = out[1];
        out[n - 1] = out[n - 2];
    } else if let Some(o) = out.first_mut() {
        *o = 0.0;
    }
}

/// The median of the per-block maxima: the height of a typical beat in the feature signal.
fn typical_peak(x: &[f64], block: usize) -> f64 {
    let mut maxima: Vec<f64> = x.chunks(block).map(|c| c.iter().copied().fold(0.0, f64::max)).collect();
    median_in_place(&mut maxima).unwrap_or(0.0)
}

pub(crate) fn median_in_place(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    Some(*m)
}

/// Indices of local maxima (the ends of the signal included, so that a beat cut by the
/// end of the recording is still seen) that are the largest value within ±`radius` samples.
fn peaks(x: &[f64], radius: usize) -> Vec<usize> {
    let n = x.len();
    let local: Vec<usize> = (0..n)
        .filter(|&i| {
            let rises = i == 0 || x[i] > x[i - 1];
            let falls = i + 1 == n || x[i] >= x[i + 1];
            rises && falls && x[i] > 0.0
        })
        .collect();
    let mut kept = Vec::with_capacity(local.len());
    for (k, &i) in local.iter().enumerate() {
        let dominated_before = local[..k].iter().rev().take_while(|&&j| i - j <= radius).any(|&j| x[j] >= x[i]);
        let dominated_after = local[k + 1..].iter().take_while(|&&j| j - i <= radius).any(|&j| x[j] > x[i]);
        if !dominated_before && !dominated_after {
            kept.push(i);
        }
    }
    kept
}

/// A candidate peak's energy on one lead (the lead's own, scaled to its typical beat; the
/// largest within [`SILENT_NEAR_S`]), and whether the lead is at its usual energy level there.
#[derive(Clone, Copy)]
struct LeadEnergy {
    energy: f32,
    usual: bool,
}

/// What the leads showed of the last beats: per lead, its energy at each of the last
/// [`SILENT_HISTORY`] beats accepted over the threshold where it was at its usual level (0 where
/// it was not), for the silent-lead rule; and its energy at each of the last as many beats
/// found by any rule, for the search-back's check that a low find shows on some lead.
struct LeadHistory {
    usual: Vec<std::collections::VecDeque<f32>>,
    shown: Vec<std::collections::VecDeque<f32>>,
}

fn remember_in(h: &mut std::collections::VecDeque<f32>, e: f32) {
    h.push_back(e);
    if h.len() > SILENT_HISTORY {
        h.pop_front();
    }
}

impl LeadHistory {
    fn new(leads: usize) -> LeadHistory {
        let empty = vec![std::collections::VecDeque::with_capacity(SILENT_HISTORY + 1); leads];
        LeadHistory { usual: empty.clone(), shown: empty }
    }

    /// A beat accepted over the threshold (or as a low premature beat).
    fn remember(&mut self, energies: &[LeadEnergy]) {
        for (h, e) in self.usual.iter_mut().zip(energies) {
            // A lead away from its usual level at this beat has nothing to say: it breaks the run.
            remember_in(h, if e.usual { e.energy } else { 0.0 });
        }
        self.remember_shown(energies);
    }

    /// Any beat found, the search-back's included.
    fn remember_shown(&mut self, energies: &[LeadEnergy]) {
        for (h, e) in self.shown.iter_mut().zip(energies) {
            remember_in(h, e.energy);
        }
    }

    /// Whether a peak with these per-lead energies shows on some lead at
    /// [`SEARCH_BACK_SHOWN`] of that lead's usual beat (the median of its last beats), or no
    /// lead has seen enough beats yet to tell.
    fn shown(&self, energies: &[LeadEnergy]) -> bool {
        let mut judged = false;
        for (h, e) in self.shown.iter().zip(energies) {
            if h.len() < SILENT_HISTORY {
                continue;
            }
            judged = true;
            let mut sorted: Vec<f32> = h.iter().copied().collect();
            sorted.sort_unstable_by(f32::total_cmp);
            if f64::from(e.energy) >= SEARCH_BACK_SHOWN * f64::from(sorted[sorted.len() / 2]) {
                return true;
            }
        }
        !judged
    }

    /// Whether a peak with these per-lead energies is silent on at least half of the leads that
    /// are at their usual level and showed each of the last beats (there being at least one).
    fn silent(&self, energies: &[LeadEnergy]) -> bool {
        let (mut witnesses, mut silent) = (0, 0);
        for (h, e) in self.usual.iter().zip(energies) {
            if !e.usual {
                continue;
            }
            let e = e.energy;
            if h.len() < SILENT_HISTORY {
                continue;
            }
            let weakest = h.iter().copied().fold(f32::INFINITY, f32::min);
            if weakest <= 0.0 {
                continue;
            }
            witnesses += 1;
            if f64::from(e) < SILENT_FRACTION * f64::from(weakest) {
                silent += 1;
            }
        }
        witnesses > 0 && 2 * silent >= witnesses
    }
}

/// Pan–Tompkins adaptive thresholds with refractory period, T-wave rejection and
/// search-back, and the silent-lead rule over `per_lead` (each candidate's energy per lead,
/// `None` where that lead is away from its usual level). Returns the accepted candidates,
/// ascending.
fn classify(feature: &[f64], slope: &[f64], candidates: &[usize], per_lead: &[Vec<LeadEnergy>], fs: f64) -> Vec<usize> {
    let samples = |s: f64| (s * fs).round() as usize;
    let refractory = samples(REFRACTORY_S);
    let t_window = samples(T_WAVE_WINDOW_S);
    let early_edge = samples(EARLY_EDGE_S);
    // The whole T-wave window, not the one a fast rhythm shrinks (the loop's `t_window`).
    let early_after = samples(T_WAVE_WINDOW_S);
    let slope_radius = samples(SLOPE_WINDOW_S);
    let steepest = |i: usize| {
        let lo = i.saturating_sub(slope_radius);
        let hi = (i + slope_radius + 1).min(slope.len());
        slope[lo..hi].iter().copied().fold(0.0, f64::max)
    };

    let learning = samples(2.0).min(feature.len());
    let mut spk =
        typical_peak(feature, samples(1.0).max(1)).max(feature[..learning].iter().copied().fold(0.0, f64::max) / 3.0);
    let mut npk = 0.5 * feature.iter().sum::<f64>() / feature.len().max(1) as f64;
    let floor = 0.5 * typical_peak(feature, samples(1.0).max(1));

    let mut beats: Vec<usize> = Vec::new();
    let mut beat_slopes: Vec<f64> = Vec::new();
    let mut noise: Vec<usize> = Vec::new();
    let mut history = LeadHistory::new(per_lead.first().map_or(0, Vec::len));
    // A candidate's energies per lead, by its sample (candidates are ascending).
    let energies_at =
        |j: usize| candidates.binary_search(&j).ok().and_then(|k| per_lead.get(k)).map_or(&[][..], Vec::as_slice);
    let mut rr: Vec<f64> = Vec::new();

    let search_back = |upto: usize,
                       beats: &mut Vec<usize>,
                       beat_slopes: &mut Vec<f64>,
                       rr: &mut Vec<f64>,
                       noise: &[usize],
                       spk: &mut f64,
                       npk: f64,
                       history: &mut LeadHistory| loop {
        let (Some(&last), Some(mean_rr)) = (beats.last(), mean_last(rr, 8)) else {
            return;
        };
        if (upto.saturating_sub(last) as f64) <= SEARCH_BACK_RR * mean_rr {
            return;
        }
        let threshold2 = 0.5 * (npk + 0.25 * (*spk - npk));
        let best = noise
            .iter()
            .copied()
            .filter(|&j| j > last + t_window && j + refractory <= upto)
            .filter(|&j| feature[j] > threshold2 && feature[j] > SEARCH_BACK_OVER_NOISE * npk)
            .filter(|&j| feature[j] >= SEARCH_BACK_CLEAR_OF_NOISE * npk || history.shown(energies_at(j)))
            .max_by(|&a, &b| feature[a].total_cmp(&feature[b]));
        let Some(j) = best else {
            // Nothing even at half the threshold for this long: the signal level is stale (a
            // burst of artefacts lifted it), so it sinks towards the recording's typical beat.
            if *spk > floor {
                *spk = (0.5 * *spk).max(floor);
                continue;
            }
            return;
        };
        *spk = 0.25 * feature[j].min(SIGNAL_CLAMP * *spk) + 0.75 * *spk;
        rr.push((j - last) as f64);
        beats.push(j);
        beat_slopes.push(steepest(j));
        history.remember_shown(energies_at(j));
    };

    // Peaks passed over since the last beat: after two, the rule rests until a beat comes, so a
    // lead whose beats have changed for good cannot hold back every beat that follows.
    let mut passed_over = 0;
    for (k, &c) in candidates.iter().enumerate() {
        let found = beats.len();
        search_back(c, &mut beats, &mut beat_slopes, &mut rr, &noise, &mut spk, npk, &mut history);
        if beats.len() > found {
            passed_over = 0;
        }
        let t_window =
            mean_last(&rr, 8).map_or(t_window, |m| t_window.min(((T_WAVE_RR_FRACTION * m) as usize).max(refractory)));
        let threshold1 = npk + 0.25 * (spk - npk);
        let f = feature[c];
        let energies = per_lead.get(k).map_or(&[][..], Vec::as_slice);
        if f > threshold1 && passed_over < SILENT_AT_MOST && history.silent(energies) {
            // An artefact of the other leads: neither a beat nor the noise level's business.
            passed_over += 1;
            continue;
        }
        // A steeper, taller complex soon after the last beat shows that beat to have been an
        // artefact or a wave before the QRS: the new one takes its place.
        if let (Some(&last), Some(&last_slope)) = (beats.last(), beat_slopes.last()) {
            let taller = if c - last < refractory { 1.0 } else { REPLACE_HEIGHT_PAST_REFRACTORY };
            let steeper = f > taller * feature[last] && steepest(c) >= REPLACE_SLOPE * last_slope;
            let far_taller = c - last < refractory && f > REPLACE_HEIGHT_WITHIN_REFRACTORY * feature[last];
            if c - last < t_window && f > threshold1 && (steeper || far_taller) {
                beats.pop();
                beat_slopes.pop();
                rr.truncate(beats.len().saturating_sub(1));
                // What it was (an artefact, a wave before the QRS) counts as noise from now on.
                npk = 0.125 * feature[last].min(spk) + 0.875 * npk;
                noise.push(last);
            }
        }
        let since_last = beats.last().map(|&last| c - last);
        let is_beat = if f > threshold1 {
            match since_last {
                Some(d) if d < refractory => false,
                Some(d) if d < t_window => {
                    let last_slope = beat_slopes.last().copied().unwrap_or(0.0);
                    steepest(c) >= 0.5 * last_slope
                }
                _ => true,
            }
        } else {
            // A low premature beat where the noise is far lower (see EARLY_OF_THRESHOLD), unless
            // the leads that showed the last beats do not show it (an artefact of the others).
            f > EARLY_OF_THRESHOLD * threshold1
                && f > EARLY_OVER_NOISE * npk
                && since_last.is_some_and(|d| d >= early_after)
                && c >= early_edge
                && c + early_edge < feature.len()
                && !history.silent(energies)
        };
        if is_beat {
            spk = 0.125 * f.min(SIGNAL_CLAMP * spk) + 0.875 * spk;
            if let Some(d) = since_last {
                rr.push(d as f64);
            }
            beats.push(c);
            beat_slopes.push(steepest(c));
            history.remember(energies);
            passed_over = 0;
        } else {
            npk = 0.125 * f.min(spk) + 0.875 * npk;
            noise.push(c);
        }
    }
    search_back(feature.len(), &mut beats, &mut beat_slopes, &mut rr, &noise, &mut spk, npk, &mut history);
    beats.sort_unstable();
    beats
}

fn mean_last(v: &[f64], k: usize) -> Option<f64> {
    let tail = &v[v.len().saturating_sub(k)..];
    (!tail.is_empty()).then(|| tail.iter().sum::<f64>() / tail.len() as f64)
}

/// Moves each detection onto the R peak of the most prominent lead.
fn place_on_r_peaks(
    leads: &[&[i32]],
    n: usize,
    fs: f64,
    beats: &[usize],
    feature: &[f64],
    slope: &[f64],
) -> QrsDetection {
    let radius = (REFINE_WINDOW_S * fs).round() as usize;
    let window = |b: usize| (b.saturating_sub(radius), (b + radius + 1).min(n));

    let mut best: Option<(usize, f64, f64)> = None;
    for (index, lead) in leads.iter().enumerate() {
        let mut ups = Vec::with_capacity(beats.len());
        let mut downs = Vec::with_capacity(beats.len());
        for &b in beats {
            let (lo, hi) = window(b);
            let seg = &lead[lo..hi];
            let level = seg.iter().map(|&v| f64::from(v)).sum::<f64>() / seg.len() as f64;
            let max = seg.iter().copied().max().map_or(level, f64::from);
            let min = seg.iter().copied().min().map_or(level, f64::from);
            ups.push(max - level);
            downs.push(level - min);
        }
        let up = median_in_place(&mut ups).unwrap_or(0.0);
        let down = median_in_place(&mut downs).unwrap_or(0.0);
        let (height, polarity) = if up >= down { (up, 1) } else { (down, -1) };
        if best.as_ref().is_none_or(|(_, h, _)| height > *h) {
            best = Some((index, height, f64::from(polarity)));
        }
    }
    let Some((primary_lead, _, polarity)) = best else {
        return QrsDetection { r_peaks: Vec::new(), primary_lead: 0 };
    };
    let y = leads[primary_lead];
    // The squared slope smoothed over 30 ms, computed only where it is looked at.
    let half_smoothing = ((STEEP_SMOOTHING_S * fs).round() as usize).max(1) / 2;
    let steep = |i: usize| {
        let part = &slope[i.saturating_sub(half_smoothing)..(i + half_smoothing + 1).min(slope.len())];
        part.iter().sum::<f64>() / part.len() as f64
    };
    let near = (R_NEAR_STEEPEST_S * fs).round() as usize;
    let centre_radius = (R_CENTRE_SEARCH_S * fs).round() as usize;
    let ripple = ((R_PEAK_RIPPLE_S * fs).round() as usize).max(1);

    let mut placed: Vec<usize> = beats
        .iter()
        .map(|&b| {
            let (lo, hi) = window(b);
            // The QRS is where the slopes are steepest; its R peak is the extremum next to them,
            // in the lead's usual polarity unless the other one clearly dominates (an ectopic
            // beat of opposite polarity), and never a T wave at the window's edge.
            let (clo, chi) = (b.saturating_sub(centre_radius), (b + centre_radius + 1).min(n));
            let centre = (clo..chi).map(|i| (i, steep(i))).max_by(|a, b| a.1.total_cmp(&b.1)).map_or(b, |(i, _)| i);
            let (lo2, hi2) = (centre.saturating_sub(near).max(lo), (centre + near + 1).min(hi));
            let level = y[lo..hi].iter().map(|&v| f64::from(v)).sum::<f64>() / (hi - lo) as f64;
            r_peak_between(y, lo2..hi2, level, polarity, ripple, fs).unwrap_or(b)
        })
        .collect();
    placed.sort_unstable();
    let refractory = (REFRACTORY_S * fs).round() as usize;
    let mut r_peaks: Vec<usize> = Vec::with_capacity(placed.len());
    for p in placed {
        match r_peaks.last_mut() {
            Some(last) if p - *last < refractory => {
                if feature[p] > feature[*last] {
                    *last = p;
                }
            }
            _ => r_peaks.push(p),
        }
    }
    QrsDetection { r_peaks, primary_lead }
}

/// The R peak of a lead `y` (dominant polarity `polarity`, ±1) among `span`, around the local
/// mean `level`: the extremum of each polarity among the lead's own peaks and troughs (points
/// that are the extreme of their ±`ripple` samples), so that a point at the edge of the span
/// that is still rising, such as the upstroke of a wide ectopic beat's T wave, is not taken
/// for a peak; only when a polarity has no peak in the span is its extreme point taken. The
/// other polarity's extremum wins when it is more than 1.5 times as far from the level (a beat
/// of opposite polarity). `None` for an empty span.
fn r_peak_between(
    y: &[i32],
    span: std::ops::Range<usize>,
    level: f64,
    polarity: f64,
    ripple: usize,
    fs: f64,
) -> Option<usize> {
    let value = |i: usize| polarity * f64::from(y[i]);
    let turns = |i: usize, sign: f64| {
        let (a, z) = (i.saturating_sub(ripple), (i + ripple + 1).min(y.len()));
        (a..z).all(|k| sign * value(i) >= sign * value(k))
    };
    let extreme = |sign: f64| {
        let by = |&i: &usize, &j: &usize| (sign * value(i)).total_cmp(&(sign * value(j)));
        span.clone().filter(|&i| turns(i, sign)).max_by(by).or_else(|| span.clone().max_by(by))
    };
    let (along, against) = (extreme(1.0)?, extreme(-1.0)?);
    let dev = |i: usize| (f64::from(y[i]) - level).abs();
    // A peak of `along` at the span's edge on a wave that goes on rising past it is the upstroke
    // of a later wave (the broad second half of a wide ventricular beat), not the R peak: then
    // the other polarity's turn wins whenever it is the farther from the level.
    let edge = ((EDGE_S * fs).round() as usize).max(1);
    let rises_past = |from: usize, to: usize| (from..to.min(y.len())).any(|k| value(k) > value(along));
    let on_upstroke = (along + edge >= span.end && rises_past(span.end, span.end + edge))
        || (along < span.start + edge && rises_past(span.start.saturating_sub(edge), span.start));
    let dominance = if on_upstroke && turns(against, -1.0) { 1.0 } else { OPPOSITE_DOMINANCE };
    Some(if dev(against) > dominance * dev(along) { against } else { along })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic lead: baseline wander, noise-free P, QRS and T waves, R peaks where given.
    pub(crate) fn synthetic_lead(fs: f64, seconds: f64, r_peaks_s: &[f64], scale: f64) -> Vec<i32> {
        let n = (fs * seconds) as usize;
        let gauss =
            |t: f64, centre: f64, width: f64, height: f64| height * (-((t - centre) / width).powi(2) / 2.0).exp();
        (0..n)
            .map(|i| {
                let t = i as f64 / fs;
                let mut v = 150.0 * (2.0 * std::f64::consts::PI * 0.2 * t).sin();
                for &r in r_peaks_s {
                    v += gauss(t, r - 0.16, 0.025, 120.0);
                    v += gauss(t, r - 0.025, 0.008, -150.0);
                    v += gauss(t, r, 0.010, 1200.0);
                    v += gauss(t, r + 0.03, 0.010, -300.0);
                    v += gauss(t, r + 0.28, 0.045, 300.0);
                }
                (v * scale).round() as i32
            })
            .collect()
    }

    /// R peaks with varying RR (a premature beat and a pause included).
    pub(crate) fn beat_times(seconds: f64) -> Vec<f64> {
        let pattern = [0.80, 0.82, 0.78, 0.55, 1.05, 0.80, 0.79, 1.30, 0.81];
        let mut t = 0.6;
        let mut out = Vec::new();
        let mut k = 0;
        while t < seconds - 0.5 {
            out.push(t);
            t += pattern[k % pattern.len()];
            k += 1;
        }
        out
    }

    #[test]
    fn finds_every_synthetic_beat_at_common_sample_rates() {
        for fs in [250.0, 360.0, 500.0, 1000.0] {
            let truth = beat_times(30.0);
            let lead = synthetic_lead(fs, 30.0, &truth, 1.0);
            let inverted = synthetic_lead(fs, 30.0, &truth, -0.4);
            let found = detect(&[&lead, &inverted], fs);
            assert_eq!(found.primary_lead, 0);
            assert_eq!(found.r_peaks.len(), truth.len(), "at {fs} Hz");
            for (r, t) in found.r_peaks.iter().zip(&truth) {
                let err = (*r as f64 / fs - t).abs();
                assert!(err <= 1.5 / fs + 1e-9, "at {fs} Hz: R at {r} vs {t} s");
            }
        }
    }

    #[test]
    fn an_r_peak_is_a_peak_of_the_lead_not_the_edge_of_the_search() {
        // A narrow QRS peak (800 at 12), then the upstroke of a broad T wave that is still
        // rising where the search ends (900 at 39, 1000 beyond): the peak is the QRS's.
        let mut y: Vec<i32> = (0..60).map(|i| if i < 25 { 0 } else { 40 * (i - 25) }).collect();
        for (k, v) in [(10, 300), (11, 600), (12, 800), (13, 600), (14, 300)] {
            y[k] = v;
        }
        assert_eq!(y[39], 560);
        y[39] = 900;
        y[40] = 1000;
        assert_eq!(r_peak_between(&y, 5..40, 200.0, 1.0, 1, 360.0), Some(12));
        // With no peak in the span at all, its extreme point is taken, as before.
        let rising: Vec<i32> = (0..40).map(|i| 10 * i).collect();
        assert_eq!(r_peak_between(&rising, 5..30, 150.0, 1.0, 1, 360.0), Some(29));
        // A trough far deeper than the peak is the R peak of a beat of opposite polarity.
        let mut w = vec![0; 40];
        w[15] = 100;
        w[20] = -900;
        assert_eq!(r_peak_between(&w, 5..35, 0.0, 1.0, 1, 360.0), Some(20));
        assert_eq!(r_peak_between(&w, 5..5, 0.0, 1.0, 1, 360.0), None);
        // A wide ventricular beat (MIT-BIH 203): a small spike, a deep trough, then a broad wave
        // still rising where the search ends, with a ripple on its upstroke at the edge. The
        // ripple is no R peak: the trough is, though under 1.5 times as far from the level.
        let mut v: Vec<i32> = (0..60).map(|i| if i < 25 { 0 } else { 100 * (i - 25) }).collect();
        v[10] = 500;
        for (k, x) in [(18, -900), (19, -1300), (20, -1500), (21, -1300), (22, -900), (23, -500), (24, -200)] {
            v[k] = x;
        }
        v[38] = 1350;
        v[39] = 1340;
        assert_eq!(r_peak_between(&v, 8..40, 0.0, 1.0, 1, 360.0), Some(20));
        // The same ripple where the wave stops rising within the span's edge is a peak as before.
        let mut flat = v.clone();
        for x in flat.iter_mut().skip(40) {
            *x = 1000;
        }
        assert_eq!(r_peak_between(&flat, 8..40, 0.0, 1.0, 1, 360.0), Some(38));
    }

    #[test]
    fn a_low_premature_beat_on_a_quiet_lead_is_a_beat() {
        // Clean beats every 0.9 s; every fourth cycle a premature beat 0.5 s after the last, of
        // about half the height and one and a half times the width (its slope energy under the
        // threshold), then the next beat 0.65 s later: too soon for the
        // search-back (1.4 × the mean RR), so only the low noise level tells it is a beat.
        let fs = 360.0;
        let seconds = 40.0;
        let (mut usual, mut low) = (Vec::new(), Vec::new());
        let mut t = 0.6;
        let mut k = 0;
        while t < seconds - 1.0 {
            usual.push(t);
            // After the first eight beats, once the noise level has settled.
            if k % 4 == 3 && k >= 8 {
                low.push(t + 0.5);
                t += 1.15;
            } else {
                t += 0.9;
            }
            k += 1;
        }
        let gauss = |t: f64, c: f64, w: f64, h: f64| h * (-((t - c) / w).powi(2) / 2.0).exp();
        let wave = |t: f64, beats: &[f64], width: f64, height: f64| -> f64 {
            beats.iter().map(|&r| gauss(t, r, width, height) + gauss(t, r + 0.25, 0.04, 0.2 * height.abs())).sum()
        };
        let lead: Vec<i32> = (0..(fs * seconds) as usize)
            .map(|i| {
                let t = i as f64 / fs;
                (wave(t, &usual, 0.010, 1200.0) + wave(t, &low, 0.015, 550.0)).round() as i32
            })
            .collect();
        let found = detect(&[&lead], fs);
        let near = |t: f64| found.r_peaks.iter().any(|&r| (r as f64 / fs - t).abs() < 0.05);
        let missed: Vec<f64> = usual.iter().chain(&low).copied().filter(|&t| !near(t)).collect();
        assert!(missed.is_empty(), "missed {missed:?} ({} low beats: {low:?})", low.len());
        assert_eq!(found.r_peaks.len(), usual.len() + low.len(), "no extra beat");
    }

    #[test]
    fn finds_beats_on_an_inverted_lead() {
        let fs = 500.0;
        let truth = beat_times(20.0);
        let lead = synthetic_lead(fs, 20.0, &truth, -1.0);
        let found = detect(&[&lead], fs);
        assert_eq!(found.r_peaks.len(), truth.len());
    }

    #[test]
    fn a_wide_premature_beat_in_a_fast_rhythm_is_a_beat_not_a_t_wave() {
        // Narrow beats every 0.45 s (133 bpm); every fifth, 0.30 s after the last, a wide
        // ventricular beat whose steepest slope is a little under half theirs, then a 0.60 s
        // pause.
        let fs = 360.0;
        let seconds = 30.0;
        let gauss = |t: f64, c: f64, w: f64, h: f64| h * (-((t - c) / w).powi(2) / 2.0).exp();
        let (mut narrow, mut wide) = (Vec::new(), Vec::new());
        let mut t = 0.5;
        let mut k = 0;
        while t < seconds - 0.8 {
            if k % 5 == 4 {
                t -= 0.15;
                wide.push(t);
                t += 0.60;
            } else {
                narrow.push(t);
                t += 0.45;
            }
            k += 1;
        }
        let lead: Vec<i32> = (0..(fs * seconds) as usize)
            .map(|i| {
                let t = i as f64 / fs;
                let mut v = 0.0;
                for &r in &narrow {
                    v += gauss(t, r, 0.010, 1200.0)
                        + gauss(t, r + 0.03, 0.010, -300.0)
                        + gauss(t, r + 0.20, 0.040, 250.0);
                }
                for &r in &wide {
                    v += gauss(t, r, 0.025, 1400.0) + gauss(t, r + 0.22, 0.050, -350.0);
                }
                v.round() as i32
            })
            .collect();
        let mut truth: Vec<f64> = narrow.iter().chain(&wide).copied().collect();
        truth.sort_by(f64::total_cmp);
        let found = detect(&[&lead], fs);
        let missed: Vec<f64> = truth
            .iter()
            .copied()
            .filter(|&t| !found.r_peaks.iter().any(|&r| (r as f64 / fs - t).abs() < 0.15))
            .collect();
        assert!(missed.is_empty(), "missed {missed:?} of {} beats ({} wide: {wide:?})", truth.len(), wide.len());
        assert_eq!(found.r_peaks.len(), truth.len(), "no extra beat");
    }

    #[test]
    fn a_taller_peak_within_the_refractory_period_takes_the_beat_whatever_its_slope() {
        // The classifier alone, on a feature made by hand: every second a peak of 0.4, then
        // 110 ms later one of 1.0, both as steep (peaks that close share their steepest slope:
        // MIT-BIH 108's wave before the QRS). The first crosses the threshold first; the second,
        // 2.5 times as tall, is the beat.
        let fs = 360.0;
        let n = (fs * 30.0) as usize;
        let (mut feature, mut slope) = (vec![0.01; n], vec![0.0; n]);
        let mut candidates = Vec::new();
        let mut qrs = Vec::new();
        for k in 0..29 {
            let first = (fs * (0.5 + f64::from(k))) as usize;
            let second = first + (0.110 * fs) as usize;
            feature[first] = 0.4;
            feature[second] = 1.0;
            slope[first] = 1.0;
            slope[second] = 1.0;
            candidates.extend([first, second]);
            qrs.push(second);
        }
        let per_lead = vec![Vec::new(); candidates.len()];
        assert_eq!(classify(&feature, &slope, &candidates, &per_lead, fs), qrs);
        // Under 1.5 times as tall (and not twice as steep), the first peak keeps the beat (over
        // the first eight beats: the second peaks, counted as noise, lift the threshold later).
        for &c in &qrs {
            feature[c] = 0.55;
        }
        let firsts: Vec<usize> = qrs.iter().map(|&c| c - (0.110 * fs) as usize).take(8).collect();
        assert_eq!(classify(&feature, &slope, &candidates, &per_lead, fs)[..8], firsts);
    }

    #[test]
    fn a_low_search_back_find_must_show_on_some_lead() {
        let at = |energies: &[f32]| -> Vec<LeadEnergy> {
            energies.iter().map(|&energy| LeadEnergy { energy, usual: true }).collect()
        };
        let mut history = LeadHistory::new(2);
        // Until a lead has shown eight beats, nothing is judged.
        assert!(history.shown(&at(&[0.0, 0.0])));
        for k in 0..8 {
            // The first lead's beats at about 1.0, the second's at about 0.5.
            let wobble = 0.02 * k as f32;
            if k % 2 == 0 {
                history.remember(&at(&[1.0 + wobble, 0.5 - wobble]));
            } else {
                // Beats found by the search-back count as beats shown.
                history.remember_shown(&at(&[1.0 - wobble, 0.5 + wobble]));
            }
        }
        // A ripple at a tenth of each lead's usual beat (MIT-BIH 232's pauses) is not shown.
        assert!(!history.shown(&at(&[0.10, 0.05])));
        // Shown on one lead at a fifth of its usual beat (a premature beat of low slope energy).
        assert!(history.shown(&at(&[0.05, 0.10])));
        assert!(history.shown(&at(&[0.20, 0.0])));
        // The usual beat is the median of the last eight: one tall artefact does not lift it.
        history.remember_shown(&at(&[40.0, 0.5]));
        assert!(history.shown(&at(&[0.2, 0.0])));
    }

    #[test]
    fn spikes_on_one_lead_that_the_other_does_not_show_are_not_beats() {
        // Beats every 0.9 s on both leads; after each beat from the eleventh on, a sharp spike
        // on the second lead alone, half-way to the next beat (an electrode artefact).
        let fs = 360.0;
        let truth: Vec<f64> = (0..33).map(|k| 0.6 + 0.9 * f64::from(k)).collect();
        let first = synthetic_lead(fs, 30.0, &truth, 1.0);
        let mut second = synthetic_lead(fs, 30.0, &truth, 0.8);
        let spikes: Vec<f64> = truth.iter().skip(10).map(|r| r + 0.45).collect();
        for (i, v) in second.iter_mut().enumerate() {
            let t = i as f64 / fs;
            for &c in &spikes {
                *v += (2500.0 * (-((t - c) / 0.008).powi(2) / 2.0).exp()) as i32;
            }
        }
        let found = detect(&[&first, &second], fs);
        let extra: Vec<f64> = found
            .r_peaks
            .iter()
            .map(|&r| r as f64 / fs)
            .filter(|t| !truth.iter().any(|b| (b - t).abs() < 0.15))
            .collect();
        assert!(extra.is_empty(), "spikes taken for beats at {extra:?} s ({} spikes)", spikes.len());
        assert_eq!(found.r_peaks.len(), truth.len());
        // The same spike on both leads is something both show: the rule does not hide it.
        let mut both = first.clone();
        for (i, v) in both.iter_mut().enumerate() {
            let t = i as f64 / fs;
            for &c in &spikes {
                *v += (2500.0 * (-((t - c) / 0.008).powi(2) / 2.0).exp()) as i32;
            }
        }
        let found = detect(&[&both, &second], fs);
        let seen = |c: &f64| found.r_peaks.iter().any(|&r| (r as f64 / fs - c).abs() < 0.15);
        assert!(spikes.iter().all(seen), "a complex that both leads show is never passed over");
    }

    #[test]
    fn a_lead_whose_beats_change_for_good_does_not_hold_back_the_beats_after() {
        // Both leads show the beats for 30 s; then the second lead shows no QRS any more but a
        // spike as tall 0.2 s after each beat, so its energy stays at its usual level while it
        // is silent at each beat, where it had shown every beat before. Without a bound the
        // rule would pass over every beat from then on (11 of 44 missed).
        let fs = 360.0;
        let truth: Vec<f64> = (0..44).map(|k| 0.6 + 0.9 * f64::from(k)).collect();
        let first = synthetic_lead(fs, 40.0, &truth, 1.0);
        let early: Vec<f64> = truth.iter().copied().filter(|&t| t < 30.0).collect();
        let mut second = synthetic_lead(fs, 40.0, &early, 0.8);
        for (i, v) in second.iter_mut().enumerate() {
            let t = i as f64 / fs;
            for c in truth.iter().filter(|&&t| t >= 30.0).map(|r| r + 0.2) {
                *v += (960.0 * (-((t - c) / 0.010).powi(2) / 2.0).exp()) as i32;
            }
        }
        let found = detect(&[&first, &second], fs);
        let missed: Vec<f64> = truth
            .iter()
            .copied()
            .filter(|&t| !found.r_peaks.iter().any(|&r| (r as f64 / fs - t).abs() < 0.15))
            .collect();
        assert!(missed.len() <= 2, "missed {} of {} beats: {missed:?}", missed.len(), truth.len());
    }

    #[test]
    fn flat_short_or_empty_signals_have_no_beats() {
        assert!(detect(&[], 500.0).r_peaks.is_empty());
        assert!(detect(&[&[0; 5000]], 500.0).r_peaks.is_empty());
        assert!(detect(&[&[1, 2, 3]], 500.0).r_peaks.is_empty());
        assert!(detect(&[&[7; 5000]], f64::NAN).r_peaks.is_empty());
    }
}
