// The check-in kiosk (a browser opened with ?kiosk=1): enrolled once with a kiosk device token
// pasted on the setup screen (kept in localStorage); then its idle screen offers "scan your
// health card" (the camera, read with the BarcodeDetector API where the browser has one, else
// with the vendored jsQR) and "type your card or ID number" on a large keypad with the date of
// birth. A patient found with a consultation booked today joins its call as themself and waits
// in the lobby; with nothing booked, the kiosk says so and offers to call the doctor on duty.
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { ApiError } from '../api.js';
import * as session from '../session.js';

/** Where the kiosk keeps its device token. */
export const DEVICE_KEY = 'teleconsult.kioskDevice';
/** How long a result stays on screen before the kiosk is ready for the next person (ms). */
const RESULT_MS = 45000;
/** How long the camera looks for a code before giving up (ms). */
const SCAN_MS = 60000;

/** @returns {string} the enrolled device token, or '' */
export function enrolledToken() {
  return localStorage.getItem(DEVICE_KEY) || '';
}

/**
 * Calls a device route with the kiosk's token (or `token`).
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {string} [token]
 * @returns {Promise<any>}
 */
async function deviceCall(method, path, body, token = enrolledToken()) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json', Authorization: `Device ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data || {});
  return data;
}

/**
 * The setup screen: paste the kiosk device token an administrator issued.
 * @param {import('../main.js').App} app
 * @returns {HTMLElement}
 */
export function kioskSetupView(app) {
  const error = h('p', { class: 'error', role: 'alert' });
  const input = /** @type {HTMLInputElement} */ (h('input', { id: 'kiosk-token', name: 'device_token', autocomplete: 'off', spellcheck: 'false', required: true }));
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'card narrow kiosk-setup', 'aria-labelledby': 'ks-title' },
    h('h1', { id: 'ks-title' }, t('kiosk.setupTitle')),
    h('p', null, t('kiosk.setupHelp')),
    h('div', { class: 'field' }, h('label', { for: 'kiosk-token' }, t('kiosk.token')), input),
    error,
    h('button', { type: 'submit', class: 'primary' }, t('kiosk.enrol')),
    enrolledToken() ? h('button', { type: 'button', onclick: () => { localStorage.removeItem(DEVICE_KEY); app.navigate('/login'); } }, t('kiosk.unenrol')) : null,
  ));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const token = input.value.trim();
    try {
      const device = await deviceCall('GET', '/api/v1/device', undefined, token);
      if (device.kind !== 'kiosk') { error.textContent = t('kiosk.notAKiosk'); return; }
      localStorage.setItem(DEVICE_KEY, token);
      localStorage.setItem('teleconsult.kiosk', '1');
      app.navigate('/checkin');
    } catch (err) {
      error.textContent = err instanceof ApiError && err.code === 'device_revoked' ? t('kiosk.revoked') : t('kiosk.badToken');
    }
  });
  return form;
}

/**
 * The idle kiosk: scan or type, then the answer in plain words.
 * @param {import('../main.js').App} app
 * @returns {Promise<HTMLElement>}
 */
