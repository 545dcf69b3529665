// A resumable upload by tus-js-client, the tus project's JavaScript client (the one Uppy and
// most web uploaders are built on), in Node, as an uploading program runs it.
//
// Driven by tests/files.rs. Two runs share a URL store (tus-js-client's FileUrlStorage), as two
// runs of an uploading program do:
//
//   node tus_js_upload.mjs start  ENDPOINT TOKEN FILE STORE NAME STOP_AT
//       creates the upload (Upload-Metadata `filename`), sends chunks of 1 MiB and stops (abort)
//       once STOP_AT bytes are acknowledged, the upload's URL left in the store;
//   node tus_js_upload.mjs resume ENDPOINT TOKEN FILE STORE NAME
//       a fresh client finds the upload in the store by the file's fingerprint, asks the server
//       for the offset (HEAD) and sends the rest.
//
// Prints a JSON summary on stdout, as tests/interop/tus_upload.py does: the upload URL
// (`found_url`: the one found in the store), the offset the server reported on resuming, the
// bytes acknowledged, the Teleconsult-File-Id of the last answer, the checksum algorithm sent
// (none: tus-js-client sends no Upload-Checksum) and each request's method and status. Exits
// non-zero on any error. tus-js-client is resolved from web-client/node_modules (a dev
// dependency there).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../web-client/package.json', import.meta.url));
const tus = require('tus-js-client');

const CHUNK = 1024 * 1024;
const [mode, endpoint, token, path, store, name, stopAt] = process.argv.slice(2);
const data = readFileSync(path);
const out = { mode, resumed_from: null, found_url: null, acknowledged: 0, url: null, file_id: null, checksum_sent: '', requests: [] };

const done = new Promise((resolve, reject) => {
  const upload = new tus.Upload(data, {
    endpoint,
    headers: { Authorization: `Bearer ${token}` },
    chunkSize: CHUNK,
    metadata: { filename: name },
    urlStorage: new tus.FileUrlStorage(store),
    removeFingerprintOnSuccess: true,
    retryDelays: [],
    onAfterResponse(req, res) {
      out.requests.push(`${req.getMethod()} ${res.getStatus()}`);
      if (req.getMethod() === 'HEAD') out.resumed_from = Number(res.getHeader('Upload-Offset'));
      const id = res.getHeader('Teleconsult-File-Id');
      if (id) out.file_id = id;
    },
    onChunkComplete(_chunk, acknowledged) {
      out.acknowledged = acknowledged;
      if (mode === 'start' && acknowledged >= Number(stopAt)) {
        // The program stops here (a laptop closed): the upload stays where it is on the server.
        upload.abort(false).then(() => resolve(upload), reject);
      }
    },
    onSuccess() {
      resolve(upload);
    },
    onError: reject,
  });
  if (mode === 'resume') {
    upload.findPreviousUploads().then((previous) => {
      if (previous.length === 0) {
        reject(new Error('no previous upload in the store'));
        return;
      }
      out.found_url = previous[0].uploadUrl;
      upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    }, reject);
  } else if (mode === 'start') {
    upload.start();
  } else {
    reject(new Error(`unknown mode ${mode}`));
  }
});

try {
  const upload = await done;
  out.url = upload.url;
  console.log(JSON.stringify(out));
} catch (e) {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
}
