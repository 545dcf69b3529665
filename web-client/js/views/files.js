// A consultation's files: the list (type, size, who uploaded it and when; ECGs open in the ECG
// viewer, DICOM in the image viewer) and the uploader: drag and drop or pick several files or
// a whole DICOM folder; each goes up resumably with tus (docs/files.md) in chunks, with a
// progress bar, retrying by itself after a dropped link and offering "retry" when it gives up.
import { h, mount, when } from '../dom.js';
import { t } from '../i18n.js';
import { authHeader, get, getAll } from '../api.js';

/** Bytes per PATCH: small enough for a progress bar that moves on a slow link. */
export const CHUNK_BYTES = 256 * 1024;
/** Automatic attempts per chunk before the uploader asks the user to retry. */
const ATTEMPTS = 4;

/**
 * A size in words: 512 B, 12.3 KB, 4.5 MB, 1.2 GB.
 * @param {number} n bytes
 * @returns {string}
 */
export function size(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(1)} ${units[i]}`;
}

/**
 * tus `Upload-Metadata` for a file name (base64 of its UTF-8 bytes).
 * @param {string} name
 * @returns {string}
 */
export function uploadMetadata(name) {
  let bin = '';
  for (const b of new TextEncoder().encode(name)) bin += String.fromCharCode(b);
  return `filename ${btoa(bin)}`;
}

/**
 * fetch with the bearer token; one token refresh (through the JSON client) on 401.
 * @param {string} url
 * @param {RequestInit & {headers?: Record<string, string>}} init
 * @returns {Promise<Response>}
 */
async function authed(url, init) {
  const go = () => fetch(url, { ...init, headers: { 'Tus-Resumable': '1.0.0', ...(init.headers || {}), ...authHeader() } });
  const res = await go();
  if (res.status !== 401) return res;
  await get('/api/v1/me').catch(() => {});
  return go();
}

/**
 * @param {Response} res
 * @returns {Promise<string>}
 */
async function problem(res) {
  try {
    const p = await res.json();
    return p.detail || p.title || `HTTP ${res.status}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

/** A failure worth retrying (the link, or the server briefly). */
class Transient extends Error {}

/**
 * One resumable upload. `start()` creates it (once) and sends the bytes from the server's
 * offset; after a dropped link it asks the server where it stands (HEAD) and goes on.
 */
export class Upload {
  /**
   * @param {string} consultationId
   * @param {File} file
   * @param {(sent: number, total: number) => void} onProgress
   */
  constructor(consultationId, file, onProgress) {
    this.consultationId = consultationId;
    this.file = file;
    this.onProgress = onProgress;
    /** @type {string | null} */
    this.url = null;
    this.offset = 0;
    /** @type {string | null} */
    this.fileId = null;
  }

  /** Where this browser keeps the upload's URL, so choosing the same file again resumes it. */
  get key() {
    const f = this.file;
    return `teleconsult.tus:${this.consultationId}:${f.name}:${f.size}:${f.lastModified}`;
  }

  /** An upload of the same file left unfinished here (a reload, a closed tab), if the server still has it. */
  async resumeStored() {
    const url = localStorage.getItem(this.key);
    if (!url) return false;
    this.url = url;
    try {
      await this.head();
      return true;
    } catch (err) {
      if (err instanceof Transient || err instanceof TypeError) throw err;
      // Expired or unknown: start afresh.
      localStorage.removeItem(this.key);
      this.url = null;
      this.offset = 0;
      return false;
    }
  }

  async create() {
    if (await this.resumeStored()) return;
    const res = await authed(`/api/v1/consultations/${this.consultationId}/uploads`, {
      method: 'POST',
      headers: { 'Upload-Length': String(this.file.size), 'Upload-Metadata': uploadMetadata(this.file.name) },
    });
    if (res.status >= 500) throw new Transient(await problem(res));
    if (res.status !== 201) throw new Error(await problem(res));
    this.url = res.headers.get('Location');
    if (!this.url) throw new Error('no upload location');
    localStorage.setItem(this.key, this.url);
  }

  /** Where the server stands (after a dropped link). */
  async head() {
    const res = await authed(/** @type {string} */ (this.url), { method: 'HEAD' });
    if (res.status >= 500) throw new Transient(`HTTP ${res.status}`);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    this.offset = Number(res.headers.get('Upload-Offset') || 0);
    this.fileId = res.headers.get('Teleconsult-File-Id') || this.fileId;
  }

