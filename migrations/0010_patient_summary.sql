-- A short summary the expert writes for the patient in plain words (distinct from the
-- findings), shown on the patient's home and the kiosk. Empty for opinions signed before.
ALTER TABLE opinions ADD COLUMN patient_summary TEXT NOT NULL DEFAULT '';
