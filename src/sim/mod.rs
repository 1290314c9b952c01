//! The Waldur simulator.