  async chunk() {
    const end = Math.min(this.offset + CHUNK_BYTES, this.file.size);
    const res = await authed(/** @type {string} */ (this.url), {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(this.offset) },
      body: this.file.slice(this.offset, end),
    });
    if (res.status === 409) { await this.head(); return; } // offset moved: ask and go on
    if (res.status >= 500) throw new Transient(await problem(res));
    if (res.status !== 204) throw new Error(await problem(res));
    this.offset = Number(res.headers.get('Upload-Offset') || end);
    this.fileId = res.headers.get('Teleconsult-File-Id') || this.fileId;
  }

  /**
   * Sends what is left; retries a dropped chunk a few times (1, 2, 4 s apart).
   * @returns {Promise<string>} the stored file's id
   */
  async start() {
    let failures = 0;
    let resync = false;
    for (;;) {
      try {
        if (!this.url) await this.create();
        if (resync) { await this.head(); resync = false; }
        this.onProgress(this.offset, this.file.size);
        if (this.offset >= this.file.size && !this.fileId) await this.head();
        if (this.offset >= this.file.size && this.fileId) {
          localStorage.removeItem(this.key);
          return this.fileId;
        }
        await this.chunk();
        failures = 0;
      } catch (err) {
        // A network error (fetch throws TypeError) or a 5xx: wait, ask where we are, go on.
        if (!(err instanceof Transient) && !(err instanceof TypeError)) {
          localStorage.removeItem(this.key);
          throw err;
        }
        failures += 1;
        if (failures >= ATTEMPTS) throw err;
        resync = !!this.url;
        await new Promise((r) => setTimeout(r, 1000 * 2 ** (failures - 1)));
      }
    }
  }
}

/**
 * Every file under a dropped item (a folder is walked, as a DICOM series often comes).
 * @param {any} entry a FileSystemEntry
 * @returns {Promise<File[]>}
 */
async function filesOfEntry(entry) {
  if (!entry) return [];
  if (entry.isFile) return [await new Promise((resolve, reject) => entry.file(resolve, reject))];
  if (!entry.isDirectory) return [];
  const reader = entry.createReader();
  /** @type {any[]} */
  const entries = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    entries.push(...batch);
  }
  return (await Promise.all(entries.map(filesOfEntry))).flat();
}

/**
 * The files of a dropped DataTransfer, folders included.
 * @param {DataTransfer} dt
 * @returns {Promise<File[]>}
 */
export async function droppedFiles(dt) {
  const entries = [...dt.items].map((i) => (typeof i.webkitGetAsEntry === 'function' ? i.webkitGetAsEntry() : null));
  if (entries.some(Boolean)) return (await Promise.all(entries.map(filesOfEntry))).flat();
  return [...dt.files];
}

/**
 * Files chosen in the request wizard before the consultation existed, by consultation id:
 * its uploader sends them as soon as it is on screen.
 * @type {Map<string, File[]>}
 */
export const pendingUploads = new Map();

/**
 * A drop zone with "choose files" and "choose a folder" buttons.
 * @param {string} idPrefix ids of its inputs
 * @param {(files: File[]) => void} onFiles
 * @returns {HTMLElement}
 */
export function dropZone(idPrefix, onFiles) {
  const pick = /** @type {HTMLInputElement} */ (h('input', { type: 'file', multiple: true, id: `${idPrefix}-files`, class: 'visually-hidden-input' }));
  const folder = /** @type {HTMLInputElement} */ (h('input', { type: 'file', multiple: true, webkitdirectory: true, id: `${idPrefix}-folder`, class: 'visually-hidden-input' }));
  pick.addEventListener('change', () => { onFiles([...(pick.files || [])]); pick.value = ''; });
  folder.addEventListener('change', () => { onFiles([...(folder.files || [])]); folder.value = ''; });
  const zone = h('div', { class: 'drop-zone', 'aria-describedby': `${idPrefix}-hint` },
    h('p', { id: `${idPrefix}-hint` }, t('files.dropHint')),
    h('div', { class: 'actions' },
      pick, h('label', { for: `${idPrefix}-files`, class: 'button' }, t('files.chooseFiles')),
      folder, h('label', { for: `${idPrefix}-folder`, class: 'button' }, t('files.chooseFolder'))));
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', async (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    if (e.dataTransfer) onFiles(await droppedFiles(e.dataTransfer));
  });
  return zone;
}

/**
 * The uploader: a drop zone, "choose files" and "choose a folder", one row per file with a
 * progress bar and its outcome. `onStored` runs after each stored file.
 * @param {string} consultationId
 * @param {() => void} onStored
 * @returns {HTMLElement}
 */
