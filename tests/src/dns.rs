//! In-process DNS server (see crate docs).
