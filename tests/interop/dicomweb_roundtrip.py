"""dicomweb-client's full round trip against a consultation's DICOMweb service.

Driven by tests/dicom.rs. STOW-RS of the given files (read with pydicom), then QIDO-RS of
studies, series and instances, WADO-RS metadata, every BulkDataURI of an image and of an
ECG waveform through retrieve_bulkdata, frames, the instance and a rendered image, exactly as
a client application calls dicomweb-client. Prints a JSON summary on stdout; exits non-zero
on the first failure.

usage: dicomweb_roundtrip.py DICOMWEB_BASE_URL TOKEN FILE...
"""

import io
import json
import sys

import pydicom
from dicomweb_client.api import DICOMwebClient


def main():
    base, token, *paths = sys.argv[1:]
    client = DICOMwebClient(url=base, headers={"Authorization": f"Bearer {token}"})
    originals = [pydicom.dcmread(p) for p in paths]
    out = {}

    stored = client.store_instances(datasets=originals)
    out["stored"] = len(stored.get("ReferencedSOPSequence", []))

    studies = client.search_for_studies()
    out["studies"] = sorted(s["0020000D"]["Value"][0] for s in studies)
    out["none_born_1900"] = len(client.search_for_studies(search_filters={"PatientBirthDate": "19000101"}))
    out["instances"] = {}
    for ds in originals:
        study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
        entry = {}
        entry["series_found"] = [s["0020000E"]["Value"][0] for s in client.search_for_series(study)] == [series]
        found = client.search_for_instances(study, series)
        entry["instance_found"] = [i["00080018"]["Value"][0] for i in found] == [sop]
        meta = client.retrieve_instance_metadata(study, series, sop)
        entry["metadata_bytes"] = len(json.dumps(meta))
        # Every bulk data element, at any depth, through the client's retrieve_bulkdata.
        bulk = {}

        def walk(element_map, prefix=""):
            for tag, element in element_map.items():
                if "BulkDataURI" in element:
                    parts = client.retrieve_bulkdata(element["BulkDataURI"])
                    bulk[prefix + tag] = sum(len(p) for p in parts)
                for n, item in enumerate(element.get("Value", []) if element.get("vr") == "SQ" else []):
                    walk(item, f"{prefix}{tag}.{n}.")

        walk(meta)
        entry["bulk"] = bulk
        if "WaveformSequence" in ds:
            entry["waveform_bytes"] = [len(w.WaveformData) for w in ds.WaveformSequence]
        instance = client.retrieve_instance(study, series, sop)
        entry["instance_uid_matches"] = instance.SOPInstanceUID == sop
        if "PixelData" in ds:
            frames = client.retrieve_instance_frames(study, series, sop, frame_numbers=[1])
            entry["frame_bytes"] = len(frames[0])
            entry["expected_frame_bytes"] = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * int(ds.BitsAllocated) // 8
            entry["pixels_match"] = bool((instance.pixel_array == ds.pixel_array).all())
            png = client.retrieve_instance_rendered(study, series, sop, media_types=("image/png",))
            entry["rendered_png"] = png[:8] == b"\x89PNG\r\n\x1a\n"
        out["instances"][sop] = entry

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
