// `embed_migrations!` only sees the migration files that existed when it was expanded; this
// makes a new migrations/V*.sql rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
