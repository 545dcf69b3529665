// Vital signs in the call: the readings taken during the consultation as they arrive over
// the signaling room (beside the video, each with its time and device), and on the patient's
// side (kiosk or home) a blood-pressure entry with large inputs, or a reading from a
// Bluetooth blood-pressure monitor or glucose meter where the browser has Web Bluetooth.
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { post } from '../api.js';
import * as gatt from './gatt.js';

/**
 * A reading's kind in words.
 * @param {string} kind
 * @returns {string}
 */
export const kindName = (kind) => t(`vitals.kind.${kind}`);

/**
 * A reading's values in the reader's words ("152/96 mmHg，脉搏 78 次/分"), from the values the
 * server stores (normalised units); `fallback` (the server's own summary) without them.
 * @param {string} kind
 * @param {Record<string, any> | null | undefined} values
 * @param {string} [fallback]
 * @returns {string}
 */
export function readingWords(kind, values, fallback = '') {
  if (!values) return fallback;
  const n = (/** @type {any} */ x) => (x === null || x === undefined ? '?' : String(Number(x)));
  const pulse = values.pulse_bpm === null || values.pulse_bpm === undefined ? '' : t('vitals.words.pulse', { n: n(values.pulse_bpm) });
  switch (kind) {
    case 'blood_pressure': return `${n(values.systolic_mmhg)}/${n(values.diastolic_mmhg)} mmHg${pulse}`;
    case 'glucose': return t('vitals.words.glucose', { n: n(values.glucose_mmol_l), context: t(`vitals.context.${values.glucose_context || 'random'}`) });
    case 'spo2': return `${t('vitals.words.spo2', { n: n(values.spo2_pct) })}${pulse}`;
    case 'weight': return `${n(values.weight_kg)} kg`;
    case 'temperature': return `${n(values.temperature_c)} °C`;
    case 'ecg': return `${t('vitals.words.ecg')}${pulse}`;
    default: return fallback;
  }
}

/**
 * A time as hh:mm:ss in the browser's zone.
 * @param {string} iso
 * @returns {string}
 */
function clockTime(iso) {
  return new Date(iso).toLocaleTimeString(document.documentElement.lang || 'zh-CN', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/**
 * The panel of readings shown beside the video.
 * @returns {{el: HTMLElement, add: (reading: any) => void}}
 */
export function livePanel() {
  const list = h('ol', { class: 'vitals-live-list', 'aria-live': 'polite', 'aria-label': t('vitals.live') });
  const empty = h('p', { class: 'muted' }, t('vitals.liveEmpty'));
  /** @type {Set<string>} */
  const shown = new Set();
  const el = h('section', { class: 'vitals-live', 'aria-labelledby': 'vitals-live-h' },
    h('h2', { id: 'vitals-live-h' }, t('vitals.live')), empty, list);
  return {
    el,
    add(reading) {
      if (shown.has(reading.id)) return;
      shown.add(reading.id);
      empty.hidden = true;
      const item = h('li', { class: 'vital', 'data-kind': reading.kind, 'data-id': reading.id, 'data-received': String(Date.now()) },
        h('strong', { class: 'vital-kind' }, kindName(reading.kind)), ' ',
        h('span', { class: 'vital-values' }, readingWords(reading.kind, reading.values, reading.summary)),
        h('span', { class: 'vital-meta' },
          t('vitals.measuredAt', { at: clockTime(reading.measured_at) }), ' · ',
          t(`vitals.source.${reading.source}`), ' · ',
          reading.device || t('vitals.deviceUnnamed')));
      list.prepend(item);
    },
  };
}

/**
 * A new client id for a reading (the server stores a reading once per id, so a retry after
 * a lost answer never stores it twice).
 * @returns {string}
 */
function clientId() {
  return crypto.randomUUID();
}

/**
 * Sends one reading (with one retry of the same reading when the network fails).
 * @param {string} patientId
 * @param {Record<string, unknown>} reading
 */
async function send(patientId, reading) {
  const path = `/api/v1/patients/${patientId}/observations`;
  try {
    return await post(path, reading);
  } catch (err) {
    if (/** @type {any} */ (err).status) throw err;
    return post(path, reading);
  }
}

/**
 * The patient's side: enter a blood pressure with large inputs, or read it (or a glucose)
 * from a Bluetooth device.
 * @param {{patientId: string, consultationId: string, source: 'kiosk' | 'home'}} opts
 * @returns {HTMLElement}
 */
export function entryPanel({ patientId, consultationId, source }) {
  const status = h('p', { class: 'vitals-status', role: 'status' });
  const input = (/** @type {string} */ name, /** @type {number} */ min, /** @type {number} */ max) => /** @type {HTMLInputElement} */ (
    h('input', { name, id: `vital-${name}`, type: 'number', inputmode: 'numeric', min, max, step: 1, required: name !== 'pulse', class: 'huge-input' }));
  const sys = input('systolic', 40, 300);
  const dia = input('diastolic', 20, 200);
  const pulse = input('pulse', 20, 300);
  const big = (/** @type {HTMLInputElement} */ control, /** @type {string} */ label) =>
    h('div', { class: 'field big-field' }, h('label', { for: control.id }, label), control);
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'vitals-entry' },
    big(sys, t('vitals.systolic')), big(dia, t('vitals.diastolic')), big(pulse, t('vitals.pulse')),
    h('button', { type: 'submit', class: 'primary huge' }, t('vitals.sendBp'))));
  /** @param {Record<string, unknown>} values @param {string} device @param {string | null} at */
  const submit = async (values, device, at) => {
    status.textContent = t('vitals.sending');
    try {
      await send(patientId, {
        ...values, measured_at: gatt.measuredAt(at, new Date()), source, device,
        client_id: clientId(), consultation_id: consultationId,
      });
      status.textContent = t('vitals.sent');
      form.reset();
    } catch (err) {
      status.textContent = t('vitals.failed', { message: /** @type {Error} */ (err).message });
    }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    /** @type {Record<string, unknown>} */
    const values = { kind: 'blood_pressure', systolic_mmhg: Number(sys.value), diastolic_mmhg: Number(dia.value) };
    if (pulse.value) values.pulse_bpm = Number(pulse.value);
    submit(values, t('vitals.manualDevice'), null);
  });
  const bluetooth = /** @type {any} */ (navigator).bluetooth;
  const bt = bluetooth ? h('div', { class: 'actions' },
    h('button', { type: 'button', class: 'huge', onclick: () => readBluetooth(bluetooth, 'bp', submit, status) }, t('vitals.btBp')),
    h('button', { type: 'button', class: 'huge', onclick: () => readBluetooth(bluetooth, 'glucose', submit, status) }, t('vitals.btGlucose'))) : null;
  return h('section', { class: 'vitals-entry-panel', 'aria-labelledby': 'vitals-entry-h' },
    h('h2', { id: 'vitals-entry-h' }, t('vitals.enterBp')), form, bt, status);
}

