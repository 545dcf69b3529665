-- What a notification says, as a code and its parameters (a JSON object of plain texts), so
-- that each reader's client renders it in their language; title and body keep the text in
-- both languages. Notifications made before this carry no code (clients show their title).

ALTER TABLE notifications ADD COLUMN code TEXT NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN params TEXT NOT NULL DEFAULT '{}';