export async function checkinView(app) {
  const root = h('section', { class: 'elder-home kiosk', 'aria-labelledby': 'kc-title' });
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  /** @type {(() => void) | null} */
  let stopCamera = null;
  const leave = () => { clearTimeout(timer); stopCamera?.(); stopCamera = null; };
  app.onLeave(leave);

  let site = '';
  try {
    const device = await deviceCall('GET', '/api/v1/device');
    site = device.organisation_name;
  } catch (err) {
    const revoked = err instanceof ApiError && (err.code === 'device_revoked' || err.status === 401);
    root.append(h('h1', { id: 'kc-title' }, t('kiosk.outOfService')),
      h('p', { class: 'big', role: 'alert' }, revoked ? t('kiosk.revoked') : t('kiosk.offline')),
      h('button', { onclick: () => app.navigate('/kiosk/setup') }, t('kiosk.setupTitle')));
    return root;
  }

  /** Shows `children` in place of what was there. */
  const show = (/** @type {any[]} */ ...children) => {
    leave();
    root.replaceChildren(...children.flat().filter(Boolean));
  };
  /** Back to the idle screen after a while, as a kiosk must. */
  const later = () => { clearTimeout(timer); timer = setTimeout(idle, RESULT_MS); };
  const home = () => h('button', { class: 'kiosk-home', onclick: idle }, t('kiosk.back'));

  function idle() {
    show(
      h('h1', { id: 'kc-title' }, t('kiosk.welcome')),
      h('p', { class: 'big kiosk-site' }, site),
      h('button', { class: 'primary huge kiosk-scan', onclick: scan }, t('kiosk.scan')),
      h('button', { class: 'huge kiosk-type', onclick: keypad }, t('kiosk.type')),
      h('p', { class: 'hint' }, t('kiosk.help')),
      h('button', { class: 'link', onclick: () => app.navigate('/login') }, t('kiosk.signInInstead')),
    );
  }

  async function scan() {
    const video = /** @type {HTMLVideoElement} */ (h('video', { class: 'kiosk-camera', autoplay: true, muted: true, playsinline: true, 'aria-hidden': 'true' }));
    const status = h('p', { class: 'big', role: 'status' }, t('kiosk.scanHelp'));
    show(h('h1', { id: 'kc-title' }, t('kiosk.scanTitle')), video, status, home());
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
    } catch {
      status.textContent = t('kiosk.noCamera');
      later();
      return;
    }
    let stopped = false;
    stopCamera = () => { stopped = true; stream.getTracks().forEach((track) => track.stop()); };
    video.srcObject = stream;
    const read = await qrReader();
    const canvas = document.createElement('canvas');
    const deadline = Date.now() + SCAN_MS;
    while (!stopped && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 150));
      if (stopped || video.readyState < 2 || !video.videoWidth) continue;
      const text = await read(video, canvas).catch(() => null);
      if (text) {
        stopCamera?.();
        stopCamera = null;
        status.textContent = t('kiosk.looking');
        await submit({ qr: text });
        return;
      }
    }
    if (!stopped) { stopCamera?.(); idle(); }
  }

  function keypad() {
    /** @type {'card_number' | 'resident_id'} */
    let kind = 'card_number';
    const fields = {
      number: /** @type {HTMLInputElement} */ (h('input', { id: 'kp-number', name: 'number', readonly: true, inputmode: 'none', class: 'kp-display' })),
      birth: /** @type {HTMLInputElement} */ (h('input', { id: 'kp-birth', name: 'birth_date', readonly: true, inputmode: 'none', class: 'kp-display', placeholder: t('kiosk.birthPlaceholder') })),
    };
    /** @type {'number' | 'birth'} */
    let target = 'number';
    let birthDigits = '';
    const error = h('p', { class: 'error big', role: 'alert' });
    const focus = (/** @type {'number' | 'birth'} */ which) => {
      target = which;
      fields.number.parentElement?.classList.toggle('active', which === 'number');
      fields.birth.parentElement?.classList.toggle('active', which === 'birth');
    };
    const renderBirth = () => {
      const d = birthDigits;
      fields.birth.value = d.length > 6 ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d.length > 4 ? `${d.slice(0, 4)}-${d.slice(4)}` : d;
    };
    const press = (/** @type {string} */ key) => {
      error.textContent = '';
      if (target === 'number') {
        if (key === '⌫') fields.number.value = fields.number.value.slice(0, -1);
        else if (fields.number.value.length < 40) fields.number.value += key;
        if (fields.number.value.length >= 18 && kind === 'resident_id') focus('birth');
      } else {
        if (key === '⌫') birthDigits = birthDigits.slice(0, -1);
        else if (/\d/.test(key) && birthDigits.length < 8) birthDigits += key;
        renderBirth();
      }
    };
    const kindButtons = /** @type {const} */ (['card_number', 'resident_id']).map((k) => h('button', {
      type: 'button', class: `kp-kind${k === kind ? ' selected' : ''}`, 'aria-pressed': String(k === kind),
      onclick: (/** @type {Event} */ e) => {
        kind = k;
        for (const b of kindButtons) { b.classList.remove('selected'); b.setAttribute('aria-pressed', 'false'); }
        const el = /** @type {HTMLElement} */ (e.currentTarget);
        el.classList.add('selected');
        el.setAttribute('aria-pressed', 'true');
        numberLabel.textContent = t(k === 'card_number' ? 'kiosk.cardNumber' : 'kiosk.residentId');
        focus('number');
      },
    }, t(k === 'card_number' ? 'kiosk.cardNumber' : 'kiosk.residentId')));
    const numberLabel = h('label', { for: 'kp-number' }, t('kiosk.cardNumber'));
    const keys = ['1', '2', '3', '4', '5', '6', '7', '8', '9', 'X', '0', '⌫'];
    show(
      h('h1', { id: 'kc-title' }, t('kiosk.typeTitle')),
      h('div', { class: 'kp-kinds', role: 'group', 'aria-label': t('kiosk.whichNumber') }, kindButtons),
      h('div', { class: 'kp-field active', onclick: () => focus('number') }, numberLabel, fields.number),
      h('div', { class: 'kp-field', onclick: () => focus('birth') }, h('label', { for: 'kp-birth' }, t('kiosk.birthDate')), fields.birth),
      h('div', { class: 'keypad', role: 'group', 'aria-label': t('kiosk.keypad') },
        keys.map((k) => h('button', { type: 'button', class: 'key', 'aria-label': k === '⌫' ? t('kiosk.delete') : k, onclick: () => press(k) }, k))),
      error,
      h('button', { class: 'primary huge kp-submit', onclick: async () => {
        const number = fields.number.value.trim();
        if (!number) { error.textContent = t('kiosk.needNumber'); focus('number'); return; }
        if (birthDigits.length !== 8) { error.textContent = t('kiosk.needBirth'); focus('birth'); return; }
        const birth_date = `${birthDigits.slice(0, 4)}-${birthDigits.slice(4, 6)}-${birthDigits.slice(6)}`;
        await submit(kind === 'card_number' ? { card_number: number, birth_date } : { resident_id: number, birth_date });
      } }, t('kiosk.checkIn')),
      home(),
    );
    later();
  }

  /** @param {Record<string, string>} body */
  async function submit(body) {
    let answer;
    try {
      answer = await deviceCall('POST', '/api/v1/kiosk/checkin', body);
    } catch (err) {
      const code = err instanceof ApiError ? err.code : 'offline';
      const known = ['card_unknown', 'card_expired', 'card_invalid', 'rate_limited', 'device_revoked'];
      show(h('h1', { id: 'kc-title' }, t('kiosk.sorry')),
        h('p', { class: 'big kiosk-message', role: 'alert', 'data-code': code }, t(`kiosk.msg.${known.includes(code) ? code : 'offline'}`)),
        h('button', { class: 'primary huge', onclick: idle }, t('kiosk.tryAgain')));
      later();
      return;
    }
    const hello = h('h1', { id: 'kc-title' }, t('kiosk.hello', { name: answer.patient_name }));
    const c = answer.consultation;
    if (answer.message_code === 'in_lobby' && answer.access && c) {
      const opens = c.room_opens_at ? Date.parse(c.room_opens_at) : 0;
      if (opens > Date.now()) {
        show(hello, h('p', { class: 'big kiosk-message', role: 'status', 'data-code': 'room_not_open' },
          t('kiosk.msg.room_not_open', { at: time(c.starts_at), opens: time(c.room_opens_at) })), home());
        later();
        return;
      }
      show(hello, h('p', { class: 'big kiosk-message', role: 'status', 'data-code': 'in_lobby' }, t('kiosk.msg.in_lobby', { expert: c.expert_name || '' })));
      // The kiosk joins the call as the patient, with access for this consultation only.
      session.save({ access_token: answer.access.access_token, refresh_token: '', user: answer.access.user, kiosk: true });
      setTimeout(() => app.navigate(`/call/${c.id}`), 1500);
      return;
    }
    if (answer.message_code === 'none_booked_today') {
      const note = h('p', { class: 'big', role: 'status' });
      const call = h('button', { class: 'primary huge kiosk-duty', onclick: async () => {
        call.setAttribute('disabled', '');
        try {
          const told = await deviceCall('POST', '/api/v1/kiosk/notify-duty', { checkin_id: answer.checkin_id });
          note.textContent = t(told.notified > 0 ? 'kiosk.dutyTold' : 'kiosk.dutyNobody');
        } catch {
          note.textContent = t('kiosk.dutyNobody');
        }
        later();
      } }, t('kiosk.callDuty'));
      show(hello, h('p', { class: 'big kiosk-message', 'data-code': 'none_booked_today' }, t('kiosk.msg.none_booked_today')), call, note, home());
      later();
      return;
    }
    show(hello, h('p', { class: 'big kiosk-message', 'data-code': answer.message_code }, t('kiosk.msg.no_patient_account')), home());
    later();
  }

  idle();
  return root;
}

