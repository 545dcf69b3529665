-- A seat taken with access a device handed out (a kiosk's check-in) names the device: the
-- seat ends with it (revoked, or its organisation deactivated), at the connection's next
-- heartbeat and at any resume. NULL for a seat taken with a signed-in user's own access.
ALTER TABLE signaling_seats ADD COLUMN device_id TEXT;
