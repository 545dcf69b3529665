// Starts the client: the top bar, the router (paths without a hash; the server answers
// index.html for them), live notifications, and the screen for the signed-in role.
import { h, mount } from './dom.js';
import { t, lang, setLang } from './i18n.js';
import * as session from './session.js';
import { post } from './api.js';
import { listen, toast, inboxView, noticeText } from './notifications.js';

/**
 * @typedef {{navigate: (path: string, replace?: boolean) => void, user: () => import('./session.js').User,
 *   onLeave: (cleanup: () => void) => void}} App
 */

const main = /** @type {HTMLElement} */ (document.getElementById('main'));
const topbar = /** @type {HTMLElement} */ (document.getElementById('topbar'));
/** @type {(() => void)[]} */
let cleanups = [];
/** @type {AbortController | null} */
let stream = null;

/** @type {App} */
const app = {
  navigate(path, replace = false) {
    if (replace) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
    render();
  },
  user() {
    const s = session.current();
    if (!s) throw new Error('not signed in');
    return s.user;
  },
  onLeave(cleanup) {
    cleanups.push(cleanup);
  },
};

/**
 * The screen for a path.
 * @param {string} path
 * @param {URLSearchParams} query
 * @param {import('./session.js').User} user
 * @returns {Promise<HTMLElement>}
 */
async function screen(path, query, user) {
  let m;
  if (path === '/notifications') return inboxView(app.navigate);
  if (path === '/referrals') return (await import('./views/referrals.js')).referralsView(app);
  if (path === '/follow-ups') return (await import('./views/referrals.js')).followUpsView(app);
  if (path === '/opinions') return (await import('./views/opinion.js')).opinionsReceived(app);
  if (path === '/consultations/new') return (await import('./views/wizard.js')).wizardView(app, query);
  if ((m = path.match(/^\/consultations\/([\w-]+)$/))) return (await import('./views/consultation.js')).consultationView(app, m[1]);
  if ((m = path.match(/^\/call\/([\w-]+)$/))) return (await import('./call/call.js')).callView(app, m[1]);
  if ((m = path.match(/^\/images\/([\w-]+)$/))) return (await import('./dicom/viewer.js')).imagesView(app, m[1]);
  if ((m = path.match(/^\/ecg\/([\w-]+)$/))) return (await import('./ecg/viewer.js')).ecgView(m[1], app, query.get('c') || undefined);
  if (path === '/worklist') return (await import('./views/record.js')).worklistView(app);
  if (path === '/my-record') return (await import('./views/record.js')).myRecordView(app);
  if ((m = path.match(/^\/patients\/([\w-]+)$/))) return (await import('./views/record.js')).patientRecordView(app, m[1]);
  if (path === '/netcheck') return (await import('./views/netcheck.js')).netcheckView(app);
  switch (user.role) {
    case 'community_doctor': return (await import('./views/doctor.js')).doctorHome(app);
    case 'expert': return (await import('./views/expert.js')).expertHome(app);
    case 'patient': return (await import('./views/patient.js')).patientHome(app);
    default: return (await import('./views/admin.js')).adminHome(app);
  }
}

function renderTopbar() {
  const s = session.current();
  mount(topbar,
    h('a', { href: '/', class: 'brand', onclick: (/** @type {Event} */ e) => { e.preventDefault(); app.navigate('/'); } }, t('app.name')),
    h('nav', { 'aria-label': t('app.nav') },
      s ? [
        h('span', { class: 'who' }, `${s.user.display_name} · ${t(`role.${s.user.role}`)}`),
        h('button', { class: 'link', onclick: () => app.navigate('/notifications') }, t('app.notifications')),
        h('button', { class: 'link', onclick: () => app.navigate('/netcheck') }, t('netcheck.open')),
      ] : null,
      h('button', { class: 'link', lang: lang() === 'en' ? 'zh-CN' : 'en', onclick: () => { setLang(lang() === 'en' ? 'zh-CN' : 'en'); render(); } }, t('app.lang')),
      s ? h('button', { class: 'link', onclick: signOut }, t('app.signOut')) : null));
}

/** Seconds without input after which a kiosk resets itself (`?idle=N` when setting it up). */
const KIOSK_IDLE = 'teleconsult.kioskIdle';
/** @type {ReturnType<typeof setTimeout> | undefined} */
let idleTimer;
const isKiosk = () => localStorage.getItem('teleconsult.kiosk') === '1';
/** A kiosk enrolled with a kiosk device token offers check-in when nobody is signed in. */
const DEVICE_KEY = 'teleconsult.kioskDevice';
const checksIn = () => isKiosk() && !!localStorage.getItem(DEVICE_KEY);

