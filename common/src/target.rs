//! Target normalisation.
