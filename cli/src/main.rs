//! `mpic`: the command-line client and operator tools.

fn main() {}
