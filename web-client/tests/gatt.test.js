// The Bluetooth health-device parsers, without a browser, on byte fixtures laid out field by
// field as the Bluetooth GATT Specification Supplement defines the Blood Pressure Measurement
// (0x2A35), Glucose Measurement (0x2A18) and Glucose Measurement Context (0x2A34), with
// IEEE 11073-20601 SFLOAT values (4-bit exponent, 12-bit mantissa, little-endian).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sfloat, parseBloodPressure, parseGlucose, parseGlucoseContext, measuredAt } from '../js/vitals/gatt.js';

test('SFLOAT: exponent and mantissa are signed; the reserved values are not numbers', () => {
  assert.equal(sfloat(0x0078), 120); // exponent 0, mantissa 120
  assert.equal(sfloat(0xf48a), 116.2); // exponent -1, mantissa 1162
  assert.equal(sfloat(0x1010), 160); // exponent 1, mantissa 16
  assert.equal(sfloat(0x0fff), -1); // mantissa -1
  assert.equal(sfloat(0xe0fa), 2.5); // exponent -2, mantissa 250
  for (const reserved of [0x07ff, 0x0800, 0x07fe, 0x0802, 0x0801]) assert.equal(sfloat(reserved), null);
});

test('blood pressure in mmHg with a time stamp and a pulse rate', () => {
  // flags 0x06 (mmHg, time stamp, pulse rate); 152, 96, 115 mmHg; 2026-12-01 08:00:30; 78 bpm.
  const bytes = [0x06, 0x98, 0x00, 0x60, 0x00, 0x73, 0x00, 0xea, 0x07, 12, 1, 8, 0, 30, 0x4e, 0x00];
  assert.deepEqual(parseBloodPressure(bytes), {
    systolic_mmhg: 152, diastolic_mmhg: 96, map_mmhg: 115, pulse_bpm: 78, unit: 'mmHg',
    time: '2026-12-01T08:00:30', user: null, status: null,
  });
});

test('blood pressure in kPa is converted to mmHg; user id and status are read past', () => {
  // flags 0x1D (kPa, pulse, user id, status); 20.0 / 12.0 / 14.7 kPa as SFLOAT with exponent -1.
  const bytes = [0x1d, 0xc8, 0xf0, 0x78, 0xf0, 0x93, 0xf0, 0x48, 0x00, 0x02, 0x04, 0x00];
  const bp = parseBloodPressure(bytes);
  assert.equal(bp.unit, 'kPa');
  assert.deepEqual([bp.systolic_mmhg, bp.diastolic_mmhg, bp.map_mmhg, bp.pulse_bpm], [150, 90, 110, 72]);
  assert.equal(bp.user, 2);
  assert.equal(bp.status, 0x0004); // irregular pulse detected
  assert.equal(bp.time, null);
});

test('a truncated blood pressure value is refused, not read as zeros', () => {
  assert.throws(() => parseBloodPressure([0x04, 0x98, 0x00, 0x60]), RangeError);
});

test('glucose in kg/L (mg/dL scale) becomes mmol/L', () => {
  // flags 0x03 (time offset, concentration in kg/L); sequence 7; 2026-12-01 07:05:00;
  // offset +2 min; 126 mg/dL = 0.00126 kg/L = SFLOAT mantissa 126, exponent -5 (0xB07E);
  // capillary whole blood (type 1) at the finger (location 1).
  const bytes = [0x03, 0x07, 0x00, 0xea, 0x07, 12, 1, 7, 5, 0, 0x02, 0x00, 0x7e, 0xb0, 0x11];
  assert.deepEqual(parseGlucose(bytes), {
    sequence: 7, time: '2026-12-01T07:05:00', offset_minutes: 2, glucose_mmol_l: 7, unit: 'kg/L',
    sample_type: 'capillary_whole_blood', sensor_status: null, has_context: false,
  });
});

test('glucose in mol/L with a sensor status and a context to follow', () => {
  // flags 0x1E (concentration, mol/L, sensor status, context follows); sequence 258;
  // 0.0058 mol/L = mantissa 58, exponent -4 (0xC03A); capillary plasma; status 0x0000.
  const bytes = [0x1e, 0x02, 0x01, 0xea, 0x07, 12, 1, 12, 30, 0, 0x3a, 0xc0, 0x12, 0x00, 0x00];
  const g = parseGlucose(bytes);
  assert.deepEqual([g.sequence, g.glucose_mmol_l, g.unit, g.sample_type, g.sensor_status, g.has_context],
    [258, 5.8, 'mol/L', 'capillary_plasma', 0, true]);
});

test('the glucose context gives the meal', () => {
  // flags 0x02 (meal present), sequence 258, meal 2 (postprandial).
  assert.deepEqual(parseGlucoseContext([0x02, 0x02, 0x01, 0x02]), { sequence: 258, context: 'postprandial' });
  // flags 0x03 (carbohydrate, meal): carbohydrate id 1 and amount skipped, meal 3 (fasting).
  assert.deepEqual(parseGlucoseContext([0x03, 0x05, 0x00, 0x01, 0x32, 0xd0, 0x03]), { sequence: 5, context: 'fasting' });
  assert.deepEqual(parseGlucoseContext([0x00, 0x05, 0x00]), { sequence: 5, context: null });
});

test('a device time becomes RFC 3339 with this zone; none means now', () => {
  const now = new Date('2026-12-01T00:00:00Z');
  assert.match(measuredAt('2026-12-01T08:00:30', now), /^2026-12-01T08:00:30[+-]\d\d:\d\d$/);
  assert.equal(new Date(measuredAt(null, now)).getTime(), now.getTime());
});