/**
 * Reads one measurement from a standard Bluetooth blood-pressure monitor (indications of
 * 0x2A35) or glucose meter (its last stored record through the Record Access Control Point),
 * and sends it.
 * @param {any} bluetooth navigator.bluetooth
 * @param {'bp' | 'glucose'} what
 * @param {(values: Record<string, unknown>, device: string, at: string | null) => Promise<void>} submit
 * @param {HTMLElement} status
 */
async function readBluetooth(bluetooth, what, submit, status) {
  const service = what === 'bp' ? gatt.BLOOD_PRESSURE_SERVICE : gatt.GLUCOSE_SERVICE;
  try {
    const device = await bluetooth.requestDevice({ filters: [{ services: [service] }] });
    status.textContent = t('vitals.btConnecting', { name: device.name || '' });
    const server = await device.gatt.connect();
    const svc = await server.getPrimaryService(service);
    const name = `${device.name || 'Bluetooth'} (GATT ${what === 'bp' ? '0x1810' : '0x1808'})`;
    if (what === 'bp') {
      const ch = await svc.getCharacteristic(gatt.BLOOD_PRESSURE_MEASUREMENT);
      status.textContent = t('vitals.btMeasure');
      const value = await new Promise((resolve) => {
        ch.addEventListener('characteristicvaluechanged', (/** @type {any} */ e) => resolve(e.target.value), { once: true });
        ch.startNotifications();
      });
      const bp = gatt.parseBloodPressure(/** @type {DataView} */ (value));
      /** @type {Record<string, unknown>} */
      const values = { kind: 'blood_pressure', systolic_mmhg: bp.systolic_mmhg, diastolic_mmhg: bp.diastolic_mmhg };
      if (bp.pulse_bpm !== null) values.pulse_bpm = bp.pulse_bpm;
      await submit(values, name, bp.time);
    } else {
      const measurement = await svc.getCharacteristic(gatt.GLUCOSE_MEASUREMENT);
      const racp = await svc.getCharacteristic(gatt.RECORD_ACCESS_CONTROL_POINT);
      let context = null;
      try {
        const ctx = await svc.getCharacteristic(gatt.GLUCOSE_MEASUREMENT_CONTEXT);
        await ctx.startNotifications();
        ctx.addEventListener('characteristicvaluechanged', (/** @type {any} */ e) => { context = gatt.parseGlucoseContext(e.target.value).context; });
      } catch { /* no context on this meter */ }
      const value = await new Promise((resolve) => {
        measurement.addEventListener('characteristicvaluechanged', (/** @type {any} */ e) => resolve(e.target.value), { once: true });
        measurement.startNotifications().then(async () => {
          await racp.startNotifications();
          // Report stored records (0x01), last record (0x06).
          await racp.writeValue(Uint8Array.of(0x01, 0x06));
        });
      });
      const g = gatt.parseGlucose(/** @type {DataView} */ (value));
      await new Promise((r) => setTimeout(r, 300)); // the context follows its measurement
      await submit({ kind: 'glucose', glucose_mmol_l: g.glucose_mmol_l, glucose_context: context || 'random' }, name, g.time);
    }
    server.disconnect();
  } catch (err) {
    status.textContent = t('vitals.btFailed', { message: /** @type {Error} */ (err).message });
  }
}
