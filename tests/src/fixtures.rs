//! Real nsd/unbound fixtures (see crate docs).
