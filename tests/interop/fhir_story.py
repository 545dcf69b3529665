"""A FHIR client reading one patient's whole story from the server's FHIR R4 facade.

Driven by tests/fhir.rs. Uses requests as a FHIR client does (bearer token, Accept
application/fhir+json), follows every search page through its `next` link, reads every
resource found by id as well, and validates every resource it receives with the
fhir.resources models (R4B package, pydantic: unknown elements, missing required elements
and wrong types are errors). Prints a JSON summary on stdout; exits non-zero on the first
invalid resource or unexpected answer.

usage: fhir_story.py BASE_URL TOKEN PATIENT_ID EXPERT_ID [RECEIVED_JSON]

With RECEIVED_JSON, every resource received (Bundles, entries and reads alike) is also written
there as one JSON array, for a second validator (tests/interop/fhir_schema.mjs).
"""

import json
import sys

import requests
from pydantic import ValidationError
from fhir.resources.R4B import get_fhir_model_class

STORY_TYPES = [
    "ServiceRequest", "Task", "Consent", "Appointment", "Encounter", "Communication",
    "DocumentReference", "ImagingStudy", "Observation", "DiagnosticReport", "CarePlan",
]


class Client:
    def __init__(self, base, token):
        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"})
        self.validated = 0
        self.received = []

    def validate(self, resource):
        kind = resource.get("resourceType")
        model = get_fhir_model_class(kind)
        try:
            model.model_validate(resource)
        except ValidationError as e:
            raise SystemExit(f"invalid {kind}: {e}\n{json.dumps(resource, ensure_ascii=False)[:3000]}")
        self.validated += 1
        self.received.append(resource)
        return resource

    def get(self, url, params=None, expect=200):
        r = self.session.get(url if url.startswith("http") else f"{self.base}/{url}", params=params, timeout=30)
        if r.status_code != expect:
            raise SystemExit(f"GET {r.url}: {r.status_code} (expected {expect}): {r.text[:500]}")
        if not r.headers.get("content-type", "").startswith("application/fhir+json"):
            raise SystemExit(f"GET {r.url}: content-type {r.headers.get('content-type')}")
        return self.validate(r.json())

    def search(self, kind, params):
        """Every match and include over all pages."""
        matches, included, pages = [], [], 0
        bundle = self.get(kind, params)
        total = bundle.get("total")
        while True:
            pages += 1
            for e in bundle.get("entry", []):
                res = self.validate(e["resource"])
                assert e["fullUrl"].endswith(f"/{res['resourceType']}/{res['id']}"), e["fullUrl"]
                (matches if e["search"]["mode"] == "match" else included).append(res)
            nxt = [l["url"] for l in bundle.get("link", []) if l["relation"] == "next"]
            if not nxt or pages > 50:
                break
            bundle = self.get(nxt[0])
        if total is not None and total != len(matches):
            raise SystemExit(f"{kind} search: total {total} but {len(matches)} matches over {pages} pages")
        return matches, included, pages


def main():
    base, token, patient, expert = sys.argv[1:5]
    c = Client(base, token)
    out = {"story": {}, "pages": {}, "includes": {}}

    cap = c.get("metadata")
    out["capability_types"] = [r["type"] for r in cap["rest"][0]["resource"]]

    out["patient"] = c.get(f"Patient/{patient}")
    found, _, _ = c.search("Patient", {"_id": patient})
    out["patient_search_ids"] = [p["id"] for p in found]

    for kind in STORY_TYPES:
        # Small pages, so paging is exercised on every type with more than two resources.
        matches, included, pages = c.search(kind, {"patient": f"Patient/{patient}", "_count": "2", "_include": f"{kind}:patient"})
        for m in matches:
            again = c.get(f"{kind}/{m['id']}")
            if again != m:
                raise SystemExit(f"{kind}/{m['id']} read differs from the search result")
        out["story"][kind] = matches
        out["pages"][kind] = pages
        out["includes"][kind] = sorted({f"{r['resourceType']}/{r['id']}" for r in included})

    hr, _, _ = c.search("Observation", {"patient": patient, "code": "http://loinc.org|8867-4"})
    out["heart_rate_ids"] = [o["id"] for o in hr]

    appts, inc, _ = c.search("Appointment", {"practitioner": f"Practitioner/{expert}", "date": "ge2000-01-01",
                                             "_include": "Appointment:practitioner"})
    out["expert_appointments"] = [a["id"] for a in appts]
    out["expert_included"] = sorted({f"{r['resourceType']}/{r['id']}" for r in inc})

    # The people and places the story points at.
    refs = set()
    for kind in ("ServiceRequest", "Appointment", "DiagnosticReport"):
        for r in out["story"][kind]:
            for key in ("requester", "performer", "participant", "resultsInterpreter"):
                v = r.get(key)
                items = v if isinstance(v, list) else [v] if v else []
                for i in items:
                    ref = (i.get("actor") or i).get("reference", "")
                    if ref.startswith(("Practitioner/", "Organization/")):
                        refs.add(ref)
    refs.add(out["patient"]["managingOrganization"]["reference"])
    out["referenced"] = {ref: c.get(ref) for ref in sorted(refs)}
    out["practitioner_role"] = c.get(f"PractitionerRole/{expert}")

    slots, sched, _ = c.search("Slot", {"schedule": f"Schedule/{expert}", "_include": "Slot:schedule", "_count": "200"})
    out["slot_statuses"] = sorted({s["status"] for s in slots})
    out["slot_count"] = len(slots)
    out["schedule_included"] = [s["id"] for s in sched]
    if slots:
        c.get(f"Slot/{slots[0]['id']}")

    out["validated"] = c.validated
    if len(sys.argv) > 5:
        with open(sys.argv[5], "w", encoding="utf-8") as f:
            json.dump(c.received, f, ensure_ascii=False)
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
