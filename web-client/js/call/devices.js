// "Check my setup": the camera, microphone and speaker pickers with a live preview, a
// microphone level meter and a test sound, shown above the network check. The choice is
// remembered in this browser and used by the call; so is the network check's last verdict,
// which makes the call suggest audio only.
import { h, mount } from '../dom.js';
import { t } from '../i18n.js';

const KEY = 'teleconsult.devices';
const VERDICT = 'teleconsult.netcheck.verdict';

/** @typedef {{audio?: string, video?: string, output?: string}} Choice */

/** @returns {Choice} */
export function chosenDevices() {
  try {
    return JSON.parse(localStorage.getItem(KEY) || '{}');
  } catch {
    return {};
  }
}

/** @param {Choice} c */
function choose(c) {
  localStorage.setItem(KEY, JSON.stringify({ ...chosenDevices(), ...c }));
}

/**
 * getUserMedia constraints for the chosen devices (any device when none is chosen or the
 * chosen one is gone).
 * @returns {MediaStreamConstraints}
 */
export function mediaConstraints() {
  const c = chosenDevices();
  return {
    audio: c.audio ? { deviceId: { ideal: c.audio } } : true,
    video: c.video ? { deviceId: { ideal: c.video } } : true,
  };
}

/**
 * Plays a media element's sound on the chosen speaker, where the browser allows it.
 * @param {HTMLMediaElement} el
 */
export function useChosenSpeaker(el) {
  const out = chosenDevices().output;
  const sink = /** @type {any} */ (el).setSinkId;
  if (out && typeof sink === 'function') sink.call(el, out).catch(() => {});
}

/** @param {string} verdict the network check's verdict (video, audio_only, cannot_connect) */
export function rememberVerdict(verdict) {
  localStorage.setItem(VERDICT, verdict);
}

/** Whether the last network check in this browser advised audio only. */
export function audioOnlyAdvised() {
  return localStorage.getItem(VERDICT) === 'audio_only';
}

/**
 * Root mean square of the analyser's time-domain samples, 0..1.
 * @param {Uint8Array} samples bytes around 128
 * @returns {number}
 */
export function level(samples) {
  if (!samples.length) return 0;
  let sum = 0;
  for (const s of samples) sum += ((s - 128) / 128) ** 2;
  return Math.min(1, Math.sqrt(sum / samples.length));
}

/**
 * The device check: pickers, preview, level meter, test sound. `onLeave` stops the devices.
 * @param {(cleanup: () => void) => void} onLeave
 * @returns {Promise<HTMLElement>}
 */
export async function devicesPanel(onLeave) {
  const preview = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, muted: true, playsinline: true, class: 'preview', 'aria-label': t('setup.preview') }));
  const meter = /** @type {HTMLMeterElement} */ (h('meter', { id: 'mic-level', min: '0', max: '1', value: '0', 'aria-label': t('setup.level') }));
  const error = h('p', { class: 'error', role: 'alert' });
  const pickers = h('div', { class: 'grid device-pickers' });
  /** @type {MediaStream | null} */
  let stream = null;
  /** @type {AudioContext | null} */
  let audio = null;
  let frame = 0;
  const stop = () => {
    cancelAnimationFrame(frame);
    for (const tr of stream?.getTracks() || []) tr.stop();
    audio?.close().catch(() => {});
    stream = null;
    audio = null;
  };
  onLeave(stop);

  const start = async () => {
    stop();
    try {
      stream = await navigator.mediaDevices.getUserMedia(mediaConstraints());
    } catch (err) {
      error.textContent = t('setup.noDevices', { message: /** @type {Error} */ (err).message });
      return;
    }
    error.textContent = '';
    preview.srcObject = stream;
    if (stream.getAudioTracks().length) {
      audio = new AudioContext();
      const analyser = audio.createAnalyser();
      analyser.fftSize = 1024;
      audio.createMediaStreamSource(stream).connect(analyser);
      const buf = new Uint8Array(analyser.fftSize);
      const tick = () => {
        analyser.getByteTimeDomainData(buf);
        meter.value = level(buf);
        frame = requestAnimationFrame(tick);
      };
      tick();
    }
    await renderPickers();
  };

  /**
   * @param {MediaDeviceInfo[]} devices
   * @param {'audioinput' | 'videoinput' | 'audiooutput'} kind
   * @param {'audio' | 'video' | 'output'} key
   * @param {string} label
   */
  const picker = (devices, kind, key, label) => {
    const list = devices.filter((d) => d.kind === kind);
    const current = key === 'output' ? chosenDevices().output
      : stream?.getTracks().find((tr) => tr.kind === key)?.getSettings().deviceId;
    const select = /** @type {HTMLSelectElement} */ (h('select', { id: `device-${key}`, name: key },
      list.length ? list.map((d, i) => h('option', { value: d.deviceId, selected: d.deviceId === current },
        d.label || t('setup.deviceN', { n: i + 1 }))) : h('option', { value: '' }, t('setup.none'))));
    select.addEventListener('change', () => {
      choose({ [key]: select.value });
      if (key !== 'output') start();
    });
    return h('div', { class: 'field' }, h('label', { for: `device-${key}` }, label), select);
  };
  const renderPickers = async () => {
    const devices = await navigator.mediaDevices.enumerateDevices();
    mount(pickers,
      picker(devices, 'videoinput', 'video', t('setup.camera')),
      picker(devices, 'audioinput', 'audio', t('setup.microphone')),
      picker(devices, 'audiooutput', 'output', t('setup.speaker')));
  };
  const testSound = () => {
    const el = /** @type {HTMLAudioElement} */ (h('audio', {}));
    useChosenSpeaker(el);
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    const dest = ctx.createMediaStreamDestination();
    osc.frequency.value = 660;
    osc.connect(dest);
    el.srcObject = dest.stream;
    el.play().catch(() => {});
    osc.start();
    osc.stop(ctx.currentTime + 0.6);
    setTimeout(() => { ctx.close().catch(() => {}); el.remove(); }, 1000);
  };
  await start();
  return h('section', { class: 'card', 'aria-labelledby': 'setup-devices' },
    h('h2', { id: 'setup-devices' }, t('setup.devices')),
    h('p', { class: 'hint' }, t('setup.devicesHint')),
    error,
    h('div', { class: 'setup-media' }, preview,
      h('div', null, pickers,
        h('div', { class: 'field' }, h('label', { for: 'mic-level' }, t('setup.level')), meter),
        h('button', { type: 'button', onclick: testSound }, t('setup.testSound')))));
}
