-- A user's consultation lists (newest first, a page at a time) walked the whole participants
-- table backwards by its primary key (consultation, user) until a page of the user's rows was
-- found: the more consultations everyone had, the longer. By (user, consultation) the page is
-- the newest end of the user's own range (a doctor with 833 of 1,000,000 participants: 5.5 ms
-- for the first page, 1.0 ms with it). It replaces the index on user alone, which it covers.
DROP INDEX consultation_participants_user;
CREATE INDEX consultation_participants_user ON consultation_participants (user_id, consultation_id);
