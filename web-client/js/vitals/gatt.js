// Readings from standard Bluetooth health devices (GATT), as bytes arrive from Web Bluetooth:
// the Blood Pressure Measurement (service 0x1810, characteristic 0x2A35), the Glucose
// Measurement (service 0x1808, characteristic 0x2A18) and its Context (0x2A34), with the
// IEEE 11073-20601 16-bit SFLOAT they carry. Pure: no DOM, no Bluetooth; tested with node.

export const BLOOD_PRESSURE_SERVICE = 0x1810;
export const BLOOD_PRESSURE_MEASUREMENT = 0x2a35;
export const GLUCOSE_SERVICE = 0x1808;
export const GLUCOSE_MEASUREMENT = 0x2a18;
export const GLUCOSE_MEASUREMENT_CONTEXT = 0x2a34;
export const RECORD_ACCESS_CONTROL_POINT = 0x2a52;

/** mmHg per kPa. */
const MMHG_PER_KPA = 7.500617;
/** mg/dL of glucose per mmol/L (molar mass 180.16 g/mol). */
const MG_DL_PER_MMOL_L = 18.016;

/**
 * An IEEE 11073 16-bit SFLOAT: a 4-bit signed exponent (base 10) over a 12-bit signed
 * mantissa. The reserved values (NaN, NRes, ±infinity, reserved) answer null.
 * @param {number} raw the 16-bit value (little-endian as read)
 * @returns {number | null}
 */
export function sfloat(raw) {
  const v = raw & 0xffff;
  if (v === 0x07ff || v === 0x0800 || v === 0x07fe || v === 0x0802 || v === 0x0801) return null;
  let mantissa = v & 0x0fff;
  if (mantissa >= 0x0800) mantissa -= 0x1000;
  let exponent = v >> 12;
  if (exponent >= 0x8) exponent -= 0x10;
  // Rounded to the decimals the exponent implies, so 0xF48A is 116.2, not 116.19999.
  const value = mantissa * 10 ** exponent;
  return exponent < 0 ? Number(value.toFixed(-exponent)) : value;
}

/**
 * The bytes of a characteristic value (a DataView from Web Bluetooth, or an array of bytes).
 * @param {DataView | ArrayLike<number>} value
 */
function reader(value) {
  const bytes = value instanceof DataView
    ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
    : Uint8Array.from(/** @type {ArrayLike<number>} */ (value));
  let at = 0;
  const need = (/** @type {number} */ n) => {
    if (at + n > bytes.length) throw new RangeError(`the value ends at byte ${bytes.length}; ${n} more expected at ${at}`);
  };
  return {
    u8() { need(1); return bytes[at++]; },
    u16() { need(2); const v = bytes[at] | (bytes[at + 1] << 8); at += 2; return v; },
    s16() { const v = this.u16(); return v >= 0x8000 ? v - 0x10000 : v; },
    sfloat() { return sfloat(this.u16()); },
    /** A Date Time (7 bytes: year, month, day, hours, minutes, seconds) as local time text. */
    dateTime() {
      const year = this.u16(); const month = this.u8(); const day = this.u8();
      const hours = this.u8(); const minutes = this.u8(); const seconds = this.u8();
      if (!year || !month || !day) return null;
      const two = (/** @type {number} */ n) => String(n).padStart(2, '0');
      return `${year}-${two(month)}-${two(day)}T${two(hours)}:${two(minutes)}:${two(seconds)}`;
    },
  };
}

/**
 * @typedef {{systolic_mmhg: number | null, diastolic_mmhg: number | null, map_mmhg: number | null,
 *   pulse_bpm: number | null, unit: 'mmHg' | 'kPa', time: string | null, user: number | null, status: number | null}} BloodPressure
 */

/**
 * A Blood Pressure Measurement (0x2A35): flags (bit 0 kPa, bit 1 time stamp, bit 2 pulse
 * rate, bit 3 user id, bit 4 measurement status), systolic, diastolic and mean arterial
 * pressure as SFLOAT, then the present optional fields. Pressures answer in mmHg whatever
 * unit the device sent (kPa converted).
 * @param {DataView | ArrayLike<number>} value
 * @returns {BloodPressure}
 */
export function parseBloodPressure(value) {
  const r = reader(value);
  const flags = r.u8();
  const kpa = (flags & 0x01) !== 0;
  const toMmHg = (/** @type {number | null} */ v) => (v === null ? null : kpa ? Math.round(v * MMHG_PER_KPA) : v);
  const systolic = toMmHg(r.sfloat());
  const diastolic = toMmHg(r.sfloat());
  const map = toMmHg(r.sfloat());
  const time = flags & 0x02 ? r.dateTime() : null;
  const pulse = flags & 0x04 ? r.sfloat() : null;
  const user = flags & 0x08 ? r.u8() : null;
  const status = flags & 0x10 ? r.u16() : null;
  return { systolic_mmhg: systolic, diastolic_mmhg: diastolic, map_mmhg: map, pulse_bpm: pulse, unit: kpa ? 'kPa' : 'mmHg', time, user, status };
}

