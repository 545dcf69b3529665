// The call screen: video tiles, microphone / camera / screen-share controls, a call timer,
// chat (with its history), the lobby (waiting for patients, admit and remove for doctors,
// with a sound and a toast when someone arrives), a banner while this side or a peer
// reconnects, a connection-quality label on every remote tile, the consultation's ECGs and
// images opened beside the video, the vital signs taken during the call (with, on the
// patient's side, their entry), and the end of the call (for everyone, by a doctor).
import { h, mount, when } from '../dom.js';
import { t } from '../i18n.js';
import { get, getAll } from '../api.js';
import { toast } from '../notifications.js';
import { Signaling } from './signaling.js';
import { Peer } from './peer.js';
import { watchQuality } from './quality.js';
import { mediaConstraints, useChosenSpeaker, audioOnlyAdvised } from './devices.js';
import { Upload } from '../views/files.js';
import { livePanel, entryPanel } from '../vitals/live.js';

/**
 * "mm:ss" (or "h:mm:ss") of a duration in seconds.
 * @param {number} secs
 * @returns {string}
 */
export function clock(secs) {
  const s = Math.max(0, Math.floor(secs));
  const two = (/** @type {number} */ n) => String(n).padStart(2, '0');
  const hours = Math.floor(s / 3600);
  const rest = `${two(Math.floor((s % 3600) / 60))}:${two(s % 60)}`;
  return hours ? `${hours}:${rest}` : rest;
}

/**
 * The patient's expected wait in whole minutes until `start` (0 once it has begun).
 * @param {string | null | undefined} start
 * @param {number} now
 * @returns {number | null}
 */
export function expectedWait(start, now) {
  if (!start) return null;
  return Math.max(0, Math.ceil((Date.parse(start) - now) / 60000));
}

/** A short two-tone chime (Web Audio; silent where audio output is not allowed). */
function chime() {
  try {
    const ctx = new AudioContext();
    for (const [i, f] of [880, 660].entries()) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      gain.gain.value = 0.1;
      osc.frequency.value = f;
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + i * 0.2);
      osc.stop(ctx.currentTime + i * 0.2 + 0.18);
    }
    setTimeout(() => ctx.close(), 1000);
  } catch { /* no audio */ }
}

/**
 * @param {import('../main.js').App} app
 * @param {string} consultationId
 * @returns {Promise<HTMLElement>}
 */
