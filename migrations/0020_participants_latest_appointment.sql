-- A user's appointments from a day on (the home screens' list) were read either by walking
-- every appointment from that day and checking each against the user's participations (a
-- record day books some 500,000: 100-120 ms for one expert's list) or by probing once per
-- past consultation of the user (2,524 probes for a busy expert). Each participation now
-- carries the start of its consultation's latest appointment, written when an appointment is
-- booked and when a participant is added, so the consultations that can hold an appointment
-- from a given day on are one range of the user's own index; the appointments assigned to an
-- expert are read by (expert, start).
ALTER TABLE consultation_participants ADD COLUMN latest_start_at TEXT;
UPDATE consultation_participants SET latest_start_at =
    (SELECT MAX(a.start_at) FROM appointments a WHERE a.consultation_id = consultation_participants.consultation_id);
CREATE INDEX consultation_participants_latest_start ON consultation_participants (user_id, latest_start_at, status);
CREATE INDEX appointments_expert_start ON appointments (expert_id, start_at);
