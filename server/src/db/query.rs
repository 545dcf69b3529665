//! Dynamic SQL with bound values for both backends: `sqlx::QueryBuilder<Any>` writes `?`
//! placeholders, which PostgreSQL does not accept through the `Any` driver (sqlx issue
//! 3000), so [`Sql`] numbers its placeholders `$1, $2, …` itself: the form every query of
//! this crate uses, accepted by SQLite and PostgreSQL alike. Optional filters become
//! `AND column = $n` pushed only when present, instead of dummy predicates.

use sqlx::any::{Any, AnyArguments};
use sqlx::Arguments;

/// A statement being built: text and the values bound to its placeholders so far.
pub struct Sql {
    text: String,
    args: AnyArguments<'static>,
    count: usize,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Sql {
        Sql { text: text.into(), args: AnyArguments::default(), count: 0 }
    }

    /// Appends SQL text (never a value: those go through [`Sql::bind`]).
    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends the next placeholder (`$n`) and binds `value` to it.
    pub fn bind<T>(&mut self, value: T) -> &mut Sql
    where
        T: 'static + Send + sqlx::Encode<'static, Any> + sqlx::Type<Any>,
    {
        self.count += 1;
        self.text.push('$');
        self.text.push_str(&self.count.to_string());
        // Encoding into the Any buffer only copies the value; it does not fail.
        let _ = self.args.add(value);
        self
    }

    /// Binds `value` to the next placeholder number without writing it, for a fixed prefix
    /// that already names `$1`, `$2`, … (e.g. a visibility predicate shared with other
    /// queries). Bind them in order, before any [`Sql::bind`].
    pub fn bind_named<T>(&mut self, value: T) -> &mut Sql
    where
        T: 'static + Send + sqlx::Encode<'static, Any> + sqlx::Type<Any>,
    {
        self.count += 1;
        let _ = self.args.add(value);
        self
    }

    pub fn sql(&self) -> &str {
        &self.text
    }

    /// The statement, ready to fetch rows of `O` (once: it takes the bound values).
    pub fn query_as<O>(&mut self) -> sqlx::query::QueryAs<'_, Any, O, AnyArguments<'_>>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let args: AnyArguments<'_> = std::mem::take(&mut self.args);
        sqlx::query_as_with(&self.text, args)
    }

    /// The statement, ready to execute (once: it takes the bound values).
    pub fn query(&mut self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        let args: AnyArguments<'_> = std::mem::take(&mut self.args);
        sqlx::query_with(&self.text, args)
    }
}

#[cfg(test)]
mod tests {
    use super::Sql;

    #[test]
    fn placeholders_are_numbered_after_the_fixed_ones() {
        let mut q = Sql::new("SELECT id FROM t WHERE (a = $1 OR b = $2)");
        q.bind_named("u".to_string()).bind_named("o".to_string());
        q.push(" AND c = ").bind("x".to_string());
        q.push(" AND d = ").bind(3_i64);
        assert_eq!(q.sql(), "SELECT id FROM t WHERE (a = $1 OR b = $2) AND c = $3 AND d = $4");
    }
}