/** (Re)starts the kiosk's inactivity timer; none during a call or when nobody is signed in. */
function armIdle() {
  clearTimeout(idleTimer);
  if (!isKiosk() || !session.current() || location.pathname.startsWith('/call/')) return;
  const secs = Number(localStorage.getItem(KIOSK_IDLE)) || 120;
  idleTimer = setTimeout(resetKiosk, secs * 1000);
}

/** A kiosk forgets the last patient: signs out and clears what it kept, except its own setup. */
async function resetKiosk() {
  await signOut();
  sessionStorage.clear();
  for (const key of Object.keys(localStorage)) {
    if (!['teleconsult.kiosk', KIOSK_IDLE, 'teleconsult.lang', DEVICE_KEY].includes(key)) localStorage.removeItem(key);
  }
  document.body.dataset.reset = String(Date.now());
}
for (const ev of ['pointerdown', 'keydown', 'touchstart']) window.addEventListener(ev, armIdle, { passive: true });

async function signOut() {
  const s = session.current();
  if (s && !s.kiosk) await post('/api/v1/auth/logout', { refresh_token: s.refresh_token }).catch(() => {});
  session.clear();
  stream?.abort();
  stream = null;
  app.navigate(checksIn() ? '/checkin' : '/login');
}

/** Renders started so far: a render that an earlier one's slow screen outlives wins. */
let renders = 0;

async function render() {
  const mine = ++renders;
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
  document.documentElement.lang = lang();
  document.title = t('app.name');
  const url = new URL(location.href);
  if (url.searchParams.get('kiosk') === '1') localStorage.setItem('teleconsult.kiosk', '1');
  if (url.searchParams.get('kiosk') === '0') localStorage.removeItem('teleconsult.kiosk');
  if (url.searchParams.get('idle')) localStorage.setItem(KIOSK_IDLE, String(Number(url.searchParams.get('idle')) || 120));
  const s = session.current();
  document.body.classList.toggle('elder', s?.user.role === 'patient' || localStorage.getItem('teleconsult.kiosk') === '1');
  renderTopbar();
  main.setAttribute('aria-busy', 'true');
  try {
    if (s?.kiosk && !url.pathname.startsWith('/call/')) {
      // A check-in's access opens one call; anything else and the kiosk is ready for the next person.
      await resetKiosk();
      return;
    }
    if (!s && url.pathname === '/kiosk/setup') {
      mount(main, (await import('./views/kiosk.js')).kioskSetupView(app));
    } else if (!s && checksIn() && url.pathname !== '/login') {
      if (url.pathname !== '/checkin') history.replaceState(null, '', '/checkin');
      mount(main, await (await import('./views/kiosk.js')).checkinView(app));
    } else if (!s) {
      if (url.pathname !== '/login') history.replaceState(null, '', '/login');
      mount(main, (await import('./views/login.js')).loginView(app),
        isKiosk() ? kioskLink(checksIn() ? '/checkin' : '/kiosk/setup', checksIn() ? 'kiosk.backToCheckin' : 'kiosk.setupLink') : null);
    } else {
      if (url.pathname === '/login') history.replaceState(null, '', '/');
      startStream();
      const view = await screen(location.pathname, url.searchParams, s.user);
      // A screen that came back after another render began (the session ended meanwhile, or
      // the person went elsewhere) is not shown over it.
      if (mine !== renders) return;
      mount(main, view);
    }
  } catch (err) {
    if (mine !== renders) return;
    mount(main, h('p', { class: 'error', role: 'alert' }, t('app.error', { message: /** @type {Error} */ (err).message })));
  }
  main.removeAttribute('aria-busy');
  main.dataset.ready = location.pathname;
  armIdle();
}

/**
 * A link under the kiosk's sign-in form (to check-in, or to enrol the kiosk for it).
 * @param {string} path
 * @param {string} label
 */
function kioskLink(path, label) {
  return h('p', { class: 'kiosk-setup-link' },
    h('a', { href: path, onclick: (/** @type {Event} */ e) => { e.preventDefault(); app.navigate(path); } }, t(label)));
}

function startStream() {
  if (stream || session.current()?.kiosk) return;
  stream = new AbortController();
  listen((n) => {
    const text = noticeText(n);
    toast(text.title, text.body);
    // The patient's home (and the kiosk) shows a signed opinion as soon as it is signed.
    if (session.current()?.user.role === 'patient' && location.pathname === '/') app.navigate('/', true);
  }, stream.signal);
}

window.addEventListener('popstate', render);
// Every request that meets the ended session says so: the sign-in screen is shown once, so what
// a person has started typing there is not wiped by the next one.
window.addEventListener('session-expired', () => {
  stream?.abort();
  stream = null;
  if (location.pathname !== '/login') app.navigate('/login');
});
render();
