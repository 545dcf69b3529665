-- Access that holds: revocation of access tokens, one-time passwords, referral assignment.

-- Bumped whenever every access token a user holds must stop working at once (deactivation,
-- a password reset by someone else, a role change). Access tokens carry the generation they
-- were issued under; a request whose token names an older one is refused.
ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;
-- Set when someone else sets the password (a one-time password): until the user sets their
-- own, their tokens open only the password change.
ALTER TABLE users ADD COLUMN must_change_password BIGINT NOT NULL DEFAULT 0;

-- The clinician the receiving organisation's coordinator assigns to a referral.
ALTER TABLE referrals ADD COLUMN assigned_to TEXT REFERENCES users(id);
CREATE INDEX referrals_assigned ON referrals (assigned_to);
