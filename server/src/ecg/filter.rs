//! Small digital filters shared by QRS detection and measurement: second-order Butterworth
//! sections designed for any sample rate (bilinear transform), applied forwards and
//! backwards for zero phase, and centred moving averages.

/// A second-order IIR section, normalised so that `a0 = 1`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
}

impl Biquad {
    /// Butterworth low-pass at `cutoff_hz` (clamped below Nyquist).
    pub(crate) fn low_pass(cutoff_hz: f64, fs: f64) -> Self {
        let (cos_w, alpha) = Self::prewarp(cutoff_hz, fs);
        let a0 = 1.0 + alpha;
        let b1 = (1.0 - cos_w) / a0;
        Self { b: [b1 / 2.0, b1, b1 / 2.0], a: [-2.0 * cos_w / a0, (1.0 - alpha) / a0] }
    }

    /// Butterworth high-pass at `cutoff_hz` (clamped below Nyquist).
    pub(crate) fn high_pass(cutoff_hz: f64, fs: f64) -> Self {
        let (cos_w, alpha) = Self::prewarp(cutoff_hz, fs);
        let a0 = 1.0 + alpha;
        let b1 = (1.0 + cos_w) / a0;
        Self { b: [b1 / 2.0, -b1, b1 / 2.0], a: [-2.0 * cos_w / a0, (1.0 - alpha) / a0] }
    }

    fn prewarp(cutoff_hz: f64, fs: f64) -> (f64, f64) {
        let f = cutoff_hz.clamp(1e-3, 0.45 * fs);
        let w = 2.0 * std::f64::consts::PI * f / fs;
        (w.cos(), w.sin() / (2.0 * std::f64::consts::FRAC_1_SQRT_2))
    }

    /// Band-pass (constant 0 dB peak gain) between `low_hz` and `high_hz`: centre at their
    /// geometric mean, bandwidth their difference.
    pub(crate) fn band_pass(low_hz: f64, high_hz: f64, fs: f64) -> Self {
        let centre = (low_hz * high_hz).sqrt().clamp(1e-3, 0.45 * fs);
        let q = centre / (high_hz - low_hz).max(1e-3);
        let w = 2.0 * std::f64::consts::PI * centre / fs;
        let alpha = w.sin() / (2.0 * q);
        let a0 = 1.0 + alpha;
        Self { b: [alpha / a0, 0.0, -alpha / a0], a: [-2.0 * w.cos() / a0, (1.0 - alpha) / a0] }
    }

    /// Runs the section over the samples in the iterator's order, in place, starting from
    /// the steady state for the first sample (so a DC offset does not ring).
    fn run<'a>(&self, mut samples: impl Iterator<Item = &'a mut f64>) {
        let Some(first_sample) = samples.next() else {
            return;
        };
        let [b0, b1, b2] = self.b;
        let [a1, a2] = self.a;
        let first = *first_sample;
        let dc_gain = (b0 + b1 + b2) / (1.0 + a1 + a2);
        *first_sample = first * dc_gain;
        let (mut x1, mut x2) = (first, first);
        let (mut y1, mut y2) = (first * dc_gain, first * dc_gain);
        for v in samples {
            let x0 = *v;
            let y0 = b0 * x0 + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
            x2 = x1;
            x1 = x0;
            y2 = y1;
            y1 = y0;
            *v = y0;
        }
    }

    /// Runs the section forwards then backwards: zero phase, squared magnitude response.
    pub(crate) fn filtfilt(&self, x: &mut [f64]) {
        self.run(x.iter_mut());
        self.run(x.iter_mut().rev());
    }

    /// [`filtfilt`](Self::filtfilt) of each signal, four at a time: the recurrence of one
    /// signal waits on its last output at every sample, so four independent ones interleaved
    /// keep the processor busy. Each signal sees the same arithmetic in the same order as on
    /// its own, so each result is identical, bit for bit.
    pub(crate) fn filtfilt_each(&self, signals: &mut [Vec<f64>]) {
        for group in signals.chunks_mut(INTERLEAVED) {
            let n = group[0].len();
            if group.iter().all(|g| g.len() == n) {
                self.run_interleaved(group, false);
                self.run_interleaved(group, true);
            } else {
                group.iter_mut().for_each(|g| self.filtfilt(g));
            }
        }
    }

    /// [`run`](Self::run) over each of up to [`INTERLEAVED`] signals of one length, forwards or
    /// backwards, in lockstep.
    fn run_interleaved(&self, group: &mut [Vec<f64>], backwards: bool) {
        let n = group.first().map_or(0, Vec::len);
        if n == 0 {
            return;
        }
        let [b0, b1, b2] = self.b;
        let [a1, a2] = self.a;
        let dc_gain = (b0 + b1 + b2) / (1.0 + a1 + a2);
        let at = |i: usize| if backwards { n - 1 - i } else { i };
        let (mut x1, mut x2, mut y1, mut y2) =
            ([0.0; INTERLEAVED], [0.0; INTERLEAVED], [0.0; INTERLEAVED], [0.0; INTERLEAVED]);
        for (j, g) in group.iter_mut().enumerate() {
            let first = g[at(0)];
            g[at(0)] = first * dc_gain;
            (x1[j], x2[j]) = (first, first);
            (y1[j], y2[j]) = (first * dc_gain, first * dc_gain);
        }
        for i in 1..n {
            let t = at(i);
            for (j, g) in group.iter_mut().enumerate() {
                let x0 = g[t];
                let y0 = b0 * x0 + b1 * x1[j] + b2 * x2[j] - a1 * y1[j] - a2 * y2[j];
                x2[j] = x1[j];
                x1[j] = x0;
                y2[j] = y1[j];
                y1[j] = y0;
                g[t] = y0;
            }
        }
    }
}

