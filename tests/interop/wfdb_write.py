"""WFDB records written by wfdb-python (PhysioNet's own Python package), for the parser to read.

Driven by tests/ecg_accuracy.rs. Writes into OUT_DIR records as other software writes them, then
reads each back with wfdb-python itself and prints, per record, what a reader must find: the
sampling frequency, the signal names and units, and every sample in physical units as
wfdb-python computes them from the stored digital values ((d - baseline) / gain), and the
annotations (sample, symbol). Records:

- `mitlike`: 2 signals at 360 Hz, format 212, MLII and V1 in mV, gain 200, baseline 1024, with
  a beat annotation file (`atr`: N, V, A and a rhythm change `+` that is not a beat);
- `twelve`: the 12 standard leads at 500 Hz, format 16, in mV with gain 1000 and baseline 0,
  names as carts write them (`i`, `avr`, `V1` ...);
- `offsets`: 3 signals at 250 Hz, format 16, one in uV (gain 1), one in mV with a negative
  baseline and a fractional gain (409.6), one in V (gain 2e5);
- `format24`: 1 signal in format 24, which the parser does not read (it must say so).

usage: wfdb_write.py OUT_DIR
"""

import json
import sys

import numpy as np
import wfdb

STANDARD = ["i", "ii", "iii", "avr", "avl", "avf", "V1", "V2", "V3", "V4", "V5", "V6"]


def beat_like(n, fs, rng, amplitude):
    """A signal with a beat every 0.8 s and some noise, in physical units."""
    t = np.arange(n) / fs
    phase = (t % 0.8) / 0.8
    spike = np.exp(-((phase - 0.3) ** 2) / 0.0004)
    wave = 0.2 * np.exp(-((phase - 0.6) ** 2) / 0.004)
    return amplitude * (spike + wave) + 0.02 * amplitude * rng.standard_normal(n)


def main():
    out_dir = sys.argv[1]
    rng = np.random.default_rng(20261207)

    n = 3600
    sig = np.stack([beat_like(n, 360, rng, 1.5), -0.6 * beat_like(n, 360, rng, 1.0)], axis=1)
    wfdb.wrsamp("mitlike", fs=360, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=sig,
                fmt=["212", "212"], adc_gain=[200, 200], baseline=[1024, 1024], write_dir=out_dir)
    beats = np.arange(108, n, 288)
    symbols = ["N"] * len(beats)
    symbols[3], symbols[7] = "V", "A"
    samples = np.concatenate([beats, [50]])
    symbols = symbols + ["+"]
    order = np.argsort(samples)
    wfdb.wrann("mitlike", "atr", sample=samples[order], symbol=[symbols[i] for i in order],
               aux_note=["(N" if symbols[i] == "+" else "" for i in order], write_dir=out_dir)

    n = 5000
    sig = np.stack([beat_like(n, 500, rng, 0.5 + 0.1 * k) for k in range(12)], axis=1)
    wfdb.wrsamp("twelve", fs=500, units=["mV"] * 12, sig_name=STANDARD, p_signal=sig, fmt=["16"] * 12,
                adc_gain=[1000] * 12, baseline=[0] * 12, write_dir=out_dir)

    n = 2500
    sig = np.stack([beat_like(n, 250, rng, 800.0), beat_like(n, 250, rng, 1.2), beat_like(n, 250, rng, 0.0009)], axis=1)
    wfdb.wrsamp("offsets", fs=250, units=["uV", "mV", "V"], sig_name=["ECG1", "ECG2", "ECG3"], p_signal=sig,
                fmt=["16", "16", "16"], adc_gain=[1, 409.6, 2e5], baseline=[0, -200, 100], write_dir=out_dir)

    n = 1000
    sig = beat_like(n, 250, rng, 1.0).reshape(-1, 1)
    wfdb.wrsamp("format24", fs=250, units=["mV"], sig_name=["II"], p_signal=sig, fmt=["24"],
                adc_gain=[1000], baseline=[0], write_dir=out_dir)

    out = {}
    for name in ["mitlike", "twelve", "offsets", "format24"]:
        record = wfdb.rdrecord(f"{out_dir}/{name}")
        out[name] = {
            "fs": record.fs,
            "sig_name": record.sig_name,
            "units": record.units,
            "fmt": record.fmt,
            "p_signal": [[round(float(v), 9) for v in column] for column in record.p_signal.T],
        }
    ann = wfdb.rdann(f"{out_dir}/mitlike", "atr")
    out["mitlike"]["annotations"] = [[int(s), sym] for s, sym in zip(ann.sample, ann.symbol)]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
