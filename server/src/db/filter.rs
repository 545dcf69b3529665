//! SQL with optional filters, for queries whose `WHERE` depends on what the caller asked.
//!
//! Like `sqlx::QueryBuilder`, text and bound values are pushed in order, but placeholders are
//! written `$1`, `$2`, … as both databases accept them through the `Any` driver
//! (`QueryBuilder<Any>` writes `?`, which PostgreSQL refuses). Only values are bound; the
//! text pushed is always the program's own.

use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Encode, Type};
use std::fmt::Write;

pub struct Filtered<'args> {
    sql: String,
    args: AnyArguments<'args>,
    /// Whether [`Filtered::condition`] has written the `WHERE` yet.
    conditions: bool,
}

impl<'args> Filtered<'args> {
    pub fn new(sql: impl Into<String>) -> Filtered<'args> {
        Filtered { sql: sql.into(), args: AnyArguments::default(), conditions: false }
    }

    /// Appends SQL text (never a value: values go through [`Filtered::push_bind`]).
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// For a text that has its own `WHERE` clause where conditions follow: the next
    /// [`Filtered::condition`] writes ` AND `.
    pub fn after_where(&mut self) -> &mut Self {
        self.conditions = true;
        self
    }

    /// Starts a condition: ` WHERE ` before the first, ` AND ` before the others (for a query
    /// whose text has no `WHERE` of its own).
    pub fn condition(&mut self) -> &mut Self {
        self.sql.push_str(if self.conditions { " AND " } else { " WHERE " });
        self.conditions = true;
        self
    }

    /// Binds a value and writes its placeholder.
    pub fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'args + Encode<'args, Any> + Type<Any>,
    {
        self.args.add(value).expect("binding a value to an Any query");
        let _ = write!(self.sql, "${}", self.args.len());
        self
    }

    /// Binds a value to the next placeholder number without writing it, for a fixed prefix
    /// that already names `$1`, `$2`, … (a visibility predicate shared with other queries).
    /// Bind them in order, before any [`Filtered::push_bind`].
    pub fn bind_numbered<T>(&mut self, value: T) -> &mut Self
    where
        T: 'args + Encode<'args, Any> + Type<Any>,
    {
        self.args.add(value).expect("binding a value to an Any query");
        self
    }

    /// Appends a rule written with named values, `{user}` standing for `user` and `{org}` for
    /// `org` (an access rule of the caller), binding each where it is named; any other text
    /// is the program's own.
    pub fn push_rule(&mut self, rule: &str, user: &str, org: &str) -> &mut Self {
        let mut rest = rule;
        while let Some(at) = rest.find('{') {
            self.push(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("{user}") {
                self.push_bind(user.to_owned());
                rest = after;
            } else if let Some(after) = tail.strip_prefix("{org}") {
                self.push_bind(org.to_owned());
                rest = after;
            } else {
                self.push("{");
                rest = &tail[1..];
            }
        }
        self.push(rest)
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The query, for `execute`/`fetch_*`.
    pub fn build<'q>(&'q mut self) -> sqlx::query::Query<'q, Any, AnyArguments<'q>> {
        sqlx::query_with(&self.sql, std::mem::take(&mut self.args))
    }

    /// The query, decoding rows as `O`.
    pub fn build_query_as<'q, O>(&'q mut self) -> sqlx::query::QueryAs<'q, Any, O, AnyArguments<'q>>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        sqlx::query_as_with(&self.sql, std::mem::take(&mut self.args))
    }
}

#[cfg(test)]
mod tests {
    use super::Filtered;

    #[test]
    fn placeholders_are_numbered_after_the_fixed_ones() {
        let mut q = Filtered::new("SELECT id FROM t WHERE (a = $1 OR b = $2)");
        q.bind_numbered("u".to_string()).bind_numbered("o".to_string());
        q.push(" AND c = ").push_bind("x".to_string());
        q.push(" AND d = ").push_bind(3_i64);
        assert_eq!(q.sql(), "SELECT id FROM t WHERE (a = $1 OR b = $2) AND c = $3 AND d = $4");
    }

    #[test]
    fn placeholders_are_numbered_in_bind_order() {
        let mut q = Filtered::new("SELECT id FROM files WHERE consultation_id = ");
        q.push_bind("c1");
        for (column, value) in [("study_uid", Some("1.2")), ("series_uid", None), ("sop_instance_uid", Some("1.2.3"))] {
            if let Some(v) = value {
                q.push(" AND ").push(column).push(" = ").push_bind(v);
            }
        }
        assert_eq!(
            q.sql(),
            "SELECT id FROM files WHERE consultation_id = $1 AND study_uid = $2 AND sop_instance_uid = $3"
        );
        let mut q = Filtered::new("SELECT id FROM t");
        q.condition().push("a = ").push_bind(1i64);
        q.condition().push("b < ").push_bind("x");
        assert_eq!(q.sql(), "SELECT id FROM t WHERE a = $1 AND b < $2");
        assert_eq!(Filtered::new("SELECT id FROM t").sql(), "SELECT id FROM t");
        let mut q = Filtered::new("SELECT id FROM t WHERE a = 1");
        q.after_where();
        q.condition().push("b = ").push_bind(2i64);
        assert_eq!(q.sql(), "SELECT id FROM t WHERE a = 1 AND b = $1");
    }

    #[test]
    fn a_rule_binds_the_values_it_names_and_only_those() {
        let mut q = Filtered::new("SELECT id FROM t WHERE x = ");
        q.push_bind("a").push(" AND ").push_rule("(u = {user} OR o = {org} OR v = {user})", "u1", "o1");
        assert_eq!(q.sql(), "SELECT id FROM t WHERE x = $1 AND (u = $2 OR o = $3 OR v = $4)");
        let mut q = Filtered::new("");
        q.push_rule("p.user_id = {user} AND '{x}' <> ''", "u1", "o1");
        assert_eq!(q.sql(), "p.user_id = $1 AND '{x}' <> ''");
    }
}