export async function callView(app, consultationId) {
  const elder = document.body.classList.contains('elder');
  const isPatient = app.user().role === 'patient';
  const home = isPatient ? '/' : `/consultations/${consultationId}`;
  const banner = h('div', { class: 'banner', role: 'status', hidden: true });
  const peerNotice = h('div', { class: 'peer-notice', role: 'status', 'aria-live': 'polite', hidden: true });
  const waitText = h('p', { class: 'wait-detail' });
  const lobbyWait = h('div', { class: 'lobby-wait', hidden: true }, h('p', { class: 'big' }, t('call.waiting')), waitText);
  const ended = h('div', { class: 'call-ended', role: 'status', hidden: true });
  const timer = h('p', { class: 'call-timer', 'aria-label': t('call.duration') }, t('call.durationValue', { time: clock(0) }));
  const tiles = h('div', { class: 'tiles' });
  const lobbyList = h('ul', { class: 'list lobby', 'aria-label': t('call.lobby') });
  const chatLog = h('ol', { class: 'chat-log', 'aria-live': 'polite', 'aria-label': t('call.chat') });
  const chatInput = /** @type {HTMLInputElement} */ (h('input', { id: 'chat-input', name: 'chat', autocomplete: 'off' }));
  /** The last chat line sent, put back in the box if the server could not keep it. */
  let lastChat = '';
  const error = h('p', { class: 'error', role: 'alert' });
  const beside = h('section', { class: 'beside', 'aria-label': t('call.beside'), hidden: true });

  // The consultation (for the patient's wait and the doctors' files); the call works without it.
  /** @type {any} */
  let consultation = null;
  try {
    consultation = await get(`/api/v1/consultations/${consultationId}`);
  } catch { /* not readable: the call still works */ }
  const booked = consultation?.appointments?.find((/** @type {any} */ a) => a.status === 'booked');
  const showWait = () => {
    const minutes = expectedWait(booked?.start, Date.now());
    waitText.textContent = minutes === null ? '' : minutes > 0
      ? t('call.waitUntil', { at: when(booked.start), minutes })
      : t('call.waitSoon');
  };
  showWait();

  /** @type {MediaStream} */
  let local;
  try {
    local = await navigator.mediaDevices.getUserMedia(mediaConstraints());
  } catch {
    local = new MediaStream();
    error.textContent = t('call.noDevices');
  }
  const camera = local.getVideoTracks()[0] || null;
  const localVideo = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, muted: true, playsinline: true, class: 'local', 'aria-label': t('call.you') }));
  localVideo.srcObject = local;
  tiles.append(h('figure', { class: 'tile' }, localVideo, h('figcaption', null, t('call.you'))));

  const signaling = new Signaling(consultationId);
  /** @type {Map<string, {peer: Peer, tile: HTMLElement, caption: HTMLElement, name: string, role: string, stopQuality: () => void}>} */
  const peers = new Map();
  /** @type {Map<string, any>} */
  const lobby = new Map();
  const media = { mic: local.getAudioTracks().length > 0, camera: !!camera, screen: false };
  /** @type {MediaStreamTrack | null} */
  let screenTrack = null;
  /** This participant's role in the room (requester, expert, patient). */
  let myRole = '';
  /** Whether a doctor has been in the room with this participant (for the patient left alone). */
  let metDoctor = false;
  /** @type {number | null} */
  let startedAt = null;
  /** Ids of peers whose connection is being restored. */
  const reconnecting = new Set();
  /** Chat lines shown, by time and text, so the history and live lines never double. */
  const shownChat = new Set();
  let finished = false;

  const tick = setInterval(() => {
    if (startedAt !== null) timer.textContent = t('call.durationValue', { time: clock((Date.now() - startedAt) / 1000) });
    if (!lobbyWait.hidden) showWait();
  }, 1000);

  const showPeerNotice = () => {
    const names = [...reconnecting].map((id) => peers.get(id)?.name).filter(Boolean);
    peerNotice.hidden = names.length === 0;
    peerNotice.textContent = names.length ? t('call.peerReconnecting', { name: names.join('、') }) : '';
  };

  /**
   * Ends this side of the call and shows what happens next; patients go home after a moment.
   * @param {string} message
   */
  const finish = (message) => {
    if (finished) return;
    finished = true;
    signaling.leave();
    for (const id of [...peers.keys()]) dropPeer(id);
    for (const track of local.getTracks()) track.stop();
    screenTrack?.stop();
    const next = h('p', { class: 'next-steps' }, isPatient ? t('call.goingHome') : t('call.nextSteps'));
    mount(ended, h('p', { class: 'big' }, message), next,
      h('button', { class: 'primary', onclick: () => app.navigate(home) }, isPatient ? t('call.backHome') : t('call.backToConsultation')));
    // What happens next: the opinion still to be signed, or signed with its follow-up advice.
    if (!isPatient) {
      get(`/api/v1/consultations/${consultationId}/opinions`).then((res) => {
        const signed = (/** @type {any[]} */ (res.items)).find((o) => o.status === 'signed');
        next.textContent = signed
          ? t('call.opinionSigned', { name: signed.signer_name, followUp: signed.follow_up_advice || t('common.none') })
          : t('call.opinionPending');
      }).catch(() => {});
    }
    ended.hidden = false;
    lobbyWait.hidden = true;
    controls.hidden = true;
    if (isPatient) setTimeout(() => { if (location.pathname === `/call/${consultationId}`) app.navigate('/'); }, 4000);
  };

  /** @param {{id: string, name: string, role?: string, polite: boolean, media?: {mic: boolean, camera: boolean, screen: boolean}}} info */
  const addPeer = (info) => {
    if (peers.has(info.id)) return;
    if (info.role === 'requester' || info.role === 'expert') metDoctor = true;
    if (startedAt === null) startedAt = Date.now();
    const video = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, playsinline: true, class: 'remote', 'data-peer': info.id, 'aria-label': info.name }));
    const caption = h('figcaption', null, info.name);
    // Announced politely when the level changes (not on every sample), with whose connection it is.
    const level = h('span', { class: 'quality-level' }, t('call.quality', { level: t('call.quality.unknown') }));
    const quality = h('p', { class: 'quality', 'data-quality': 'unknown', 'aria-live': 'polite', 'aria-atomic': 'true' },
      h('span', { class: 'visually-hidden' }, t('call.qualityOf', { name: info.name })), level);
    const doctor = myRole === 'requester' || myRole === 'expert';
    const action = h('div', { class: 'tile-action' });
    // Removing a patient asks first: one click alone does not end someone's call.
    const askRemove = () => mount(action,
      h('button', { class: 'danger', onclick: () => signaling.send({ type: 'remove', peer: info.id }) }, t('call.confirmRemove', { name: info.name })),
      h('button', { onclick: offerRemove }, t('call.cancel')));
    const offerRemove = () => mount(action, h('button', { onclick: askRemove }, t('call.removeNamed', { name: info.name })));
    if (doctor && info.role === 'patient') offerRemove();
    const tile = h('figure', { class: 'tile' }, video, caption, quality, action);
    tiles.append(tile);
    const peer = new Peer({
      id: info.id, polite: info.polite, iceServers: signaling.iceServers, stream: local,
      send: (m) => signaling.send(m),
      onTrack: (stream) => { if (video.srcObject !== stream) { video.srcObject = stream; useChosenSpeaker(video); } },
      onState: (state) => { tile.dataset.state = state; },
    });
    // A later arrival sees the shared screen, not the camera, while sharing goes on; in audio
    // only, nothing.
    if (screenTrack || audioOnly) peer.replaceVideo(screenTrack).catch(() => {});
    const stopQuality = watchQuality(peer.pc, (q) => {
      const now = q.quality || 'unknown';
      const fmt = (/** @type {number | null} */ v) => (v === null ? '–' : String(Math.round(v)));
      quality.title = t('call.qualityDetail', { rtt: fmt(q.rttMs), loss: q.lossPct === null ? '–' : q.lossPct.toFixed(1), jitter: fmt(q.jitterMs) });
      if (quality.dataset.quality === now) return;
      quality.dataset.quality = now;
      level.textContent = t('call.quality', { level: t(`call.quality.${now}`) });
    });
    peers.set(info.id, { peer, tile, caption, name: info.name, role: info.role || '', stopQuality });
    if (info.media) showMedia(info.id, info.media);
  };
  /**
   * Shows a peer's microphone and camera state on its tile.
   * @param {string} id
   * @param {{mic: boolean, camera: boolean, screen: boolean}} m
   */
  const showMedia = (id, m) => {
    const p = peers.get(id);
    if (!p) return;
    const notes = [!m.mic && t('call.peerMuted'), !m.camera && t('call.peerCameraOff'), m.screen && t('call.peerSharing')].filter(Boolean);
    p.caption.textContent = [p.name, ...notes].join(' · ');
  };
  /** @param {string} id */
  const dropPeer = (id) => {
    const p = peers.get(id);
    if (!p) return;
    p.stopQuality();
    p.peer.close();
    p.tile.remove();
    peers.delete(id);
    reconnecting.delete(id);
    showPeerNotice();
  };
  const renderLobby = () => mount(lobbyList, [...lobby.values()].map((p) => h('li', null, p.name,
    h('button', { class: 'primary', onclick: () => signaling.send({ type: 'admit', peer: p.id }) }, t('call.admit')),
    h('button', { onclick: () => signaling.send({ type: 'remove', peer: p.id }) }, t('call.remove')))));
  /** @param {string} name @param {string} text @param {string} at */
  const addChat = (name, text, at) => {
    const key = `${at}|${text}`;
    if (shownChat.has(key)) return;
    shownChat.add(key);
    const line = h('li', { 'data-at': at }, h('strong', null, `${name}: `), text);
    // In time order: the history may arrive after a live line.
    const later = [...chatLog.children].find((li) => (/** @type {HTMLElement} */ (li).dataset.at || '') > at);
    chatLog.insertBefore(line, later || null);
    chatLog.scrollTop = chatLog.scrollHeight;
  };
  /** The chat kept with the consultation, so a reload shows what was said before. */
  const loadChatHistory = async () => {
    try {
      const record = await get(`/api/v1/consultations/${consultationId}/record`);
      for (const line of record.chat || []) addChat(line.sender_name, line.body, line.sent_at);
    } catch { /* no history for this role */ }
  };

  signaling.addEventListener('message', (e) => {
    const msg = /** @type {CustomEvent} */ (e).detail;
    switch (msg.type) {
      case 'joined':
      case 'resumed':
        banner.hidden = true;
        lobbyWait.hidden = msg.admitted;
        myRole = msg.you.role;
        for (const p of msg.peers) addPeer(p);
        for (const p of msg.lobby || []) lobby.set(p.id, p);
        renderLobby();
        // After a resume: ICE restarts with the fresh ICE servers the resume brought.
        if (msg.restart_ice) for (const p of peers.values()) p.peer.restartIce(msg.type === 'resumed' ? signaling.iceServers : undefined);
        signaling.send({ type: 'media', ...media });
        if (msg.type === 'joined' && !elder) loadChatHistory();
        break;
      case 'peer-joined':
        addPeer(msg.peer);
        break;
      case 'peer-left': {
        dropPeer(msg.peer);
        // A patient left alone once the doctors have gone: the consultation is over for her.
        const doctorsLeft = [...peers.values()].some((p) => p.role === 'requester' || p.role === 'expert');
        if (myRole === 'patient' && metDoctor && !doctorsLeft) finish(t('call.over'));
        break;
      }
      case 'peer-reconnecting':
        reconnecting.add(msg.peer);
        showPeerNotice();
        break;
      case 'ice-servers':
        // Fresh TURN credentials before the current ones expire: an ICE restart after a
        // network change (without a signaling resume) takes them.
        for (const p of peers.values()) p.peer.useIceServers(signaling.iceServers);
        break;
      case 'peer-reconnected':
        reconnecting.delete(msg.peer);
        showPeerNotice();
        if (msg.restart_ice) peers.get(msg.peer)?.peer.restartIce();
        break;
      case 'signal':
        peers.get(msg.from)?.peer.onSignal(msg).catch((err) => { error.textContent = String(err); });
        break;
      case 'chat':
        addChat(msg.name, msg.text, msg.at);
        // A line that was not saved before has gone through now.
        if (error.dataset.chat) { error.textContent = ''; delete error.dataset.chat; }
        break;
      case 'media':
        showMedia(msg.from, msg);
        break;
      case 'lobby':
        if (msg.participant.user_id === app.user().id) {
          lobbyWait.hidden = msg.status !== 'waiting';
          if (msg.status === 'removed') error.textContent = t('call.removed');
        } else if (msg.status === 'waiting') {
          lobby.set(msg.participant.id, msg.participant);
          toast(t('call.lobbyArrived', { name: msg.participant.name }));
          chime();
        } else {
          lobby.delete(msg.participant.id);
          // An admission that was not saved before has gone through now.
          if (error.dataset.admission) { error.textContent = ''; delete error.dataset.admission; }
        }
        renderLobby();
        break;
      case 'observation':
        vitals.add(msg.reading);
        break;
      case 'call-ended':
        finish(t('call.endedBy', { name: msg.by }));
        break;
      case 'error':
        if (msg.code === 'chat_not_saved') {
          // Nobody was shown the line: it goes back into the box, to be sent again.
          error.textContent = t('call.chatNotSaved');
          error.dataset.chat = 'not-saved';
          if (!chatInput.value) chatInput.value = lastChat;
        } else if (msg.code === 'admission_not_saved') {
          // The patient still waits in the lobby: the doctor can admit again.
          error.textContent = t('call.admissionNotSaved');
          error.dataset.admission = 'not-saved';
        } else {
          error.textContent = msg.message;
        }
        break;
    }
  });
  signaling.addEventListener('disconnected', () => { if (!finished) { banner.textContent = t('call.reconnecting'); banner.hidden = false; } });
  signaling.addEventListener('ended', (e) => {
    if (/** @type {CustomEvent} */ (e).detail === 4020) finish(t('call.over'));
    else if (!finished) { banner.textContent = t('call.ended'); banner.hidden = false; }
  });

  const toggle = (/** @type {'mic' | 'camera'} */ kind) => {
    const tracks = kind === 'mic' ? local.getAudioTracks() : local.getVideoTracks();
    media[kind] = !media[kind];
    for (const track of tracks) track.enabled = media[kind];
    signaling.send({ type: 'media', ...media });
    render();
  };
  /** Back to the camera: everyone is told, and later arrivals get the camera too. */
  const stopSharing = async () => {
    const track = screenTrack;
    if (!track) return;
    screenTrack = null;
    track.onended = null;
    track.stop();
    media.screen = false;
    for (const p of peers.values()) await p.peer.replaceVideo(camera);
    localVideo.srcObject = local;
    signaling.send({ type: 'media', ...media });
    render();
  };
  const share = async () => {
    if (screenTrack) {
      await stopSharing();
      return;
    }
    try {
      const display = await navigator.mediaDevices.getDisplayMedia({ video: true });
      screenTrack = display.getVideoTracks()[0];
      // The browser's own "stop sharing" ends the track: same as the button.
      screenTrack.onended = () => { stopSharing(); };
      for (const p of peers.values()) await p.peer.replaceVideo(screenTrack);
      media.screen = true;
      signaling.send({ type: 'media', ...media });
      render();
    } catch { /* the user chose not to share */ }
  };

  /** Audio only: no video is sent (the camera is off) until switched back. */
  let audioOnly = false;
  const setAudioOnly = async (/** @type {boolean} */ on) => {
    if (on && screenTrack) await stopSharing();
    audioOnly = on;
    for (const track of local.getVideoTracks()) track.enabled = !on;
    media.camera = !on && !!camera;
    for (const p of peers.values()) await p.peer.replaceVideo(on ? null : camera);
    signaling.send({ type: 'media', ...media });
    render();
  };
  const advice = audioOnlyAdvised() ? h('p', { class: 'notice audio-advice' }, t('call.audioAdvised')) : null;

  const doctorRole = () => myRole === 'requester' || myRole === 'expert';
  let confirmingEnd = false;
  const controls = h('div', { class: 'controls', role: 'toolbar', 'aria-label': t('call.controls') });
  const render = () => mount(controls,
    h('button', { 'aria-pressed': String(!media.mic), onclick: () => toggle('mic') }, media.mic ? t('call.mute') : t('call.unmute')),
    audioOnly ? null : h('button', { 'aria-pressed': String(!media.camera), onclick: () => toggle('camera') }, media.camera ? t('call.cameraOff') : t('call.cameraOn')),
    elder ? null : h('button', { 'aria-pressed': String(audioOnly), class: 'audio-only', onclick: () => setAudioOnly(!audioOnly) }, audioOnly ? t('call.videoBack') : t('call.audioOnly')),
    elder || audioOnly ? null : h('button', { 'aria-pressed': String(media.screen), onclick: share }, media.screen ? t('call.stopShare') : t('call.share')),
    h('button', { class: 'danger', onclick: () => { signaling.leave(); app.navigate(home); } }, t('call.leave')),
    !elder && doctorRole() ? (confirmingEnd
      ? [h('button', { class: 'danger', onclick: () => signaling.send({ type: 'end' }) }, t('call.confirmEndAll')),
        h('button', { onclick: () => { confirmingEnd = false; render(); } }, t('call.cancel'))]
      : h('button', { onclick: () => { confirmingEnd = true; render(); } }, t('call.endAll'))) : null);
  render();

  const chatForm = h('form', { class: 'chat-form', onsubmit: (/** @type {Event} */ e) => {
    e.preventDefault();
    if (chatInput.value.trim()) {
      lastChat = chatInput.value;
      signaling.send({ type: 'chat', text: chatInput.value });
    }
    chatInput.value = '';
  } }, h('label', { for: 'chat-input' }, t('call.message')), chatInput, h('button', { type: 'submit' }, t('call.send')));
  // A file shared from the chat: stored with the consultation (tus), announced in the chat.
  const chatFile = /** @type {HTMLInputElement} */ (h('input', { type: 'file', id: 'chat-file', class: 'visually-hidden-input' }));
  const chatFileStatus = h('span', { class: 'chat-file-status', role: 'status' });
  chatFile.addEventListener('change', async () => {
    const file = chatFile.files?.[0];
    chatFile.value = '';
    if (!file) return;
    try {
      await new Upload(consultationId, file, (sent, total) => {
        chatFileStatus.textContent = t('files.percent', { n: total ? Math.floor((sent * 100) / total) : 100 });
      }).start();
      chatFileStatus.textContent = '';
      signaling.send({ type: 'chat', text: t('call.fileShared', { name: file.name }) });
      loadMaterial();
    } catch (err) {
      chatFileStatus.textContent = t('files.failed', { message: /** @type {Error} */ (err).message });
    }
  });
  const chatShare = h('div', { class: 'chat-share' }, chatFile, h('label', { for: 'chat-file', class: 'button' }, t('call.shareFile')), chatFileStatus);

  // The consultation's ECGs and images, opened beside the video without leaving the call.
  const material = h('ul', { class: 'list material', 'aria-label': t('call.material') });
  const side = { ...app, navigate: (/** @type {string} */ path) => { if (path === `/consultations/${consultationId}`) closeBeside(); else app.navigate(path); } };
  /** @type {(() => void)[]} */
  let besideCleanups = [];
  const closeBeside = () => {
    for (const c of besideCleanups) c();
    besideCleanups = [];
    beside.hidden = true;
    beside.replaceChildren();
    view.classList.remove('split');
  };
  /** @param {(sideApp: import('../main.js').App) => Promise<HTMLElement>} open */
  const showBeside = async (open) => {
    closeBeside();
    const sideApp = { ...side, onLeave: (/** @type {() => void} */ c) => { besideCleanups.push(c); } };
    try {
      const el = await open(sideApp);
      mount(beside, h('div', { class: 'actions' }, h('button', { class: 'link', onclick: closeBeside }, t('call.closeBeside'))), el);
      beside.hidden = false;
      view.classList.add('split');
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  };
  const loadMaterial = async () => {
    /** @type {any[]} */
    let files = [];
    try {
      files = await getAll(`/api/v1/consultations/${consultationId}/files?limit=200`);
    } catch { return; }
    const ecgs = files.filter((f) => f.kind === 'ecg');
    const hasImages = files.some((f) => f.kind === 'dicom');
    mount(material,
      ecgs.map((f) => h('li', null, f.name, h('button', { onclick: () => showBeside(async (sideApp) => {
        const { ecgView } = await import('../ecg/viewer.js');
        return ecgView(f.id, sideApp, consultationId);
      }) }, t('call.openEcg')))),
      hasImages ? h('li', null, t('images.title'), h('button', { onclick: () => showBeside(async (sideApp) => {
        const { imagesView } = await import('../dicom/viewer.js');
        return imagesView(sideApp, consultationId);
      }) }, t('call.openImages'))) : null,
      !ecgs.length && !hasImages ? h('li', { class: 'muted' }, t('call.noMaterial')) : null);
  };
  if (!elder) loadMaterial();

  // Readings taken during the call, beside the video; the patient's side enters them.
  const vitals = livePanel();
  const entry = isPatient && consultation?.patient_id
    ? entryPanel({ patientId: consultation.patient_id, consultationId, source: localStorage.getItem('teleconsult.kiosk') === '1' ? 'kiosk' : 'home' })
    : null;

  const view = h('section', { class: 'call', 'aria-labelledby': 'call-title' },
    h('div', { class: 'call-head' }, h('h1', { id: 'call-title' }, t('call.title')), timer),
    banner, peerNotice, ended, lobbyWait, error, advice,
    h('div', { class: 'call-main' }, h('div', { class: 'call-video' }, tiles, controls, entry), h('div', { class: 'call-vitals' }, vitals.el), beside),
    elder ? null : h('div', { class: 'side' },
      h('h2', null, t('call.lobby')), lobbyList,
      h('h2', null, t('call.material')), material,
      h('h2', null, t('call.chat')), chatLog, chatForm, chatShare));
  app.onLeave(() => {
    clearInterval(tick);
    closeBeside();
    signaling.leave();
    for (const id of [...peers.keys()]) dropPeer(id);
    for (const track of local.getTracks()) track.stop();
    screenTrack?.stop();
  });
  try {
    await signaling.join();
  } catch (err) {
    const e = /** @type {import('../api.js').ApiError} */ (err);
    if (e.code === 'consultation_not_live') finish(t('call.over'));
    else error.textContent = e.message;
  }
  return view;
}