/**
 * A time of day as a patient reads it.
 * @param {string} iso
 */
function time(iso) {
  return new Date(iso).toLocaleTimeString(document.documentElement.lang || 'zh-CN', { hour: '2-digit', minute: '2-digit' });
}

/**
 * A reader of QR codes in video frames: the browser's BarcodeDetector where it reads QR codes,
 * else jsQR (loaded only when needed).
 * @returns {Promise<(video: HTMLVideoElement, canvas: HTMLCanvasElement) => Promise<string | null>>}
 */
async function qrReader() {
  const Detector = /** @type {any} */ (window).BarcodeDetector;
  if (Detector && (await Detector.getSupportedFormats?.().catch(() => []))?.includes('qr_code')) {
    const detector = new Detector({ formats: ['qr_code'] });
    return async (video) => {
      const codes = await detector.detect(video);
      return codes[0]?.rawValue || null;
    };
  }
  const jsQR = (await import('../vendor/jsqr.js')).default;
  return async (video, canvas) => {
    // At most 800 pixels wide: enough for a card held up to the camera, cheap to scan.
    const scale = Math.min(1, 800 / video.videoWidth);
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    if (!ctx) return null;
    ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
    const frame = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const code = jsQR(frame.data, frame.width, frame.height, { inversionAttempts: 'dontInvert' });
    return code?.data || null;
  };
}