export function uploader(consultationId, onStored) {
  const rows = h('ul', { class: 'list uploads', 'aria-label': t('files.uploads') });
  /** @param {File} file */
  const send = (file) => {
    const bar = /** @type {HTMLProgressElement} */ (h('progress', { max: String(file.size || 1), value: '0', 'aria-label': t('files.progressOf', { name: file.name }) }));
    const status = h('span', { class: 'upload-status', role: 'status' }, t('files.waiting'));
    const retry = h('span', null);
    const row = h('li', { class: 'upload', 'data-name': file.name }, h('span', { class: 'upload-name' }, file.name), bar, status, retry);
    rows.append(row);
    const upload = new Upload(consultationId, file, (sent, total) => {
      bar.value = sent;
      status.textContent = t('files.percent', { n: total ? Math.floor((sent * 100) / total) : 100 });
    });
    const run = async () => {
      retry.replaceChildren();
      row.dataset.state = 'sending';
      try {
        await upload.start();
        bar.value = file.size;
        row.dataset.state = 'done';
        status.textContent = t('files.done');
        onStored();
      } catch (err) {
        row.dataset.state = 'failed';
        status.textContent = t('files.failed', { message: /** @type {Error} */ (err).message });
        // Only a broken link is worth retrying; a refused file stays refused.
        if (err instanceof Transient || err instanceof TypeError) {
          mount(retry, h('button', { class: 'retry', onclick: run }, t('files.retry')));
        }
      }
    };
    return run;
  };
  /** @param {File[]} files */
  const sendAll = async (files) => {
    const runs = files.filter((f) => f.size > 0 || f.name).map(send);
    // Two at a time: a series of many slices goes up without flooding a weak link.
    let next = 0;
    const worker = async () => { while (next < runs.length) await runs[next++](); };
    await Promise.all([worker(), worker()]);
  };
  const pending = pendingUploads.get(consultationId);
  pendingUploads.delete(consultationId);
  if (pending?.length) queueMicrotask(() => { sendAll(pending); });
  return h('div', { class: 'uploader' }, dropZone('upload', (files) => { sendAll(files); }), rows);
}

/**
 * The files card of a consultation: the list and, for those who may add files, the uploader.
 * @param {import('../main.js').App} app
 * @param {any} c the consultation (its participants name the uploaders)
 * @param {boolean} canUpload
 * @returns {Promise<HTMLElement | null>} null when the files are not visible to this role
 */
export async function filesSection(app, c, canUpload) {
  const names = new Map(c.participants.map((/** @type {any} */ p) => [p.user_id, p.name]));
  names.set(c.requested_by, c.requested_by_name);
  const list = h('div', { class: 'file-list' });
  const render = async () => {
    /** @type {any[]} */
    const files = await getAll(`/api/v1/consultations/${c.id}/files?limit=200`);
    mount(list,
      files.some((f) => f.kind === 'dicom')
        ? h('div', { class: 'actions' }, h('button', { class: 'primary', onclick: () => app.navigate(`/images/${c.id}`) }, t('images.open'))) : null,
      files.length ? h('table', { class: 'files' },
        h('caption', { class: 'visually-hidden' }, t('consultation.files')),
        h('thead', null, h('tr', null, [t('files.name'), t('files.type'), t('files.size'), t('files.uploader'), t('files.time'), t('common.actions')]
          .map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', null, files.map((f) => h('tr', { 'data-kind': f.kind },
          h('td', { class: 'file-name' }, f.name, f.warnings?.length ? h('span', { class: 'hint' }, ` ⚠ ${f.warnings.join('；')}`) : null),
          h('td', { class: 'file-type' }, t(`files.kind.${f.kind}`)),
          h('td', { class: 'file-size' }, size(f.size)),
          h('td', { class: 'file-uploader' }, names.get(f.uploaded_by) || '—'),
          h('td', { class: 'file-time' }, when(f.created_at)),
          h('td', null,
            f.kind === 'ecg' ? h('button', { onclick: () => app.navigate(`/ecg/${f.id}?c=${c.id}`) }, t('ecg.open')) : null,
            f.kind === 'dicom' ? h('button', { onclick: () => app.navigate(`/images/${c.id}`) }, t('images.open')) : null)))))
        : h('p', { class: 'muted' }, t('files.none')));
  };
  try {
    await render();
  } catch {
    return null;
  }
  return h('section', { class: 'card', 'aria-labelledby': 'files' },
    h('h2', { id: 'files' }, t('consultation.files')),
    canUpload ? uploader(c.id, () => { render().catch(() => {}); }) : null,
    list);
}
