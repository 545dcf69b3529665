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

    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The query, for `execute`/`fetch_*`.
    pub fn build(&mut self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        sqlx::query_with(&self.sql, std::mem::take(&mut self.args))
    }

    /// The query, decoding rows as `O`.
    pub fn build_query_as<O>(&mut self) -> sqlx::query::QueryAs<'_, Any, O, AnyArguments<'_>>
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
    }
}