/** Glucose sample types (the low nibble of Type-Sample Location). */
const SAMPLE_TYPES = ['reserved', 'capillary_whole_blood', 'capillary_plasma', 'venous_whole_blood', 'venous_plasma',
  'arterial_whole_blood', 'arterial_plasma', 'undetermined_whole_blood', 'undetermined_plasma', 'interstitial_fluid', 'control_solution'];

/**
 * @typedef {{sequence: number, time: string | null, offset_minutes: number, glucose_mmol_l: number | null,
 *   unit: 'kg/L' | 'mol/L' | null, sample_type: string | null, sensor_status: number | null, has_context: boolean}} Glucose
 */

/**
 * A Glucose Measurement (0x2A18): flags (bit 0 time offset, bit 1 concentration with type
 * and location, bit 2 unit mol/L (else kg/L), bit 3 sensor status, bit 4 a context
 * follows), sequence number, base time, then the present fields. The concentration answers
 * in mmol/L: kg/L (1 kg/L = 100,000 mg/dL) is converted through mg/dL, mol/L by a
 * thousand.
 * @param {DataView | ArrayLike<number>} value
 * @returns {Glucose}
 */
export function parseGlucose(value) {
  const r = reader(value);
  const flags = r.u8();
  const sequence = r.u16();
  const time = r.dateTime();
  const offset = flags & 0x01 ? r.s16() : 0;
  let glucose = null;
  /** @type {'kg/L' | 'mol/L' | null} */
  let unit = null;
  let sampleType = null;
  if (flags & 0x02) {
    const raw = r.sfloat();
    unit = flags & 0x04 ? 'mol/L' : 'kg/L';
    if (raw !== null) {
      glucose = unit === 'mol/L' ? raw * 1000 : (raw * 100000) / MG_DL_PER_MMOL_L;
      glucose = Math.round(glucose * 10) / 10;
    }
    const typeLocation = r.u8();
    sampleType = SAMPLE_TYPES[typeLocation & 0x0f] || 'reserved';
  }
  const sensorStatus = flags & 0x08 ? r.u16() : null;
  return { sequence, time, offset_minutes: offset, glucose_mmol_l: glucose, unit, sample_type: sampleType, sensor_status: sensorStatus, has_context: (flags & 0x10) !== 0 };
}

/**
 * The meal of a Glucose Measurement Context (0x2A34), as the API's glucose_context:
 * preprandial and fasting are `fasting`, postprandial `postprandial`, casual and bedtime
 * `random`; null when the context carries no meal.
 * @param {DataView | ArrayLike<number>} value
 * @returns {{sequence: number, context: 'fasting' | 'postprandial' | 'random' | null}}
 */
export function parseGlucoseContext(value) {
  const r = reader(value);
  const flags = r.u8();
  const sequence = r.u16();
  if (flags & 0x80) r.u8(); // extended flags
  if (flags & 0x01) { r.u8(); r.u16(); } // carbohydrate id and amount
  if (!(flags & 0x02)) return { sequence, context: null };
  const meal = r.u8();
  /** @type {Record<number, 'fasting' | 'postprandial' | 'random'>} */
  const map = { 1: 'fasting', 2: 'postprandial', 3: 'fasting', 4: 'random', 5: 'random' };
  return { sequence, context: map[meal] ?? null };
}

/**
 * A time the device stamped (local, without a zone) as RFC 3339 in this browser's zone; the
 * current time when it has none.
 * @param {string | null} local
 * @param {Date} now
 * @returns {string}
 */
export function measuredAt(local, now) {
  const d = local ? new Date(local) : now;
  const when = Number.isNaN(d.getTime()) ? now : d;
  const off = -when.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const two = (/** @type {number} */ n) => String(Math.floor(Math.abs(n))).padStart(2, '0');
  const y = when.getFullYear();
  return `${y}-${two(when.getMonth() + 1)}-${two(when.getDate())}T${two(when.getHours())}:${two(when.getMinutes())}:${two(when.getSeconds())}${sign}${two(off / 60)}:${two(off % 60)}`;
}

/** mg/dL per mmol/L, for display. */
export const GLUCOSE_MG_DL_PER_MMOL_L = MG_DL_PER_MMOL_L;
