-- A centre's linked hospitals are read on every candidates call and access check; the
-- unique (hospital_id, centre_id) index does not serve a lookup by centre.
CREATE INDEX consortium_links_centre ON consortium_links (centre_id);
