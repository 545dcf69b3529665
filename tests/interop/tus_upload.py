"""A resumable upload by tuspy, the tus project's Python client, as a clinic's uploader runs it.

Driven by tests/files.rs. Two runs of this script share a URL store (tuspy's FileStorage), as
two runs of an uploading program do:

  tus_upload.py start  CREATE_URL TOKEN FILE STORE NAME STOP_AT
      creates the upload (Upload-Metadata `filename`), sends chunks of 1 MiB with tuspy's
      default sha1 Upload-Checksum until STOP_AT bytes are sent, and exits (the laptop closed);
  tus_upload.py resume CREATE_URL TOKEN FILE STORE NAME
      a fresh client finds the upload's URL in the store by the file's fingerprint, asks the
      server for the offset (HEAD) and sends the rest.

Prints a JSON summary on stdout, as tests/interop/tus_js_upload.mjs does: the upload URL
(`found_url`: the one found in the store), the offset the server reported on resuming, the
bytes acknowledged, the Teleconsult-File-Id of the last answer, and the checksum algorithm sent.
Exits non-zero on any error.
"""

import json
import sys

from tusclient import client
from tusclient.storage import filestorage

CHUNK = 1024 * 1024


def main():
    mode, create_url, token, path, store_path, name = sys.argv[1:7]
    store = filestorage.FileStorage(store_path)
    tus = client.TusClient(create_url, headers={"Authorization": f"Bearer {token}"})
    uploader = tus.uploader(
        path,
        chunk_size=CHUNK,
        metadata={"filename": name},
        store_url=True,
        url_storage=store,
        upload_checksum=True,
    )
    # On a resumed run the uploader found its URL in the store and asked the server's offset.
    out = {"mode": mode, "resumed_from": uploader.offset if uploader.url else None, "found_url": uploader.url}
    if mode == "start":
        uploader.upload(stop_at=int(sys.argv[7]))
    elif mode == "resume":
        uploader.upload()
    else:
        raise SystemExit(f"unknown mode {mode}")
    out["url"] = uploader.url
    out["acknowledged"] = uploader.offset
    out["file_id"] = uploader.request.response_headers.get("teleconsult-file-id")
    out["checksum_sent"] = uploader.request._request_headers.get("upload-checksum", "").split(" ")[0]
    store.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
