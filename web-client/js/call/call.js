// The call screen: video tiles, microphone / camera / screen-share controls, chat, the lobby
// (waiting for patients, admit and remove for doctors), a banner while reconnecting and a
// connection-quality label on every remote tile.
import { h, mount } from '../dom.js';
import { t } from '../i18n.js';
import { Signaling } from './signaling.js';
import { Peer } from './peer.js';
import { watchQuality } from './quality.js';

/**
 * @param {import('../main.js').App} app
 * @param {string} consultationId
 * @returns {Promise<HTMLElement>}
 */
export async function callView(app, consultationId) {
  const elder = document.body.classList.contains('elder');
  const banner = h('div', { class: 'banner', role: 'status', hidden: true });
  const lobbyWait = h('div', { class: 'lobby-wait', hidden: true }, h('p', { class: 'big' }, t('call.waiting')));
  const tiles = h('div', { class: 'tiles' });
  const lobbyList = h('ul', { class: 'list lobby', 'aria-label': t('call.lobby') });
  const chatLog = h('ol', { class: 'chat-log', 'aria-live': 'polite', 'aria-label': t('call.chat') });
  const chatInput = /** @type {HTMLInputElement} */ (h('input', { id: 'chat-input', name: 'chat', autocomplete: 'off' }));
  const error = h('p', { class: 'error', role: 'alert' });

  /** @type {MediaStream} */
  let local;
  try {
    local = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  } catch {
    local = new MediaStream();
    error.textContent = t('call.noDevices');
  }
  const camera = local.getVideoTracks()[0] || null;
  const localVideo = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, muted: true, playsinline: true, class: 'local', 'aria-label': t('call.you') }));
  localVideo.srcObject = local;
  tiles.append(h('figure', { class: 'tile' }, localVideo, h('figcaption', null, t('call.you'))));

  const signaling = new Signaling(consultationId);
  /** @type {Map<string, {peer: Peer, tile: HTMLElement, caption: HTMLElement, name: string, stopQuality: () => void}>} */
  const peers = new Map();
  /** @type {Map<string, any>} */
  const lobby = new Map();
  const media = { mic: local.getAudioTracks().length > 0, camera: !!camera, screen: false };
  /** @type {MediaStreamTrack | null} */
  let screenTrack = null;
  /** This participant's role in the room (requester, expert, patient). */
  let myRole = '';

  /** @param {{id: string, name: string, role?: string, polite: boolean, media?: {mic: boolean, camera: boolean, screen: boolean}}} info */
  const addPeer = (info) => {
    if (peers.has(info.id)) return;
    const video = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, playsinline: true, class: 'remote', 'data-peer': info.id, 'aria-label': info.name }));
    const caption = h('figcaption', null, info.name);
    // Announced politely when the level changes (not on every sample), with whose connection it is.
    const level = h('span', { class: 'quality-level' }, t('call.quality', { level: t('call.quality.unknown') }));
    const quality = h('p', { class: 'quality', 'data-quality': 'unknown', 'aria-live': 'polite', 'aria-atomic': 'true' },
      h('span', { class: 'visually-hidden' }, t('call.qualityOf', { name: info.name })), level);
    const doctor = myRole === 'requester' || myRole === 'expert';
    const tile = h('figure', { class: 'tile' }, video, caption, quality,
      doctor && info.role === 'patient'
        ? h('button', { class: 'tile-action', onclick: () => signaling.send({ type: 'remove', peer: info.id }) }, t('call.removeNamed', { name: info.name }))
        : null);
    tiles.append(tile);
    const peer = new Peer({
      id: info.id, polite: info.polite, iceServers: signaling.iceServers, stream: local,
      send: (m) => signaling.send(m),
      onTrack: (stream) => { if (video.srcObject !== stream) video.srcObject = stream; },
      onState: (state) => { tile.dataset.state = state; },
    });
    const stopQuality = watchQuality(peer.pc, (q) => {
      const now = q.quality || 'unknown';
      const fmt = (/** @type {number | null} */ v) => (v === null ? '–' : String(Math.round(v)));
      quality.title = t('call.qualityDetail', { rtt: fmt(q.rttMs), loss: q.lossPct === null ? '–' : q.lossPct.toFixed(1), jitter: fmt(q.jitterMs) });
      if (quality.dataset.quality === now) return;
      quality.dataset.quality = now;
      level.textContent = t('call.quality', { level: t(`call.quality.${now}`) });
    });
    peers.set(info.id, { peer, tile, caption, name: info.name, stopQuality });
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
  };
  const renderLobby = () => mount(lobbyList, [...lobby.values()].map((p) => h('li', null, p.name,
    h('button', { class: 'primary', onclick: () => signaling.send({ type: 'admit', peer: p.id }) }, t('call.admit')),
    h('button', { onclick: () => signaling.send({ type: 'remove', peer: p.id }) }, t('call.remove')))));
  /** @param {string} name @param {string} text */
  const addChat = (name, text) => {
    chatLog.append(h('li', null, h('strong', null, `${name}: `), text));
    chatLog.scrollTop = chatLog.scrollHeight;
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
        break;
      case 'peer-joined':
        addPeer(msg.peer);
        break;
      case 'peer-left':
        dropPeer(msg.peer);
        break;
      case 'ice-servers':
        // Fresh TURN credentials before the current ones expire: an ICE restart after a
        // network change (without a signaling resume) takes them.
        for (const p of peers.values()) p.peer.useIceServers(signaling.iceServers);
        break;
      case 'peer-reconnected':
        if (msg.restart_ice) peers.get(msg.peer)?.peer.restartIce();
        break;
      case 'signal':
        peers.get(msg.from)?.peer.onSignal(msg).catch((err) => { error.textContent = String(err); });
        break;
      case 'chat':
        addChat(msg.name, msg.text);
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
        } else {
          lobby.delete(msg.participant.id);
        }
        renderLobby();
        break;
      case 'error':
        error.textContent = msg.message;
        break;
    }
  });
  signaling.addEventListener('disconnected', () => { banner.textContent = t('call.reconnecting'); banner.hidden = false; });
  signaling.addEventListener('ended', () => { banner.textContent = t('call.ended'); banner.hidden = false; });

  const toggle = (/** @type {'mic' | 'camera'} */ kind) => {
    const tracks = kind === 'mic' ? local.getAudioTracks() : local.getVideoTracks();
    media[kind] = !media[kind];
    for (const track of tracks) track.enabled = media[kind];
    signaling.send({ type: 'media', ...media });
    render();
  };
  const share = async () => {
    if (screenTrack) {
      screenTrack.stop();
      return;
    }
    try {
      const display = await navigator.mediaDevices.getDisplayMedia({ video: true });
      screenTrack = display.getVideoTracks()[0];
      for (const p of peers.values()) await p.peer.replaceVideo(screenTrack);
      media.screen = true;
      screenTrack.onended = async () => {
        screenTrack = null;
        media.screen = false;
        for (const p of peers.values()) await p.peer.replaceVideo(camera);
        signaling.send({ type: 'media', ...media });
        render();
      };
      signaling.send({ type: 'media', ...media });
      render();
    } catch { /* the user chose not to share */ }
  };

  const controls = h('div', { class: 'controls', role: 'toolbar', 'aria-label': t('call.controls') });
  const render = () => mount(controls,
    h('button', { 'aria-pressed': String(!media.mic), onclick: () => toggle('mic') }, media.mic ? t('call.mute') : t('call.unmute')),
    h('button', { 'aria-pressed': String(!media.camera), onclick: () => toggle('camera') }, media.camera ? t('call.cameraOff') : t('call.cameraOn')),
    elder ? null : h('button', { 'aria-pressed': String(media.screen), onclick: share }, media.screen ? t('call.stopShare') : t('call.share')),
    h('button', { class: 'danger', onclick: () => { signaling.leave(); app.navigate(`/consultations/${consultationId}`); } }, t('call.leave')));
  render();

  const chatForm = h('form', { class: 'chat-form', onsubmit: (/** @type {Event} */ e) => {
    e.preventDefault();
    if (chatInput.value.trim()) signaling.send({ type: 'chat', text: chatInput.value });
    chatInput.value = '';
  } }, h('label', { for: 'chat-input' }, t('call.message')), chatInput, h('button', { type: 'submit' }, t('call.send')));

  const view = h('section', { class: 'call', 'aria-labelledby': 'call-title' },
    h('h1', { id: 'call-title' }, t('call.title')), banner, lobbyWait, error, tiles, controls,
    elder ? null : h('div', { class: 'side' },
      h('h2', null, t('call.lobby')), lobbyList,
      h('h2', null, t('call.chat')), chatLog, chatForm));
  app.onLeave(() => {
    signaling.leave();
    for (const id of [...peers.keys()]) dropPeer(id);
    for (const track of local.getTracks()) track.stop();
  });
  try {
    await signaling.join();
  } catch (err) {
    error.textContent = /** @type {Error} */ (err).message;
  }
  return view;
}