/// How many signals [`Biquad::filtfilt_each`] runs in lockstep.
const INTERLEAVED: usize = 4;

/// Zero-phase band-pass: high-pass at `low_hz` then low-pass at `high_hz` (one signal; what
/// [`band_pass_each`] does to each).
#[cfg(test)]
pub(crate) fn band_pass(x: &[f64], low_hz: f64, high_hz: f64, fs: f64) -> Vec<f64> {
    let mut y = x.to_vec();
    Biquad::high_pass(low_hz, fs).filtfilt(&mut y);
    Biquad::low_pass(high_hz, fs).filtfilt(&mut y);
    y
}

/// [`band_pass`] of each signal, in place, several at a time (identical results).
pub(crate) fn band_pass_each(signals: &mut [Vec<f64>], low_hz: f64, high_hz: f64, fs: f64) {
    Biquad::high_pass(low_hz, fs).filtfilt_each(signals);
    Biquad::low_pass(high_hz, fs).filtfilt_each(signals);
}

/// Centred moving average over `width` samples (at least 1), shrinking at the edges.
pub(crate) fn moving_average(x: &[f64], width: usize) -> Vec<f64> {
    let n = x.len();
    let width = width.max(1);
    let half = width / 2;
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0);
    let mut acc = 0.0;
    for &v in x {
        acc += v;
        prefix.push(acc);
    }
    (0..n)
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + width - half).min(n);
            (prefix[hi] - prefix[lo]) / (hi - lo) as f64
        })
        .collect()
}

/// Centred first derivative per second, `(x[i+1] - x[i-1]) * fs / 2`, one-sided at the ends.
pub(crate) fn derivative(x: &[f64], fs: f64) -> Vec<f64> {
    let n = x.len();
    (0..n)
        .map(|i| {
            let hi = (i + 1).min(n - 1);
            let lo = i.saturating_sub(1);
            if hi == lo {
                0.0
            } else {
                (x[hi] - x[lo]) * fs / (hi - lo) as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filtering_several_signals_at_once_gives_each_its_own_result_exactly() {
        let fs = 500.0;
        // Five signals (a group of four and one left over), then one of another length.
        let mut signals: Vec<Vec<f64>> = (0..5)
            .map(|k| {
                (0..1000)
                    .map(|i| ((i * (k + 3)) % 97) as f64 - 40.0 + (i as f64 * 0.01 * k as f64).sin() * 300.0)
                    .collect()
            })
            .collect();
        let alone: Vec<Vec<f64>> = signals.iter().map(|x| band_pass(x, 0.5, 40.0, fs)).collect();
        band_pass_each(&mut signals, 0.5, 40.0, fs);
        for (a, b) in alone.iter().zip(&signals) {
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
        let mut uneven = vec![vec![1.0, 5.0, -3.0, 2.0], vec![7.0, 0.0, 4.0]];
        let expected: Vec<Vec<f64>> = uneven.iter().map(|x| band_pass(x, 0.5, 40.0, fs)).collect();
        band_pass_each(&mut uneven, 0.5, 40.0, fs);
        assert_eq!(uneven, expected);
        let mut none: Vec<Vec<f64>> = vec![Vec::new()];
        band_pass_each(&mut none, 0.5, 40.0, fs);
        assert!(none[0].is_empty());
    }

    fn sine(freq: f64, fs: f64, n: usize) -> Vec<f64> {
        (0..n).map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / fs).sin()).collect()
    }

    fn rms(x: &[f64]) -> f64 {
        (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn band_pass_keeps_the_band_and_rejects_the_rest() {
        let fs = 500.0;
        let n = 5000;
        let pass = band_pass(&sine(10.0, fs, n), 5.0, 15.0, fs);
        let drift = band_pass(&sine(0.3, fs, n), 5.0, 15.0, fs);
        let mains = band_pass(&sine(50.0, fs, n), 5.0, 15.0, fs);
        assert!(rms(&pass[500..4500]) > 0.4, "{}", rms(&pass[500..4500]));
        assert!(rms(&drift[500..4500]) < 0.01);
        assert!(rms(&mains[500..4500]) < 0.1);
    }

    #[test]
    fn a_constant_passes_a_low_pass_without_ringing() {
        let mut x = vec![100.0; 1000];
        Biquad::low_pass(40.0, 500.0).filtfilt(&mut x);
        assert!(x.iter().all(|v| (v - 100.0).abs() < 1e-6));
    }

    #[test]
    fn moving_average_and_derivative_of_a_ramp() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let m = moving_average(&x, 3);
        assert!((m[5] - 5.0).abs() < 1e-12);
        let d = derivative(&x, 100.0);
        assert!(d.iter().all(|v| (v - 100.0).abs() < 1e-9));
        assert!(derivative(&[1.0], 100.0) == vec![0.0]);
        assert!(moving_average(&[], 5).is_empty());
    }
}
